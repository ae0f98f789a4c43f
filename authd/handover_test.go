package main

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func envOf(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestListenFDs(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    []listenFD
		wantErr string
	}{
		{name: "none", env: nil},
		{name: "one", env: map[string]string{"LISTEN_PID": "42", "LISTEN_FDS": "1"}, want: []listenFD{{fd: 3}}},
		{name: "named", env: map[string]string{"LISTEN_PID": "42", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "metrics:authd"},
			want: []listenFD{{fd: 3, name: "metrics"}, {fd: 4, name: "authd"}}},
		// Meant for the process that started us (sd_listen_fds ignores them too).
		{name: "another pid", env: map[string]string{"LISTEN_PID": "41", "LISTEN_FDS": "1"}},
		{name: "no pid", env: map[string]string{"LISTEN_FDS": "1"}},
		{name: "bad count", env: map[string]string{"LISTEN_PID": "42", "LISTEN_FDS": "x"}, wantErr: "LISTEN_FDS"},
		{name: "negative count", env: map[string]string{"LISTEN_PID": "42", "LISTEN_FDS": "-1"}, wantErr: "LISTEN_FDS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := listenFDs(envOf(tt.env), 42)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one about %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("got %v, %v, want %v", got, err, tt.want)
			}
		})
	}
}

func TestHandoverFD(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    []listenFD
		wantErr bool
	}{
		{name: "none", env: nil},
		{name: "same pid", env: map[string]string{envListenFD: "7", envListenPID: "42"}, want: []listenFD{{fd: 7, name: "handover"}}},
		{name: "another pid", env: map[string]string{envListenFD: "7", envListenPID: "41"}},
		{name: "stdio", env: map[string]string{envListenFD: "1", envListenPID: "42"}, wantErr: true},
		{name: "garbage", env: map[string]string{envListenFD: "seven", envListenPID: "42"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := handoverFD(envOf(tt.env), 42)
			if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
				t.Errorf("got %v, %v, want %v (error %v)", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestPickFD(t *testing.T) {
	tests := []struct {
		name    string
		fds     []listenFD
		want    int
		wantErr bool
	}{
		{name: "only", fds: []listenFD{{fd: 3, name: "whatever"}}, want: 0},
		{name: "named", fds: []listenFD{{fd: 3, name: "other"}, {fd: 4, name: "authd"}}, want: 1},
		{name: "ambiguous", fds: []listenFD{{fd: 3}, {fd: 4}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pickFD(tt.fds)
			if (err != nil) != tt.wantErr || (!tt.wantErr && got != tt.want) {
				t.Errorf("got %d, %v, want %d (error %v)", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestHandoverEnv(t *testing.T) {
	env := []string{"PATH=/bin", "LISTEN_PID=1", "LISTEN_FDS=1", "LISTEN_FDNAMES=authd", envListenFD + "=9", envListenPID + "=1", "LISTEN_FDSX=keep"}
	got := handoverEnv(env, 7, 42)
	want := []string{"PATH=/bin", "LISTEN_FDSX=keep", envListenFD + "=7", envListenPID + "=42"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestKeptSocketOutlivesTheServedListener is the core of a handover: after the
// served listener is closed (Shutdown does that), connections still succeed
// and wait in the backlog, and the next image, given the kept fd, accepts them.
func TestKeptSocketOutlivesTheServedListener(t *testing.T) {
	tests := []struct {
		name, network string
		address       func(t *testing.T) string
	}{
		{name: "tcp", network: "tcp", address: func(*testing.T) string { return "127.0.0.1:0" }},
		{name: "unix", network: "unix", address: func(t *testing.T) string { return filepath.Join(t.TempDir(), "authd.sock") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := &handover{fd: -1}
			ln, err := old.listener(func() (net.Listener, error) { return net.Listen(tt.network, tt.address(t)) })
			if err != nil {
				t.Fatal(err)
			}
			defer syscall.Close(old.fd)
			addr := ln.Addr()
			if old.fd < 0 {
				t.Fatalf("no fd kept")
			}
			ln.Close() // the old image's Shutdown

			c, err := net.DialTimeout(addr.Network(), addr.String(), time.Second)
			if err != nil {
				t.Fatalf("connect after the served listener closed: got %v, want it queued", err)
			}
			defer c.Close()
			if _, err := c.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}

			next := &handover{fd: old.fd, inherited: true}
			ln2, err := next.listener(func() (net.Listener, error) { t.Fatal("the next image bound instead of inheriting"); return nil, nil })
			if err != nil {
				t.Fatal(err)
			}
			defer ln2.Close()
			if ln2.Addr().String() != addr.String() {
				t.Errorf("inherited listener on %s, want %s", ln2.Addr(), addr)
			}
			s, err := ln2.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			buf := make([]byte, 1)
			_ = s.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := s.Read(buf); err != nil || buf[0] != 'x' {
				t.Errorf("the queued connection: got %q, %v, want x", buf, err)
			}
		})
	}
}

// TestMainHandsOverItsSocket: a Main closed for a handover leaves its
// socket listening, so a verify arriving then waits instead of being
// refused; the next Main, given the kept fd, opens the store (Close freed
// the data_dir lock) and answers it.
func TestMainHandsOverItsSocket(t *testing.T) {
	s := newStack(t, "")
	const pw = "long enough pw 1"
	s.mustCLI(pw+"\n", "user", "add", "bob")
	ctx := context.Background()
	logs := &syncBuffer{}
	serve := func(m *Main) (stop func()) {
		if err := m.Open(ctx); err != nil {
			t.Fatalf("open: %v", err)
		}
		rctx, cancel := context.WithCancel(ctx)
		ran := make(chan error, 1)
		go func() { ran <- m.Run(rctx) }()
		return func() {
			cancel()
			if err := <-ran; err != nil {
				t.Errorf("run: %v", err)
			}
			if err := m.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		}
	}

	old := NewMain(s.config, logs)
	old.handover = &handover{fd: -1}
	stop := serve(old)
	bob, _ := s.login("bob", pw, "/")
	if bob == "" {
		t.Fatal("bob's login failed")
	}
	old.exe = "/usr/local/bin/authd" // as Run sets it when it accepts a SIGUSR2
	stop()                           // the kept fd stays open: next.Close closes it

	got := make(chan string, 1)
	go func() {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		req, _ := http.NewRequest("GET", "http://"+s.addr+"/verify", nil)
		req.Header.Set("X-Original-URI", "/app/x")
		req.Header.Set("X-Original-Method", "GET")
		req.Header.Set("Cookie", bob)
		resp, err := c.Do(req)
		if err != nil {
			got <- err.Error()
			return
		}
		resp.Body.Close()
		got <- resp.Status
	}()
	select {
	case r := <-got:
		t.Fatalf("with no authd serving, a verify got %q, want it to wait", r)
	case <-time.After(300 * time.Millisecond):
	}

	next := NewMain(s.config, logs)
	next.handover = &handover{fd: old.handover.fd, inherited: true}
	defer serve(next)()
	select {
	case r := <-got:
		if r != "200 OK" {
			t.Errorf("the waiting verify: got %q, want 200 OK", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting verify got no answer from the next Main")
	}
	if !strings.Contains(logs.String(), `"event":"socket_inherited"`) {
		t.Errorf("no socket_inherited record in the log")
	}
}
