package server

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
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
