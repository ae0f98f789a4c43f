package users

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// addUser returns an Edit function that appends a user with a fresh generation.
func addUser(name, hash string) func([]User) ([]User, error) {
	return func(us []User) ([]User, error) {
		return append(us, User{Name: name, Hash: hash, Generation: NewGeneration()}), nil
	}
}

func readUsers(tb testing.TB, path string) *DB {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return mustParse(tb, string(data))
}

// dirEntries lists dir without the lock file.
func dirEntries(tb testing.TB, dir string) []string {
	tb.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, e := range es {
		if !strings.HasSuffix(e.Name(), ".lock") {
			names = append(names, e.Name())
		}
	}
	return names
}

func TestEditCreatesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.toml")
	h := mustHash(t, "pw", testParams)
	if err := Edit(path, DefaultLimits(), addUser("alice", h)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("got mode %v, want 0600", got)
	}
	data, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(data), "# authd users file") {
		t.Errorf("got file starting %q, want the header comment", string(data[:min(len(data), 40)]))
	}
	e, ok := readUsers(t, path).Lookup("alice")
	if !ok || e.Hash != h || e.Generation == 0 {
		t.Errorf("got %+v, %v, want alice with her hash and a generation", e, ok)
	}
}

func TestEditKeepsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.toml")
	src, _ := testUsersFile(t)
	if err := os.WriteFile(path, []byte(src), 0o640); err != nil {
		t.Fatal(err)
	}
	before := readUsers(t, path).Users()
	if err := Edit(path, DefaultLimits(), func(us []User) ([]User, error) { return us, nil }); err != nil {
		t.Fatal(err)
	}
	if got := readUsers(t, path).Users(); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Errorf("got %v, want %v", got, before)
	}
	fi, _ := os.Stat(path)
	if got := fi.Mode().Perm(); got != 0o640 {
		t.Errorf("got mode %v, want 0640 kept", got)
	}
}

func TestEditLeavesFileOnError(t *testing.T) {
	errFn := errors.New("fn refused")
	tests := []struct {
		name string
		fn   func([]User) ([]User, error)
		want string
	}{
		{"fn error", func([]User) ([]User, error) { return nil, errFn }, "fn refused"},
		{"plaintext hash", addUser("carol", "hunter2hunter2"), `user "carol": unsupported hash scheme`},
		{"duplicate", addUser("alice", bcrypt10), `user "alice": duplicate`},
		{"bad name", addUser("Carol", bcrypt10), "canonical form"},
		{"generation too large", func(us []User) ([]User, error) {
			return append(us, User{Name: "carol", Hash: bcrypt10, Generation: 1 << 63}), nil
		}, "generation"},
		{"control character", func(us []User) ([]User, error) {
			return append(us, User{Name: "carol", Hash: bcrypt10, DisplayName: "x\ny"}), nil
		}, "control characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "users.toml")
			src, _ := testUsersFile(t)
			if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
				t.Fatal(err)
			}
			err := Edit(path, DefaultLimits(), tt.fn)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q quotes the hash", err)
			}
			if data, _ := os.ReadFile(path); string(data) != src {
				t.Errorf("file changed after a failed edit")
			}
			if got := dirEntries(t, dir); !slices.Equal(got, []string{"users.toml"}) {
				t.Errorf("got directory %v, want only users.toml (no temporary files left)", got)
			}
		})
	}
}

func TestEditRefusesBrokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.toml")
	broken := "[[users]]\nname = 'alice'\nhash = '{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M='\n"
	if err := os.WriteFile(path, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	err := Edit(path, DefaultLimits(), addUser("bob", bcrypt10))
	if err == nil || !strings.Contains(err.Error(), path+" line 1: user \"alice\"") {
		t.Errorf("got %v, want an error naming %s line 1 and alice", err, path)
	}
	if data, _ := os.ReadFile(path); string(data) != broken {
		t.Errorf("broken file was overwritten")
	}
}

func TestEditFollowsSymlink(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real.toml")
	link := filepath.Join(dir, "users.toml")
	if err := os.Symlink(real, link); err != nil {
		t.Skip("no symlinks:", err)
	}
	if err := Edit(link, DefaultLimits(), addUser("alice", bcrypt10)); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("got %v, %v, want users.toml still a symlink", fi, err)
	}
	if _, ok := readUsers(t, real).Lookup("alice"); !ok {
		t.Errorf("alice not in the link's target")
	}
}

func TestEditConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.toml")
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			errs <- Edit(path, DefaultLimits(), addUser(fmt.Sprintf("user%02d", i), bcrypt10))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := readUsers(t, path).Len(); got != n {
		t.Errorf("got %d users, want %d: concurrent edits lost updates", got, n)
	}
}

func TestNewGeneration(t *testing.T) {
	seen := make(map[uint64]bool)
	for range 100 {
		g := NewGeneration()
		if g == 0 || g > 1<<63-1 {
			t.Fatalf("got %d, want 1..MaxInt64", g)
		}
		if seen[g] {
			t.Fatalf("got %d twice", g)
		}
		seen[g] = true
	}
}
