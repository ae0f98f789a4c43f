package server

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/authd/authd/authd/internal/users"
)

// TestNicedRunsAtLowPriority: the hash runs on a thread at hashNice, and the caller's thread keeps
// its priority (the lowered thread is never reused for other goroutines).
func TestNicedRunsAtLowPriority(t *testing.T) {
	// The raw getpriority system call returns 20 - nice.
	nice := func() int {
		p, err := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
		if err != nil {
			t.Fatal(err)
		}
		return 20 - p
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before := nice()
	var inside int
	niced(func() { inside = nice() })
	if inside != hashNice {
		t.Errorf("niceness while hashing: got %d, want %d", inside, hashNice)
	}
	if got := nice(); got != before {
		t.Errorf("caller's niceness after niced: got %d, want %d", got, before)
	}
}

// TestNicedHashStaysOnItsThread: the CPU a password hash burns is burnt on the lowered thread, not
// on other threads at full priority (upstream argon2 runs its lanes on goroutines of their own).
// p=4 would spread over four goroutines upstream.
func TestNicedHashStaysOnItsThread(t *testing.T) {
	cpu := func(clock int32) time.Duration {
		var ts unix.Timespec
		if err := unix.ClockGettime(clock, &ts); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ts.Nano())
	}
	var thread, process time.Duration
	niced(func() {
		t0, p0 := cpu(unix.CLOCK_THREAD_CPUTIME_ID), cpu(unix.CLOCK_PROCESS_CPUTIME_ID)
		if _, err := users.Hash("correct horse", users.Params{MemoryKiB: 32 * 1024, Time: 2, Threads: 4}); err != nil {
			t.Error(err)
		}
		thread, process = cpu(unix.CLOCK_THREAD_CPUTIME_ID)-t0, cpu(unix.CLOCK_PROCESS_CPUTIME_ID)-p0
	})
	if process <= 0 || float64(thread) < 0.8*float64(process) {
		t.Errorf("CPU of the hash on the niced thread: got %v of the process's %v, want at least 80%%", thread, process)
	}
}
