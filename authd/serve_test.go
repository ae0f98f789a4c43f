package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
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
