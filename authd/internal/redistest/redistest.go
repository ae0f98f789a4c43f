// Package redistest runs a throwaway redis-server for the Redis stores'
// tests. It is imported by tests only.
package redistest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a redis-server started for one test binary. The zero Server
// (redis-server not installed) makes Open skip.
type Server struct {
	addr     string
	prefixes atomic.Int64
}

// Run starts redis-server without persistence on a free loopback port, runs
// the tests and stops it: call it from TestMain as os.Exit(redistest.Run(m, &srv)).
// Without redis-server on PATH the tests run and the Redis ones skip.
func Run(m *testing.M, srv *Server) int {
	stop := srv.start()
	defer stop()
	return m.Run()
}

func (s *Server) start() func() {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return func() {}
	}
	dir, err := os.MkdirTemp("", "authd-redis-test-")
	if err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--logfile", filepath.Join(dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		panic(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(5 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			panic("redis-server did not start; see " + dir)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.addr = addr
	return func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		os.RemoveAll(dir)
	}
}

// Start starts redis-server for the test tb alone and stops it when tb
// ends, for a package that needs Redis in a test or two and no TestMain.
// Without redis-server on PATH, Open then skips.
func Start(tb testing.TB) *Server {
	s := &Server{}
	tb.Cleanup(s.start())
	return s
}

// Addr is the server's address, or "" when redis-server is not installed.
func (s *Server) Addr() string { return s.addr }

// Open returns a client and a key prefix (a Cluster hash tag) no other test
// uses, or skips the test when redis-server is not installed.
func (s *Server) Open(tb testing.TB) (redis.UniversalClient, string) {
	tb.Helper()
	if s.addr == "" {
		tb.Skip("redis-server not on PATH (tests/run.sh installs it); skipping the Redis tests")
	}
	c := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{s.addr}, Protocol: 2, DisableIdentity: true})
	tb.Cleanup(func() { c.Close() })
	return c, fmt.Sprintf("{t%d}:", s.prefixes.Add(1))
}
