package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMainLifecycle drives Main in process: Open, Run, Reload's report
// (restart keys, warnings), a rule for a group nobody holds (accepted with a
// warning; it admits nobody), Close, and an Open that fails half way.
func TestMainLifecycle(t *testing.T) {
	s := newStack(t, "")
	const pw = "long enough pw 1"
	s.mustCLI(pw+"\n", "user", "add", "-groups", "staff", "bob")
	orig, err := os.ReadFile(s.config)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	logs := &syncBuffer{}
	m := NewMain(s.config, logs)
	if err := m.Open(ctx); err != nil {
		t.Fatalf("open: %v", err)
	}
	rctx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- m.Run(rctx) }()
	bob, _ := s.login("bob", pw, "/")
	if bob == "" {
		t.Fatal("bob's login failed")
	}
	rule := func(group string) string {
		return string(orig) + "[[rules]]\npath = \"/app\"\ngroups = [\"" + group + "\"]\n"
	}
	tests := []struct {
		name        string
		config      string
		wantRestart []string
		wantWarning string // a config warning the report must hold; "" none
		app         int    // bob's verify on /app/x after the reload; 0 not checked
	}{
		{"unchanged", string(orig), nil, "", 0},
		{"rule for a held group", rule("staff"), nil, "", http.StatusOK},
		{"rule for a group no user holds", rule("nosuch"), nil, `rules[0].groups[0]: no user is in group "nosuch"`, http.StatusForbidden},
		{"listen changed", strings.Replace(string(orig), s.addr, freeAddr(t), 1), []string{"listen"}, "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(s.config, []byte(tc.config), 0o600); err != nil {
				t.Fatal(err)
			}
			rep, err := m.Reload(ctx)
			if err != nil {
				t.Fatalf("reload: %v", err)
			}
			if rep.Users != 1 || !slices.Equal(rep.Restart, tc.wantRestart) {
				t.Errorf("reload report: got %+v, want 1 user and restart %v", rep, tc.wantRestart)
			}
			warned := slices.ContainsFunc(rep.Warnings, func(w string) bool { return strings.HasPrefix(w, tc.wantWarning) })
			if tc.wantWarning != "" && !warned {
				t.Errorf("reload warnings: got %q, want one starting %q", rep.Warnings, tc.wantWarning)
			}
			if tc.wantWarning == "" && slices.ContainsFunc(rep.Warnings, func(w string) bool { return strings.Contains(w, "no user is in group") }) {
				t.Errorf("reload warnings: got %q, want none about groups", rep.Warnings)
			}
			// The listener Open bound serves on, whatever the file says now.
			if got := s.verifyPath("/app/x", bob); tc.app != 0 && got != tc.app {
				t.Errorf("bob on /app/x: got %d, want %d", got, tc.app)
			}
		})
	}
	stop()
	if err := <-ran; err != nil {
		t.Fatalf("run: %v", err)
	}
	if err := os.WriteFile(s.config, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	// An Open that fails after the stores are open (the port is taken)
	// releases them: the next Open on the same data_dir succeeds.
	taken, err := net.Listen("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := NewMain(s.config, logs).Open(ctx); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("open with the port taken: got %v, want a listen error", err)
	}
	taken.Close()
	m = NewMain(s.config, logs)
	if err := m.Open(ctx); err != nil {
		t.Fatalf("open after a failed open: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// TestSIGHUPWhileDraining: a reload (SIGHUP) or handover (SIGUSR2) signal
// that arrives while authd drains in-flight requests after SIGTERM must not
// end the process: their default action would kill it mid-drain and cut
// the requests it is finishing.
func TestSIGHUPWhileDraining(t *testing.T) {
	s := newStack(t, "[timeouts]\nread = \"10s\"\nshutdown = \"10s\"\n")
	s.mustCLI("long enough pw 1\n", "user", "add", "bob")
	s.start()
	// A login whose body is still on its way keeps the connection active,
	// so shutdown waits for it.
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("POST /authd/login HTTP/1.1\r\nHost: app.example.com\r\n" +
		"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nusername=bob")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the handler is reading the body
	proc := s.proc
	exited := make(chan error, 1)
	go func() { exited <- proc.Wait() }()
	s.proc = nil // waited for here, not by the cleanup
	t.Cleanup(func() { _ = proc.Process.Kill() })
	_ = proc.Process.Signal(syscall.SIGTERM)
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(s.logs.String(), "shutting down"); {
		if time.Now().After(deadline) {
			t.Fatalf("no shutdown in the log:\n%s", s.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // past Run, into the drain
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR2} {
		_ = proc.Process.Signal(sig)
		select {
		case err := <-exited:
			t.Fatalf("authd ended on %v while draining: %v\n%s", sig, err, s.logs)
		case <-time.After(300 * time.Millisecond):
		}
	}
	c.Close() // the in-flight request ends; the drain completes
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after the drain: %v, want status 0\n%s", err, s.logs)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("authd did not exit after the drain")
	}
}

// TestServeCatchesSignalsWhileOpening sends SIGHUP to `authd serve` while it
// is still opening (here: blocked reading its config from a FIFO, as it could
// be in a slow store open), as systemd's ExecReload does when a reload
// follows a start (Type=simple counts as started at once). Go's default
// action for an uncaught SIGHUP would kill authd; it must instead start and
// apply the reload once ready.
func TestServeCatchesSignalsWhileOpening(t *testing.T) {
	s := newStack(t, "")
	s.mustCLI("long enough pw 1\n", "user", "add", "bob")
	cfg, err := os.ReadFile(s.config)
	if err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(s.dir, "fifo.toml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cmd := exec.Command(binary, "serve", "-config", fifo)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	done := make(chan struct{})
	go func() { exited <- cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	// Wait until authd sits in open(2) on the FIFO: it is past start-up
	// and inside serve's Open.
	if !waitWchan(cmd.Process.Pid, 10*time.Second, "wait_for_partner", "fifo_open") {
		t.Fatalf("authd never blocked opening its config FIFO:\n%s", logs)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		t.Fatalf("a SIGHUP while authd was opening ended it (%v):\n%s", err, logs)
	case <-time.After(200 * time.Millisecond):
	}
	feed := func() {
		wrote := make(chan error, 1)
		go func() { wrote <- os.WriteFile(fifo, cfg, 0o600) }()
		select {
		case err := <-wrote:
			if err != nil {
				t.Fatal(err)
			}
		case <-done:
			t.Fatalf("authd exited:\n%s", logs)
		case <-time.After(10 * time.Second):
			t.Fatalf("authd did not read its config:\n%s", logs)
		}
	}
	feed() // the start's read
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), `"event":"ready"`) {
		if time.Now().After(deadline) {
			t.Fatalf("authd did not become ready:\n%s", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	feed() // the reload's read: the SIGHUP was kept for when authd is ready
	for !strings.Contains(logs.String(), `"msg":"config reloaded"`) {
		if time.Now().After(deadline) {
			t.Fatalf("the SIGHUP sent while opening was never applied:\n%s", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case err := <-exited:
		t.Fatalf("authd exited (%v):\n%s", err, logs)
	default:
	}
}

// waitWchan waits until one of pid's threads sleeps in one of the kernel
// functions fns (/proc/PID/task/*/wchan; a FIFO's open waits in
// wait_for_partner, in fifo_open on older kernels).
func waitWchan(pid int, d time.Duration, fns ...string) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/wchan", pid))
		for _, p := range tasks {
			if b, err := os.ReadFile(p); err == nil && slices.Contains(fns, string(b)) {
				return true
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}
