package hasher

import (
	"os/exec"
	"runtime"

	"golang.org/x/sys/unix"
)

// Nice is the scheduling niceness of the hashing child: the lowest
// priority, so the kernel gives verify's threads (and nginx's) the CPU first
// and a hash runs on what is left. The price is slower logins while the CPU
// is saturated.
const Nice = 19

// startLowPriority starts cmd from a thread lowered to Nice: a new process
// inherits the priority of the thread that forks it, and so do all the
// threads it starts. The thread is not handed back to the Go runtime (an
// unprivileged process cannot raise its priority again); the goroutine exits
// still locked and the runtime ends the thread.
func startLowPriority(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Failing to lower the priority only loses the protection; the
		// child still hashes.
		_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), Nice)
		errc <- cmd.Start()
	}()
	return <-errc
}
