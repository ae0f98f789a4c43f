package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/authd/authd/authd/internal/machine"
	"github.com/authd/authd/authd/internal/users"
)

// machineEnv is a config with users alice (active) and bob (locked), no daemon running.
type machineEnv struct {
	dir, config, data string
}

func newMachineEnv(t *testing.T) *machineEnv {
	t.Helper()
	dir := t.TempDir()
	e := &machineEnv{dir: dir, config: filepath.Join(dir, "authd.toml"), data: filepath.Join(dir, "data")}
	cfg := fmt.Sprintf("public_url = \"https://app.example.com\"\ndata_dir = %q\nusers_file = %q\n", e.data, filepath.Join(dir, "users.toml"))
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	hash, err := users.Hash("a long password 1", users.Params{MemoryKiB: 19456, Time: 2, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	err = users.Edit(filepath.Join(dir, "users.toml"), users.DefaultLimits(), func([]users.User) ([]users.User, error) {
		return []users.User{
			{Name: "alice", Hash: hash, Generation: 1},
			{Name: "bob", Hash: hash, Generation: 2, Disabled: true},
		}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// run calls a machine command with -config and returns stdout, stderr and the error.
func (e *machineEnv) run(cmd string, args ...string) (string, string, error) {
	var out, errb bytes.Buffer
	args = append([]string{args[0], "-config", e.config}, args[1:]...)
	var err error
	switch cmd {
	case "token":
		err = cmdToken(context.Background(), args, &out, &errb)
	case "key":
		err = cmdKey(context.Background(), args, &out, &errb)
	}
	return out.String(), errb.String(), err
}

func (e *machineEnv) verifier(t *testing.T) *machine.Verifier {
	t.Helper()
	f, err := machine.OpenFile(filepath.Join(e.data, machine.FileName))
	if err != nil {
		t.Fatal(err)
	}
	return machine.NewVerifier(f, machine.NewMemoryNonces(100, 0, time.Now), 0, time.Now)
}

var tokenLine = regexp.MustCompile(`^authd_tok_([0-9a-f]{16})_[A-Za-z0-9_-]{43}\n$`)

func TestTokenCommands(t *testing.T) {
	e := newMachineEnv(t)
	out, errs, err := e.run("token", "create", "-user", "Alice", "-name", "ci deploy")
	if err != nil {
		t.Fatalf("create: %v\n%s", err, errs)
	}
	m := tokenLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("create printed %q", out)
	}
	token, id := strings.TrimSpace(out), m[1]
	if !strings.Contains(errs, "shown only this once") || strings.Contains(errs, token) {
		t.Errorf("create stderr %q", errs)
	}
	path := filepath.Join(e.data, machine.FileName)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("records file: %v, mode %v; want 0600", err, fi.Mode())
	}
	if b, _ := os.ReadFile(path); bytes.Contains(b, []byte(token)) || bytes.Contains(b, []byte(token[27:])) {
		t.Fatal("records file holds the token")
	}
	who, present, err := e.verifier(t).Identify(context.Background(), machine.Request{Authorization: "Bearer " + token})
	if who.User != "alice" || !present || err != nil {
		t.Fatalf("verify: %q, %v, %v", who.User, present, err)
	}
	// Bound to alice's credential generation: a password change or lock ends the token.
	if who.Generation != 1 {
		t.Errorf("token bound to generation %d, want alice's 1", who.Generation)
	}

	second, _, err := e.run("token", "create", "-user", "alice", "-name", "short", "-expires", "2h")
	if err != nil {
		t.Fatal(err)
	}
	out, _, err = e.run("token", "list")
	if err != nil || strings.Contains(out, token) || strings.Contains(out, strings.TrimSpace(second)) {
		t.Fatalf("list: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], id+"  alice  active  ") || !strings.HasSuffix(lines[0], "ci deploy") {
		t.Errorf("list printed:\n%s", out)
	}
	if f := strings.Fields(lines[1]); len(f) < 5 {
		t.Errorf("list line %q", lines[1])
	} else if exp, _ := time.Parse(time.RFC3339, f[4]); time.Until(exp) > 2*time.Hour || time.Until(exp) < time.Hour {
		t.Errorf("-expires 2h gave expiry %s", f[4])
	}
	if out, _, _ := e.run("token", "list", "-user", "bob"); out != "" {
		t.Errorf("list -user bob printed %q", out)
	}

	if out, _, err := e.run("token", "revoke", id); err != nil || out != "token "+id+" revoked\n" {
		t.Fatalf("revoke: %q, %v", out, err)
	}
	if _, _, err := e.verifier(t).Authenticate(context.Background(), machine.Request{Authorization: "Bearer " + token}); !errors.Is(err, machine.ErrUnknown) {
		t.Errorf("revoked token: got %v, want %v", err, machine.ErrUnknown)
	}
	// Revoking by the token itself works and never echoes it.
	if out, _, err := e.run("token", "revoke", strings.TrimSpace(second)); err != nil || strings.Contains(out, second[27:]) {
		t.Errorf("revoke by token: %q, %v", out, err)
	}
}

func TestMachineCommandErrors(t *testing.T) {
	e := newMachineEnv(t)
	secretish := "authd_sk_" + strings.Repeat("x", 43)
	tests := []struct {
		name     string
		cmd      string
		args     []string
		usage    bool
		contains string
	}{
		{"no subcommand", "token", []string{"list", "extra"}, true, "takes flags only"},
		{"unknown subcommand", "key", []string{"rotate"}, true, "unknown subcommand"},
		{"create without user", "token", []string{"create", "-name", "x"}, true, "-user NAME"},
		{"create without name", "key", []string{"create", "-user", "alice"}, true, "-name LABEL"},
		{"expiry too long", "token", []string{"create", "-user", "alice", "-name", "x", "-expires", "400d"}, true, "at most 366d"},
		{"expiry zero", "token", []string{"create", "-user", "alice", "-name", "x", "-expires", "0d"}, true, "positive"},
		{"expiry garbage", "key", []string{"create", "-user", "alice", "-name", "x", "-expires", "soon"}, true, "duration"},
		{"unknown user", "token", []string{"create", "-user", "carol", "-name", "x"}, false, "no user carol"},
		{"bad user name", "token", []string{"create", "-user", "c d", "-name", "x"}, false, "user name"},
		{"label with control", "key", []string{"create", "-user", "alice", "-name", "a\x01"}, false, "label"},
		{"revoke unknown", "token", []string{"revoke", "0123456789abcdef"}, false, "no token 0123456789abcdef"},
		{"revoke a secret", "key", []string{"revoke", secretish}, false, "not a key id"},
		{"revoke needs id", "key", []string{"revoke"}, true, "key revoke ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errs, err := e.run(tt.cmd, tt.args...)
			var ue errUsage
			if err == nil || errors.As(err, &ue) != tt.usage || !strings.Contains(err.Error(), tt.contains) {
				t.Fatalf("got %v (usage %v); want usage %v containing %q", err, errors.As(err, &ue), tt.usage, tt.contains)
			}
			if strings.Contains(out+errs+err.Error(), secretish) {
				t.Error("output echoes a secret")
			}
		})
	}
	if _, err := os.Stat(filepath.Join(e.data, machine.FileName)); err == nil {
		if b, _ := os.ReadFile(filepath.Join(e.data, machine.FileName)); bytes.Contains(b, []byte(`"user"`)) {
			t.Error("a failed create left a record")
		}
	}
}

func TestKeyAndSign(t *testing.T) {
	e := newMachineEnv(t)
	out, errs, err := e.run("key", "create", "-user", "bob", "-name", "nightly")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errs, "bob is locked") {
		t.Errorf("no locked warning: %q", errs)
	}
	f := strings.Fields(out)
	if len(f) != 2 || !strings.HasPrefix(f[0], "ak_") || !strings.HasPrefix(f[1], "authd_sk_") || strings.Count(out, "\n") != 1 {
		t.Fatalf("key create printed %q", out)
	}
	keyID, secret := f[0], f[1]
	if strings.Contains(errs, secret) {
		t.Error("stderr repeats the secret")
	}
	list, _, err := e.run("key", "list")
	if err != nil || !strings.HasPrefix(list, keyID+"  bob  active") || strings.Contains(list, secret) {
		t.Fatalf("key list: %v\n%s", err, list)
	}
	secretFile := filepath.Join(e.dir, "key.secret")
	os.WriteFile(secretFile, []byte(secret+"\n"), 0o600)

	const url = "https://API.example.com:8443/v1/items?b=2&a=1"
	v := e.verifier(t)
	tests := []struct {
		name  string
		args  []string
		stdin string
	}{
		{"secret file", []string{"-key", keyID, "-secret-file", secretFile, url}, ""},
		{"stdin, method after URL", []string{"-key", keyID, url, "-method", "post"}, secret + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if err := cmdSign(tt.args, strings.NewReader(tt.stdin), &out, &errb); err != nil {
				t.Fatalf("sign: %v", err)
			}
			line := out.String()
			auth, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "Authorization: ")
			if !ok || strings.Count(line, "\n") != 1 || strings.Contains(line, secret) {
				t.Fatalf("sign printed %q", line)
			}
			method := "GET"
			if tt.stdin != "" {
				method = "POST"
			}
			user, present, err := v.Authenticate(context.Background(), machine.Request{
				Method: method, URI: "/v1/items?b=2&a=1", Host: "api.example.com", Authorization: auth})
			if user != "bob" || !present || err != nil {
				t.Errorf("verify: %q, %v, %v", user, present, err)
			}
		})
	}
	for name, args := range map[string][]string{
		"no key":     {"-secret-file", secretFile, url},
		"no URL":     {"-key", keyID, "-secret-file", secretFile},
		"no secret":  {"-key", keyID, url},
		"bad URL":    {"-key", keyID, "-secret-file", secretFile, "api.example.com/x"},
		"bad method": {"-key", keyID, "-secret-file", secretFile, "-method", "GE T", url},
		"no file":    {"-key", keyID, "-secret-file", secretFile + ".missing", url},
	} {
		t.Run(name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if err := cmdSign(args, strings.NewReader(""), &out, &errb); err == nil || out.Len() != 0 {
				t.Errorf("got %v, %q; want an error and no output", err, out.String())
			}
		})
	}
	if out, _, err := e.run("key", "revoke", keyID); err != nil || out != "key "+keyID+" revoked\n" {
		t.Fatalf("revoke: %q, %v", out, err)
	}
}
