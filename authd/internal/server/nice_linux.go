package server

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// hashNice is the scheduling niceness of the threads that run password
// hashes. A hash at the bound of a stored hash's parameters takes a core
// for most of a second; at the lowest priority the kernel gives verify's
// threads (and nginx's, on the same machine) the CPU first, so such a hash
// stretches verify's tail latency less. Go's scheduler cannot do this: it
// does not know nginx. The price is slower logins while the CPU is
// saturated. This only holds because the hash stays on the thread: authd's
// argon2 (internal/argon2) runs every lane on the calling goroutine, where
// upstream's starts goroutines that run on ordinary threads, at full
// priority (in the flood benchmark, nearly all of the hashing did).
const hashNice = 19

// niced runs fn on an OS thread of its own at hashNice and waits for it.
// The thread is not handed back to the Go runtime: an unprivileged process
// cannot raise a thread's priority again, so the goroutine exits still
// locked and the runtime ends the thread. A thread per login costs tens of
// microseconds beside a hash's tens of milliseconds.
func niced(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		// Failing to lower the priority only loses the protection; the
		// hash still runs.
		_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), hashNice)
		fn()
	}()
	<-done
}
