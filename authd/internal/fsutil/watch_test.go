package fsutil

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// report is one call of Watch's onReload; reloaded says whether reload ran for it.
type report struct {
	reloaded bool
	changed  bool
	err      error
	content  string
}

// watchFixture is a file with content "one", read once, and a Watch on it every 5ms whose
// reload reads the file and reports whether the content changed.
type watchFixture struct {
	path    string
	reports chan report
}

func newWatchFixture(t *testing.T, missing Missing) *watchFixture {
	t.Helper()
	fx := &watchFixture{path: filepath.Join(t.TempDir(), "f"), reports: make(chan report, 16)}
	if err := os.WriteFile(fx.path, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	w := NewWatched(fx.path)
	current, _, err := w.Read(1 << 10)
	if err != nil {
		t.Fatal(err)
	}
	var last report
	reload := func() (bool, error) {
		data, _, err := w.Read(1 << 10)
		last = report{reloaded: true, content: string(data)}
		if err != nil {
			return false, err
		}
		changed := !bytes.Equal(data, current)
		current = data
		return changed, nil
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Watch(ctx, 5*time.Millisecond, missing, reload, func(changed bool, err error) {
			r := last
			last = report{}
			r.changed, r.err = changed, err
			fx.reports <- r
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Watch did not stop when ctx ended")
		}
	})
	return fx
}

func (fx *watchFixture) next(t *testing.T) report {
	t.Helper()
	select {
	case r := <-fx.reports:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no report within 5s")
		return report{}
	}
}

func (fx *watchFixture) none(t *testing.T, what string) {
	t.Helper()
	select {
	case r := <-fx.reports:
		t.Errorf("%s: got report %+v, want none", what, r)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestWatchNoticesChanges(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, path string)
	}{
		{"replace by rename, same size and mtime", func(t *testing.T, path string) {
			// Only the inode tells this version from the last.
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			tmp := path + ".new"
			if err := os.WriteFile(tmp, []byte("two"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(tmp, fi.ModTime(), fi.ModTime()); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		}},
		{"edit in place, same size", func(t *testing.T, path string) {
			// Only the mtime tells this version from the last; file timestamps come from a
			// coarse clock, so let it tick first.
			time.Sleep(50 * time.Millisecond)
			if err := os.WriteFile(path, []byte("two"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		for missing, mname := range map[Missing]string{MissingReloads: "missing reloads", MissingIsError: "missing is an error"} {
			t.Run(tt.name+"/"+mname, func(t *testing.T) {
				fx := newWatchFixture(t, missing)
				fx.none(t, "unchanged file")
				tt.change(t, fx.path)
				if r := fx.next(t); !r.reloaded || !r.changed || r.err != nil || r.content != "two" {
					t.Errorf("got %+v, want a reload of %q", r, "two")
				}
				fx.none(t, "after the reload")
			})
		}
	}
}

func TestWatchDeletion(t *testing.T) {
	t.Run("missing reloads", func(t *testing.T) {
		fx := newWatchFixture(t, MissingReloads)
		if err := os.Remove(fx.path); err != nil {
			t.Fatal(err)
		}
		if r := fx.next(t); !r.reloaded || !errors.Is(r.err, fs.ErrNotExist) {
			t.Errorf("got %+v, want a reload that finds no file", r)
		}
		fx.none(t, "still missing")
	})
	t.Run("missing is an error", func(t *testing.T) {
		fx := newWatchFixture(t, MissingIsError)
		if err := os.Remove(fx.path); err != nil {
			t.Fatal(err)
		}
		if r := fx.next(t); r.reloaded || r.changed || !errors.Is(r.err, fs.ErrNotExist) {
			t.Errorf("got %+v, want the stat error and no reload", r)
		}
		fx.none(t, "still missing")
		if err := os.WriteFile(fx.path, []byte("one"), 0o600); err != nil {
			t.Fatal(err)
		}
		// The same content again: reloaded (the file is a new version) but unchanged.
		if r := fx.next(t); !r.reloaded || r.changed || r.err != nil {
			t.Errorf("after re-creation: got %+v, want a reload with no change", r)
		}
	})
}
