package hasher

import (
	"os/exec"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Nice is the scheduling niceness of the hashing child, which also runs
// under SCHED_IDLE: the kernel gives verify's threads (and nginx's) the CPU
// first, and a hash runs on what is left. Niceness alone is not enough: the
// kernel lets a running nice-19 task finish its time slice before a waking
// task gets the CPU, and verify is a chain of short wake-ups (nginx, authd,
// nginx again); a SCHED_IDLE task is preempted at once by any ordinary task
// that wakes. The price is slower logins while the CPU is saturated, bounded
// by Escalate (hasher.go).
const Nice = 19

// startLowPriority starts cmd from a thread lowered to SCHED_IDLE and Nice:
// a new process inherits the scheduling of the thread that forks it, and so
// do all the threads it starts. The thread is not handed back to the Go
// runtime (an unprivileged process cannot raise its priority again); the
// goroutine exits still locked and the runtime ends the thread.
func startLowPriority(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Failing to lower the priority only loses the protection; the
		// child still hashes.
		_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), Nice)
		_ = unix.SchedSetAttr(0, &unix.SchedAttr{Size: uint32(unsafe.Sizeof(unix.SchedAttr{})), Policy: unix.SCHED_IDLE, Nice: Nice}, 0)
		errc <- cmd.Start()
	}()
	return <-errc
}
