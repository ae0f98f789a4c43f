package hasher

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/authd/authd/authd/internal/users"
)

// The test binary is its own child: with HASHER_TEST_CHILD set it serves.
func TestMain(m *testing.M) {
	if os.Getenv("HASHER_TEST_CHILD") != "" {
		if err := Serve(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var cheap = users.Params{MemoryKiB: 64, Time: 1, Threads: 1}

func newProc(t testing.TB) *Proc {
	t.Helper()
	t.Setenv("HASHER_TEST_CHILD", "1")
	p := New(os.Args[0])
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func TestVerifyHashDummy(t *testing.T) {
	p := newProc(t)
	ctx := context.Background()
	h, err := p.Hash(ctx, "correct horse", cheap)
	if err != nil || !strings.HasPrefix(h, "$argon2id$") {
		t.Fatalf("Hash: got %q, %v", h, err)
	}
	lim := users.LimitsFor(cheap, 12)
	for _, tc := range []struct {
		pw   string
		want bool
	}{{"correct horse", true}, {"wrong horse", false}} {
		ok, _, err := p.Verify(ctx, h, tc.pw, cheap, lim)
		if err != nil || ok != tc.want {
			t.Errorf("Verify(%q): got %v, %v, want %v", tc.pw, ok, err, tc.want)
		}
	}
	if _, _, err := p.Verify(ctx, "$argon2id$garbage", "x", cheap, lim); err == nil || errors.Is(err, ErrUnavailable) {
		t.Errorf("Verify of a malformed hash: got %v, want the hash's error", err)
	}
	if err := p.Dummy(ctx, "anything", cheap); err != nil {
		t.Errorf("Dummy: %v", err)
	}
}

// TestChildRunsAtLowestPriority: the child and every thread it started run at Nice, under SCHED_IDLE.
func TestChildRunsAtLowestPriority(t *testing.T) {
	if Nice == 0 {
		t.Skip("no priority on this OS")
	}
	p := newProc(t)
	if _, err := p.Hash(context.Background(), "x", users.Params{MemoryKiB: 8 * 1024, Time: 1, Threads: 1}); err != nil {
		t.Fatal(err)
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", p.PID()))
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", p.PID(), task.Name()))
		if err != nil {
			continue // the thread ended
		}
		// Field 19 is the nice value; fields after the ")" of the command.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
		if f[16] != fmt.Sprint(Nice) {
			t.Errorf("thread %s of the child: nice %s, want %d", task.Name(), f[16], Nice)
		}
		// Field 41 is the scheduling policy; 5 is SCHED_IDLE.
		if f[38] != "5" {
			t.Errorf("thread %s of the child: scheduling policy %s, want 5 (SCHED_IDLE)", task.Name(), f[38])
		}
	}
	// The parent's own priority is untouched.
	if prio, err := syscall.Getpriority(syscall.PRIO_PROCESS, 0); err != nil || 20-prio != 0 {
		t.Errorf("parent nice: got %d (%v), want 0", 20-prio, err)
	}
}

// TestChildDies: a hash in flight when the child dies fails as unavailable, and the next call
// starts a new child.
func TestChildDies(t *testing.T) {
	p := newProc(t)
	pid := p.PID()
	errc := make(chan error, 1)
	go func() {
		_, err := p.Hash(context.Background(), "x", users.Params{MemoryKiB: 256 * 1024, Time: 8, Threads: 1})
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("hash in flight when the child died: got %v, want ErrUnavailable", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("hash in flight never returned after the child died")
	}
	h, err := p.Hash(context.Background(), "y", cheap)
	if err != nil || h == "" {
		t.Fatalf("hash after the child died: got %q, %v", h, err)
	}
	if p.PID() == pid || p.PID() == 0 {
		t.Fatalf("child pid after restart: got %d (was %d)", p.PID(), pid)
	}
}
