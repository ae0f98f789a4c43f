package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestMainLifecycle drives Main in process: Open, Reload's report, a
// refused reload, Close, and an Open that fails half way.
func TestMainLifecycle(t *testing.T) {
	s := newStack(t, "")
	s.mustCLI("long enough pw 1\n", "user", "add", "-groups", "staff", "bob")
	orig, err := os.ReadFile(s.config)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	var logs bytes.Buffer
	m := NewMain(s.config, &logs)
	if err := m.Open(ctx); err != nil {
		t.Fatalf("open: %v", err)
	}
	rule := func(group string) string {
		return string(orig) + "[[rules]]\npath = \"/app\"\ngroups = [\"" + group + "\"]\n"
	}
	tests := []struct {
		name        string
		config      string
		wantErr     string
		wantRestart []string
	}{
		{"unchanged", string(orig), "", nil},
		{"rule for a held group", rule("staff"), "", nil},
		{"rule for a group no user holds", rule("nosuch"), "nosuch", nil},
		{"listen changed", strings.Replace(string(orig), s.addr, freeAddr(t), 1), "", []string{"listen"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(s.config, []byte(tc.config), 0o600); err != nil {
				t.Fatal(err)
			}
			rep, err := m.Reload(ctx)
			switch {
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("reload: got %v, want an error naming %q", err, tc.wantErr)
			case tc.wantErr == "" && err != nil:
				t.Fatalf("reload: %v", err)
			case tc.wantErr == "" && (rep.Users != 1 || !slices.Equal(rep.Restart, tc.wantRestart)):
				t.Fatalf("reload report: got %+v, want 1 user and restart %v", rep, tc.wantRestart)
			}
			// The listener Open bound serves on, whatever the file says now.
			c, err := net.Dial("tcp", s.addr)
			if err != nil {
				t.Fatalf("listener after reload: %v", err)
			}
			c.Close()
		})
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
	if err := NewMain(s.config, &logs).Open(ctx); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("open with the port taken: got %v, want a listen error", err)
	}
	taken.Close()
	m = NewMain(s.config, &logs)
	if err := m.Open(ctx); err != nil {
		t.Fatalf("open after a failed open: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}
