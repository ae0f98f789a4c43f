package fsutil

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestLockExcludes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.lock")
	first, err := Lock(path)
	if err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	if f, err := TryLock(path); !errors.Is(err, ErrLocked) {
		if f != nil {
			f.Close()
		}
		t.Fatalf("TryLock while held: got %v, want %v", err, ErrLocked)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("TryLock while held took %v, want it to fail at once", d)
	}

	acquired := make(chan *os.File)
	go func() {
		f, err := Lock(path)
		if err != nil {
			t.Error(err)
		}
		acquired <- f
	}()
	select {
	case f := <-acquired:
		f.Close()
		t.Fatal("a second Lock got the lock while the first held it")
	case <-time.After(100 * time.Millisecond):
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case f := <-acquired:
		if f == nil {
			t.Fatal("second Lock failed")
		}
		// Released by Close: TryLock now fails again while the second holds it.
		if g, err := TryLock(path); !errors.Is(err, ErrLocked) {
			if g != nil {
				g.Close()
			}
			t.Errorf("TryLock while the second holds it: got %v, want %v", err, ErrLocked)
		}
		f.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("second Lock still waiting after the first was released")
	}

	f, err := TryLock(path)
	if err != nil {
		t.Fatalf("TryLock once free: got %v, want nil", err)
	}
	f.Close()
	if _, err := os.Stat(path); err != nil {
		t.Errorf("lock file: got %v, want it kept", err)
	}
}

func TestLockErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "f.lock")
	if _, err := Lock(path); err == nil || errors.Is(err, ErrLocked) {
		t.Errorf("Lock in a missing directory: got %v, want an open error", err)
	}
	if _, err := TryLock(path); err == nil || errors.Is(err, ErrLocked) {
		t.Errorf("TryLock in a missing directory: got %v, want an open error", err)
	}
}
