package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/authd/authd/authd/internal/audit"
)

func TestExplainFactor(t *testing.T) {
	s := newStack(t, `
[mfa]
required_groups = ["ops"]

[[rules]]
path = "/fin"
factor = "two"
factor_max_age = "15m"

[[rules]]
path = "/"
`)
	s.mustCLI("long enough pw 1\n", "user", "add", "alice")
	s.mustCLI("long enough pw 1\n", "user", "add", "-groups", "ops", "olga")
	for _, tt := range []struct{ name, user, path, want string }{
		{"two-factor rule", "alice", "/fin/x", "second factor: required by rules[0]: two factors, the second within 15m0s"},
		{"rule shows it", "alice", "/fin", "factor two; factor_max_age 15m0s"},
		{"one-factor path", "alice", "/app", "second factor: not required"},
		{"required group", "olga", "/app", "second factor: required (group ops is in mfa.required_groups)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := s.mustCLI("", "explain", "-user", tt.user, "-path", tt.path)
			if !strings.Contains(out, tt.want) {
				t.Errorf("output lacks %q:\n%s", tt.want, out)
			}
		})
	}
}

func TestUserMFAReset(t *testing.T) {
	s := newStack(t, "")
	s.mustCLI("long enough pw 1\n", "user", "add", "-groups", "admin", "root")
	data := filepath.Join(s.dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "mfa.json"), []byte(`{"root": {"totp": {"secret": "JBSWY3DPEHPK3PXP"}, "recovery": ["x"]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := s.mustCLI("", "user", "mfa", "list"); !strings.Contains(out, "root") || !strings.Contains(out, "totp,recovery") {
		t.Fatalf("list: %s", out)
	}
	out, errs, code := s.cli("", "user", "mfa", "reset", "root")
	if code != 0 || !strings.Contains(out, "second factors of root removed") {
		t.Fatalf("reset: exit %d\n%s\n%s", code, out, errs)
	}
	log, err := audit.OpenFile(filepath.Join(data, audit.FileName), 0)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := log.Recent(context.Background(), audit.Filter{Event: "mfa_reset"})
	log.Close()
	if err != nil || len(evs) != 1 || evs[0].Target != "root" || evs[0].Source != "cli" || !strings.HasPrefix(evs[0].Actor, "unix:") {
		t.Fatalf("audit after reset: %+v, %v", evs, err)
	}
	b, err := os.ReadFile(filepath.Join(data, "mfa.json"))
	if err != nil || strings.Contains(string(b), "root") {
		t.Fatalf("mfa.json after reset: %s, %v", b, err)
	}
	if out := s.mustCLI("", "user", "mfa", "reset", "root"); !strings.Contains(out, "had no second factor") {
		t.Fatalf("second reset: %s", out)
	}
	if _, _, code := s.cli("", "user", "mfa", "reset"); code != 2 {
		t.Fatalf("reset without a name: exit %d, want 2", code)
	}
}
