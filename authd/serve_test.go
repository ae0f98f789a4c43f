package main

import (
	"context"
	"net"
	"net/http"
	"os"
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
