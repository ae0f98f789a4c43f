package fsutil

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// listDir returns the names in dir, sorted.
func listDir(tb testing.TB, dir string) []string {
	tb.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteFile(t *testing.T) {
	tests := []struct {
		name string
		old  bool // a file is there already, with mode 0644
		o    Options
		want fs.FileMode
	}{
		{"new file", false, Options{Perm: 0o600}, 0o600},
		{"replace takes the given mode", true, Options{Perm: 0o640}, 0o640},
		{"fixed temporary name", true, Options{Perm: 0o600, Temp: "f.tmp"}, 0o600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "f")
			if tt.old {
				if err := os.WriteFile(path, []byte("old content"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := WriteFile(path, []byte("new"), tt.o); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != "new" {
				t.Errorf("content: got %q, %v, want %q", got, err, "new")
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != tt.want {
				t.Errorf("mode: got %04o, want %04o", fi.Mode().Perm(), tt.want)
			}
			if names := listDir(t, dir); !slices.Equal(names, []string{"f"}) {
				t.Errorf("directory holds %q, want only the file", names)
			}
		})
	}
}

// TestWriteFailureKeepsOld checks that a write that fails at any step leaves the old file as
// it was and no temporary file behind.
func TestWriteFailureKeepsOld(t *testing.T) {
	tests := []struct {
		name  string
		o     Options
		write func(io.Writer) error
		dirty func(t *testing.T, path string) // breaks the rename
	}{
		{"write fails midway", Options{Perm: 0o600}, func(w io.Writer) error {
			w.Write([]byte("half of the new"))
			return errors.New("disk full")
		}, nil},
		{"write fails midway, fixed temporary name", Options{Perm: 0o600, Temp: "f.tmp"}, func(w io.Writer) error {
			w.Write([]byte("half of the new"))
			return errors.New("disk full")
		}, nil},
		{"rename fails", Options{Perm: 0o600}, func(w io.Writer) error {
			_, err := w.Write([]byte("new"))
			return err
		}, func(t *testing.T, path string) {
			// A non-empty directory in the file's place cannot be renamed over.
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(path, "x"), []byte("old content"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "f")
			check := filepath.Join(dir, "f")
			if tt.dirty != nil {
				tt.dirty(t, path)
				check = filepath.Join(path, "x")
			} else if err := os.WriteFile(path, []byte("old content"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := Write(path, tt.o, tt.write); err == nil {
				t.Fatal("got nil error, want the failure")
			}
			if got, err := os.ReadFile(check); err != nil || string(got) != "old content" {
				t.Errorf("old file: got %q, %v, want %q", got, err, "old content")
			}
			if names := listDir(t, dir); !slices.Equal(names, []string{"f"}) {
				t.Errorf("directory holds %q, want only the old file", names)
			}
		})
	}
}

// TestWriteSyncsDirectory checks the directory is fsynced after the rename: until then the
// rename may be lost in a crash, leaving the old file (or none) after Write returned nil.
func TestWriteSyncsDirectory(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	var synced []string
	err := replace(path, Options{Perm: 0o600}, func(w io.Writer) error {
		_, err := w.Write([]byte("new"))
		return err
	}, func(d string) error {
		if got, err := os.ReadFile(path); err != nil || string(got) != "new" {
			t.Errorf("directory synced before the rename: file holds %q, %v", got, err)
		}
		synced = append(synced, d)
		return SyncDir(d)
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(synced, []string{dir}) {
		t.Errorf("synced directories: got %q, want %q", synced, []string{dir})
	}

	failing := errors.New("sync failed")
	err = replace(path, Options{Perm: 0o600}, func(w io.Writer) error { return nil },
		func(string) error { return failing })
	if !errors.Is(err, failing) {
		t.Errorf("a failed directory sync: got %v, want %v", err, failing)
	}
	if err := SyncDir(filepath.Join(dir, "missing")); err == nil {
		t.Errorf("SyncDir of a missing directory: got nil, want an error")
	}
}

func TestWriteOwner(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	want := &Owner{UID: 4242, GID: 4343}
	if err := WriteFile(path, []byte("x"), Options{Perm: 0o600, Owner: want}); err != nil {
		t.Fatalf("got %v, want nil (a refused chown is not an error)", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	got := OwnerOf(fi)
	if os.Geteuid() != 0 {
		// Only root may give a file away; anyone else keeps their own ownership.
		want = &Owner{UID: os.Geteuid(), GID: got.GID}
	}
	if *got != *want {
		t.Errorf("owner: got %+v, want %+v", *got, *want)
	}
}

// TestOpenSharedTakesTheDirectoryOwner: a file OpenShared creates belongs to
// its directory's owner (root running the CLI in authd's data directory), an
// existing file keeps its own.
func TestOpenSharedTakesTheDirectoryOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files away")
	}
	dir := t.TempDir()
	const uid, gid = 65534, 65534
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(dir, "old")
	if err := os.WriteFile(old, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		uid, gid int
	}{{"new", uid, gid}, {"old", 0, 0}} {
		f, err := OpenShared(filepath.Join(dir, tc.name), os.O_RDWR|os.O_APPEND, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := f.Stat()
		f.Close()
		if o := OwnerOf(fi); o.UID != tc.uid || o.GID != tc.gid {
			t.Errorf("%s: owner %d:%d, want %d:%d", tc.name, o.UID, o.GID, tc.uid, tc.gid)
		}
	}
	l, err := Lock(filepath.Join(dir, "x.lock"))
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := l.Stat()
	l.Close()
	if o := OwnerOf(fi); o.UID != uid {
		t.Errorf("lock file owner %d, want the directory's %d", o.UID, uid)
	}
}
