package users

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeTestFile writes the standard two-user file to a temporary users.toml.
func writeTestFile(tb testing.TB) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "users.toml")
	src, _ := testUsersFile(tb)
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

func TestOpenFileErrors(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.toml")
	if err := os.WriteFile(broken, []byte("[[users]]\nname = 'bob'\nhash = 'hunter2hunter2'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "missing.toml"), "no such file"},
		{"broken", broken, broken + ` line 1: user "bob": unsupported hash scheme`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := OpenFile(tt.path, DefaultLimits())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, %v; want an error containing %q", f, err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q quotes the hash", err)
			}
		})
	}
}

func TestReloadKeepsLastGood(t *testing.T) {
	path := writeTestFile(t)
	f, err := OpenFile(path, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	first := f.DB()
	if changed, err := f.Reload(); changed || err != nil {
		t.Errorf("unchanged file: got changed=%v err=%v, want false, nil", changed, err)
	}
	if f.DB() != first {
		t.Errorf("unchanged file replaced the snapshot")
	}

	if err := os.WriteFile(path, []byte("[[users]]\nname = 'alice'\nhash = 'plain'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	changed, err := f.Reload()
	if err == nil || changed {
		t.Errorf("broken file: got changed=%v err=%v, want false and an error", changed, err)
	}
	if f.DB() != first {
		t.Errorf("broken file replaced the snapshot")
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Reload(); err == nil || f.DB() != first {
		t.Errorf("missing file: got err=%v, snapshot kept %v; want an error and the old snapshot", err, f.DB() == first)
	}

	if err := Edit(path, DefaultLimits(), addUser("carol", bcrypt10)); err != nil {
		t.Fatal(err)
	}
	if changed, err := f.Reload(); !changed || err != nil {
		t.Errorf("fixed file: got changed=%v err=%v, want true, nil", changed, err)
	}
	if _, ok := f.DB().Lookup("carol"); !ok || f.DB().Len() != 1 {
		t.Errorf("got %v users, want only carol", f.DB().Users())
	}
}

func TestWatch(t *testing.T) {
	path := writeTestFile(t)
	f, err := OpenFile(path, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		changed bool
		err     error
	}
	results := make(chan result, 16)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Watch(ctx, 5*time.Millisecond, func(changed bool, err error) { results <- result{changed, err} })
	}()
	next := func() result {
		t.Helper()
		select {
		case r := <-results:
			return r
		case <-time.After(5 * time.Second):
			t.Fatal("no reload within 5s")
			return result{}
		}
	}

	if err := Edit(path, DefaultLimits(), addUser("carol", bcrypt10)); err != nil {
		t.Fatal(err)
	}
	if r := next(); !r.changed || r.err != nil {
		t.Errorf("after edit: got %+v, want changed, no error", r)
	}
	if _, ok := f.DB().Lookup("carol"); !ok {
		t.Errorf("carol not in the snapshot after Watch reloaded")
	}

	if err := os.WriteFile(path, []byte("not toml ["), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := next(); r.changed || r.err == nil {
		t.Errorf("after breaking: got %+v, want an error", r)
	}
	if _, ok := f.DB().Lookup("carol"); !ok {
		t.Errorf("broken file replaced the snapshot")
	}
	select {
	case r := <-results:
		t.Errorf("got a second report %+v for the same broken file, want one", r)
	case <-time.After(50 * time.Millisecond):
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if r := next(); r.err == nil {
		t.Errorf("after removal: got %+v, want an error", r)
	}
	if err := Edit(path, DefaultLimits(), addUser("dave", bcrypt10)); err != nil {
		t.Fatal(err)
	}
	if r := next(); !r.changed || r.err != nil {
		t.Errorf("after re-creation: got %+v, want changed, no error", r)
	}
	if _, ok := f.DB().Lookup("dave"); !ok || f.DB().Len() != 1 {
		t.Errorf("got %v, want only dave", f.DB().Users())
	}

	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not stop when ctx ended")
	}
}

func TestSetHash(t *testing.T) {
	path := writeTestFile(t)
	f, err := OpenFile(path, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	old, _ := f.DB().Lookup("bob")
	ok, upgrade, err := Verify(old.Hash, bcryptPassword, testParams, DefaultLimits())
	if !ok || !upgrade || err != nil {
		t.Fatalf("got ok=%v upgrade=%v err=%v, want a bcrypt match asking for upgrade", ok, upgrade, err)
	}
	h := mustHash(t, bcryptPassword, testParams)
	if err := f.SetHash("bob", h); err != nil {
		t.Fatal(err)
	}
	e, _ := f.DB().Lookup("bob")
	if e.Hash != h || e.Generation != old.Generation || !e.Disabled {
		t.Errorf("got %+v, want the new hash with generation and other fields kept", e.User)
	}
	if e.Fingerprint == old.Fingerprint {
		t.Errorf("fingerprint unchanged after a hash change")
	}
	if ok, upgrade, err := Verify(e.Hash, bcryptPassword, testParams, DefaultLimits()); !ok || upgrade || err != nil {
		t.Errorf("after upgrade: got ok=%v upgrade=%v err=%v, want true, false, nil", ok, upgrade, err)
	}
	if a, _ := f.DB().Lookup("alice"); a.Generation != 7 {
		t.Errorf("alice changed: %+v", a.User)
	}

	if err := f.SetHash("nobody", h); err == nil {
		t.Errorf("SetHash of an unknown user: got nil, want an error")
	}
	if err := f.SetHash("bob", "plain"); err == nil {
		t.Errorf("SetHash with an unsupported hash: got nil, want an error")
	}
	if e2, _ := f.DB().Lookup("bob"); e2.Hash != h {
		t.Errorf("failed SetHash changed the hash")
	}
}
