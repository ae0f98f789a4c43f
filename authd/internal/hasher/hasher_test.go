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

// threadSched is the nice value and scheduling policy of every thread of pid.
func threadSched(t *testing.T, pid int) (nices, policies map[string]bool) {
	t.Helper()
	nices, policies = map[string]bool{}, map[string]bool{}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			continue
		}
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
		nices[f[16]], policies[f[38]] = true, true
	}
	return nices, policies
}

// TestStarvedHashEscalates: a hash the low-priority child does not answer in
// time (here: the child is stopped, as a starved one might as well be) is
// answered by a second child at the parent's own priority; the late answer of
// the first is dropped, and the first child serves the next hashes again.
func TestStarvedHashEscalates(t *testing.T) {
	if Nice == 0 {
		t.Skip("no priority on this OS")
	}
	p := newProc(t)
	p.escalate = 200 * time.Millisecond
	low := p.PID()
	if err := syscall.Kill(low, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			_ = syscall.Kill(low, syscall.SIGCONT)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h, err := p.Hash(ctx, "pw", cheap)
	if err != nil {
		t.Fatalf("hash with the low-priority child stopped: %v", err)
	}
	if ok, _, err := users.Verify(h, "pw", cheap, users.DefaultLimits()); !ok || err != nil {
		t.Fatalf("the escalated hash does not verify: %v, %v", ok, err)
	}
	if n := p.Escalated(); n != 1 {
		t.Fatalf("Escalated() = %d, want 1", n)
	}
	p.mu.Lock()
	up := p.urgent.cmd.Process.Pid
	p.mu.Unlock()
	nices, policies := threadSched(t, up)
	if len(nices) != 1 || !nices["0"] || len(policies) != 1 || !policies["0"] {
		t.Errorf("urgent child threads: nice %v, policy %v; want only nice 0 and policy 0 (SCHED_OTHER)", nices, policies)
	}

	if err := syscall.Kill(low, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	p.escalate = time.Minute // no escalation from here on, however slow the machine
	ok, _, err := p.Verify(ctx, h, "pw", cheap, users.DefaultLimits())
	if !ok || err != nil {
		t.Fatalf("verify after the low child resumed: %v, %v", ok, err)
	}
	if p.PID() != low {
		t.Errorf("low child changed: %d, was %d", p.PID(), low)
	}
	if n := p.Escalated(); n != 1 {
		t.Errorf("a hash the low child answered in time was escalated: Escalated() = %d", n)
	}
}
