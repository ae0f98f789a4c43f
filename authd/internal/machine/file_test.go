package machine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestOpenFileMissingIsEmpty(t *testing.T) {
	f, err := OpenFile(filepath.Join(t.TempDir(), FileName))
	if err != nil {
		t.Fatal(err)
	}
	if r := f.Records(); len(r.Tokens)+len(r.Keys) != 0 {
		t.Errorf("got %d tokens, %d keys; want none", len(r.Tokens), len(r.Keys))
	}
}

func TestDecodeRefuses(t *testing.T) {
	secret := "authd_sk_" + strings.Repeat("S", 43)
	hash := strings.Repeat("ab", 32)
	key := `{"id":"ak_0123456789abcdef","user":"alice","label":"x","secret":"` + secret + `","created":"2026-01-01T00:00:00Z","expires":"2026-02-01T00:00:00Z"}`
	tok := `{"id":"0123456789abcdef","user":"alice","label":"x","sha256":"` + hash + `","created":"2026-01-01T00:00:00Z","expires":"2026-02-01T00:00:00Z"}`
	tests := map[string]string{
		"unknown top-level key": `{"tokens":[],"keys":[],"extra":1}`,
		"unknown record key":    `{"keys":[` + strings.Replace(key, `"label"`, `"admin":true,"label"`, 1) + `]}`,
		"syntax error":          `{"keys":[` + key + `,]}`,
		"unquoted secret":       `{"keys":[{"id":"ak_0123456789abcdef","secret":` + secret + `}]}`,
		"secret as a number":    `{"keys":[{"secret":12345678901234567890}]}`,
		"secret as the time":    `{"keys":[` + strings.Replace(key, `"2026-01-01T00:00:00Z"`, `"`+secret+`"`, 1) + `]}`,
		"secret as the id":      `{"keys":[` + strings.Replace(key, `"ak_0123456789abcdef"`, `"`+secret+`"`, 1) + `]}`,
		"hash as the id":        `{"tokens":[` + strings.Replace(tok, `"0123456789abcdef"`, `"`+hash+`"`, 1) + `]}`,
		"short secret":          `{"keys":[` + strings.Replace(key, secret, secret[:40], 1) + `]}`,
		"upper-case hash":       `{"tokens":[` + strings.Replace(tok, hash, strings.ToUpper(hash), 1) + `]}`,
		"expires before":        `{"tokens":[` + strings.Replace(tok, "2026-02-01", "2025-02-01", 1) + `]}`,
		"no user":               `{"tokens":[` + strings.Replace(tok, `"alice"`, `""`, 1) + `]}`,
		"duplicate id":          `{"tokens":[` + tok + `,` + tok + `]}`,
		"trailing data":         `{"tokens":[]} {}`,
		"truncated":             `{"keys":[` + key,
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := decode([]byte(in))
			if err == nil {
				t.Fatal("no error")
			}
			for _, s := range []string{secret, secret[:40], hash, strings.ToUpper(hash), "12345678901234567890"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q holds a secret or hash", err)
				}
			}
		})
	}
	t.Run("valid", func(t *testing.T) {
		r, err := decode([]byte(`{"tokens":[` + tok + `],"keys":[` + key + `]}`))
		if err != nil || len(r.Tokens) != 1 || len(r.Keys) != 1 {
			t.Errorf("got %+v, %v", r, err)
		}
	})
}

func TestReloadKeepsLastGood(t *testing.T) {
	fx := newFixture(t)
	good, err := os.ReadFile(fx.path)
	if err != nil {
		t.Fatal(err)
	}
	req := Request{Authorization: "Bearer " + fx.token}
	steps := []struct {
		name    string
		content string
		mode    os.FileMode
		changed bool
		wantErr bool
	}{
		{"broken JSON", `{"tokens": [`, 0o600, false, true},
		{"unknown key", `{"tokens": [], "admin": true}`, 0o600, false, true},
		{"readable by others", string(good), 0o644, false, true},
		{"same content again", string(good), 0o600, false, false},
	}
	for _, s := range steps {
		if err := os.WriteFile(fx.path, []byte(s.content), s.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(fx.path, s.mode); err != nil {
			t.Fatal(err)
		}
		changed, err := fx.file.Reload()
		if changed != s.changed || (err != nil) != s.wantErr {
			t.Fatalf("%s: got %v, %v; want changed %v, error %v", s.name, changed, err, s.changed, s.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), fx.secret) {
			t.Fatalf("%s: error holds the secret", s.name)
		}
		if user, _, err := fx.v.Authenticate(context.Background(), req); user != "alice" || err != nil {
			t.Fatalf("%s: token stopped working: %q, %v", s.name, user, err)
		}
	}
	if _, err := OpenFile(fx.path + ".missing"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fx.path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFile(fx.path); err == nil {
		t.Error("OpenFile of a broken file: no error")
	}
	// A deleted file revokes everything.
	os.Remove(fx.path)
	if changed, err := fx.file.Reload(); !changed || err != nil {
		t.Fatalf("deleted file: got %v, %v; want changed", changed, err)
	}
	if _, _, err := fx.v.Authenticate(context.Background(), req); !errors.Is(err, ErrUnknown) {
		t.Errorf("after delete: got %v, want %v", err, ErrUnknown)
	}
}

func TestEditKeepsModeAndRefusesBadRecords(t *testing.T) {
	fx := newFixture(t)
	fi, _ := os.Stat(fx.path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("new file mode %04o, want 0600", fi.Mode().Perm())
	}
	if err := os.Chmod(fx.path, 0o400); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(fx.path)
	tests := []struct {
		name string
		fn   func(*Records) error
	}{
		{"fn error", func(r *Records) error { r.Tokens = nil; return errors.New("no") }},
		{"duplicate id", func(r *Records) error { r.Tokens = append(r.Tokens, r.Tokens[0]); return nil }},
		{"bad record", func(r *Records) error { r.Keys[0].Secret = "short"; return nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Edit(fx.path, tt.fn)
			if err == nil {
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), fx.secret) {
				t.Errorf("error %q holds the secret", err)
			}
			if after, _ := os.ReadFile(fx.path); string(after) != string(before) {
				t.Error("file changed")
			}
		})
	}
	if err := Edit(fx.path, func(r *Records) error { r.Keys = nil; return nil }); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(fx.path); fi.Mode().Perm() != 0o400 {
		t.Errorf("mode after edit %04o, want 0400", fi.Mode().Perm())
	}
	os.Chmod(fx.path, 0o644)
	if err := Edit(fx.path, func(r *Records) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(fx.path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode after editing a 0644 file %04o, want 0600", fi.Mode().Perm())
	}
	if strings.Contains(string(before), fx.token) {
		t.Error("the file holds the token itself")
	}
}

func TestEditConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			err := Edit(path, func(r *Records) error {
				_, tok, err := NewToken("alice", "x", t0, 0)
				r.Tokens = append(r.Tokens, tok)
				return err
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	f, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.Records().Tokens); n != 20 {
		t.Errorf("got %d tokens, want 20", n)
	}
}

func TestWatch(t *testing.T) {
	fx := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reloads := make(chan error, 10)
	go fx.file.Watch(ctx, 10*time.Millisecond, func(changed bool, err error) {
		if changed || err != nil {
			reloads <- err
		}
	})
	time.Sleep(30 * time.Millisecond)
	if err := Edit(fx.path, func(r *Records) error { r.Tokens = nil; return nil }); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-reloads:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no reload")
	}
	if _, _, err := fx.v.Authenticate(ctx, Request{Authorization: "Bearer " + fx.token}); !errors.Is(err, ErrUnknown) {
		t.Errorf("after watch reload: got %v, want %v", err, ErrUnknown)
	}
}

func TestNewCredentialLifetimes(t *testing.T) {
	tests := []struct {
		lifetime time.Duration
		want     time.Duration
		wantErr  bool
	}{
		{0, DefaultLifetime, false},
		{time.Hour, time.Hour, false},
		{MaxLifetime, MaxLifetime, false},
		{MaxLifetime + time.Second, 0, true},
		{-time.Hour, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.lifetime.String(), func(t *testing.T) {
			tok, rec, err := NewToken("alice", "x", t0, tt.lifetime)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v", err)
			}
			if err != nil {
				return
			}
			if got := rec.Expires.Sub(rec.Created); got != tt.want {
				t.Errorf("lifetime %v, want %v", got, tt.want)
			}
			if _, ok := splitToken(tok); !ok || len(tok) != tokenLen {
				t.Errorf("token %q does not parse", tok)
			}
			sec, k, err := NewKey("alice", "x", t0, tt.lifetime)
			if err != nil || !validSecret(sec) || !validKeyID(k.ID) || k.Expires.Sub(k.Created) != tt.want {
				t.Errorf("key: %v, %+v", err, k)
			}
		})
	}
}
