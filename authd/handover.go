package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// Zero-downtime restarts keep one listening socket open for the whole
// restart, so nginx's connect always succeeds and a verify waits in the
// socket's backlog instead of failing while no authd is serving:
//
//   - systemd socket activation: systemd owns the socket (authd.socket) and
//     passes it on every start (LISTEN_FDS); a restart only swaps the process.
//   - SIGUSR2 (supervisor, plain runs, binary upgrades): authd checks that
//     the binary at its path runs check-config on the config, stops
//     accepting, drains, closes its stores (releasing the data_dir lock the
//     new image needs), then execs that binary in place — same PID, so
//     supervisor and systemd see nothing — with the socket left open.
//
// authd keeps its own copy of the socket's fd for the life of the process:
// Shutdown closes the served copy, the kept one keeps the socket listening.
// The exec passes it at its own number (AUTHD_LISTEN_FD), not at fd 3 as
// LISTEN_FDS would: since Go 1.25 the runtime holds fds 3 and 4 (the cgroup
// CPU limit files) from before main, so fd 3 cannot be freed for it.

// listenFDsStart is the first fd of the sd_listen_fds protocol.
const listenFDsStart = 3

// fdName is the FileDescriptorName authd looks for when a socket unit
// passes more than one socket.
const fdName = "authd"

// The variables with which a handover passes the socket to the new image.
const (
	envListenFD  = "AUTHD_LISTEN_FD"
	envListenPID = "AUTHD_LISTEN_PID"
)

// errHandover ends Run when SIGUSR2 asked for a handover: the caller closes
// Main (drain, release the stores) and then calls (*handover).exec.
var errHandover = errors.New("handover requested")

// handover keeps the listening socket's fd (close-on-exec until the
// handover's exec). fd is -1 before the listener exists.
type handover struct {
	fd        int
	inherited bool   // the socket came from LISTEN_FDS or a previous image
	name      string // its LISTEN_FDNAMES entry, or "handover"
}

// newHandover finds an inherited socket: from a previous image of this
// process (AUTHD_LISTEN_FD) or from systemd (LISTEN_FDS). It unsets the
// variables, so children such as check-config do not see them.
func newHandover(getenv func(string) string, pid int) (*handover, error) {
	fds, err := listenFDs(getenv, pid)
	if err == nil && len(fds) == 0 {
		fds, err = handoverFD(getenv, pid)
	}
	for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", envListenFD, envListenPID} {
		_ = os.Unsetenv(k)
	}
	if err != nil {
		return nil, err
	}
	if len(fds) == 0 {
		return &handover{fd: -1}, nil
	}
	i, err := pickFD(fds)
	if err != nil {
		return nil, err
	}
	// The fds we do not use stay open (closing systemd's copy would not
	// close the socket anyway), but no child gets them.
	for _, f := range fds {
		syscall.CloseOnExec(f.fd)
	}
	return &handover{fd: fds[i].fd, inherited: true, name: fds[i].name}, nil
}

// handoverFD reads AUTHD_LISTEN_FD, which only counts when
// AUTHD_LISTEN_PID is this process (the exec kept the PID).
func handoverFD(getenv func(string) string, pid int) ([]listenFD, error) {
	if getenv(envListenFD) == "" {
		return nil, nil
	}
	if p, err := strconv.Atoi(getenv(envListenPID)); err != nil || p != pid {
		return nil, nil
	}
	fd, err := strconv.Atoi(getenv(envListenFD))
	if err != nil || fd < listenFDsStart {
		return nil, fmt.Errorf("%s: not an inherited fd (got %q)", envListenFD, getenv(envListenFD))
	}
	return []listenFD{{fd: fd, name: "handover"}}, nil
}

type listenFD struct {
	fd   int
	name string
}

// listenFDs implements sd_listen_fds: LISTEN_PID must name this process
// (otherwise the variables were meant for a parent and are ignored),
// LISTEN_FDS counts the fds from 3, LISTEN_FDNAMES names them (optional).
func listenFDs(getenv func(string) string, pid int) ([]listenFD, error) {
	if getenv("LISTEN_PID") == "" && getenv("LISTEN_FDS") == "" {
		return nil, nil
	}
	p, err := strconv.Atoi(getenv("LISTEN_PID"))
	if err != nil || p != pid {
		return nil, nil
	}
	n, err := strconv.Atoi(getenv("LISTEN_FDS"))
	if err != nil || n < 0 || n > 64 {
		return nil, fmt.Errorf("LISTEN_FDS: not a count of fds (got %q)", getenv("LISTEN_FDS"))
	}
	var names []string
	if s := getenv("LISTEN_FDNAMES"); s != "" {
		names = strings.Split(s, ":")
	}
	fds := make([]listenFD, n)
	for i := range fds {
		fds[i].fd = listenFDsStart + i
		if i < len(names) {
			fds[i].name = names[i]
		}
	}
	return fds, nil
}

// pickFD returns the index of the socket to serve: the only one, or the
// one named "authd".
func pickFD(fds []listenFD) (int, error) {
	if len(fds) == 1 {
		return 0, nil
	}
	for i, f := range fds {
		if f.name == fdName {
			return i, nil
		}
	}
	return 0, fmt.Errorf("LISTEN_FDS: %d sockets passed and none named %q (FileDescriptorName=%s in authd.socket)", len(fds), fdName, fdName)
}

// listener returns the inherited socket as a listener, or binds one with
// bind and keeps a copy of its fd for a later handover.
func (h *handover) listener(bind func() (net.Listener, error)) (net.Listener, error) {
	if h.inherited {
		// FileListener serves a dup: h.fd itself is never closed.
		nfd, err := dupCloexec(h.fd)
		if err != nil {
			return nil, fmt.Errorf("inherited socket (fd %d): %w", h.fd, err)
		}
		f := os.NewFile(uintptr(nfd), "inherited socket")
		defer f.Close()
		ln, err := net.FileListener(f)
		if err != nil {
			return nil, fmt.Errorf("inherited socket (fd %d): %w", h.fd, err)
		}
		return ln, nil
	}
	ln, err := bind()
	if err != nil {
		return nil, err
	}
	if ul, ok := ln.(*net.UnixListener); ok {
		// The socket file must survive the served copy's Close.
		ul.SetUnlinkOnClose(false)
	}
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return ln, nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("listener fd: %w", err)
	}
	var derr error
	if err := rc.Control(func(fd uintptr) { h.fd, derr = dupCloexec(int(fd)) }); err != nil || derr != nil {
		ln.Close()
		return nil, fmt.Errorf("keep a copy of the listener: %w", errors.Join(err, derr))
	}
	return ln, nil
}

func dupCloexec(fd int) (int, error) {
	nfd, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
	if e != 0 {
		return -1, e
	}
	return int(nfd), nil
}

// close closes the kept fd (a stop, not a handover).
func (h *handover) close() {
	if h.fd >= 0 {
		_ = syscall.Close(h.fd)
		h.fd = -1
	}
}

// check runs `exe check-config -config cfgPath`: the binary that will
// replace this one must start and accept the config, or the handover is
// refused and this process keeps serving.
func (h *handover) check(ctx context.Context, exe, cfgPath string) error {
	if h.fd < 0 {
		return errors.New("no listening socket to hand over")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, exe, "check-config", "-config", cfgPath).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s check-config: %w: %s", exe, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// exec replaces this process with exe, passing the socket. It returns only
// on failure.
func (h *handover) exec(exe string, args, env []string) error {
	if _, _, e := syscall.RawSyscall(syscall.SYS_FCNTL, uintptr(h.fd), syscall.F_SETFD, 0); e != 0 {
		return fmt.Errorf("exec %s: clear close-on-exec on fd %d: %w", exe, h.fd, e)
	}
	if err := syscall.Exec(exe, args, handoverEnv(env, h.fd, os.Getpid())); err != nil {
		return fmt.Errorf("exec %s: %w", exe, err)
	}
	return nil
}

// handoverEnv is env with the variables that pass fd to the same pid.
func handoverEnv(env []string, fd, pid int) []string {
	out := make([]string, 0, len(env)+2)
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", envListenFD, envListenPID:
			continue
		}
		out = append(out, kv)
	}
	return append(out, envListenFD+"="+strconv.Itoa(fd), envListenPID+"="+strconv.Itoa(pid))
}

// logInherited says where the socket came from, and warns when it is not
// the address the config names (nginx is configured from the config).
func logInherited(log *zap.Logger, h *handover, ln net.Listener, listen string) {
	if !h.inherited {
		return
	}
	addr := ln.Addr().String()
	if ln.Addr().Network() == "unix" {
		addr = "unix:" + addr
	}
	log.Info("serving an inherited socket", zap.String("event", "socket_inherited"), zap.String("addr", addr), zap.String("fd_name", h.name))
	if addr != listen {
		log.Warn("the inherited socket is not the config's listen address; nginx must point at the socket", zap.String("addr", addr), zap.String("listen", listen))
	}
}
