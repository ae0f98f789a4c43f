package session

import (
	"context"
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// startRedisServer runs a redis-server on a free loopback port with args,
// until the test ends, and returns a client for it.
func startRedisServer(t *testing.T, args ...string) (*redis.Client, *exec.Cmd, int) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not on PATH (tests/run.sh installs it); skipping the Redis tests")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	cmd := exec.Command(bin, append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--logfile", filepath.Join(dir, "redis.log")}, args...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	c := redis.NewClient(&redis.Options{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	for deadline := time.Now().Add(5 * time.Second); c.Ping(context.Background()).Err() != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("redis-server did not start")
		}
	}
	return c, cmd, port
}

// TestRedisWaitReplicas: with WithWait, a login or logout is confirmed only
// once a replica holds it, and fails (so the caller answers 503) while no
// replica acknowledges; without it, the primary alone confirms, which is the
// window in which a failover loses a confirmed write.
func TestRedisWaitReplicas(t *testing.T) {
	primary, _, port := startRedisServer(t)
	replica, replicaProc, _ := startRedisServer(t, "--replicaof", "127.0.0.1", strconv.Itoa(port))
	ctx := context.Background()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		info, _ := replica.Info(ctx, "replication").Result()
		if strings.Contains(info, "master_link_status:up") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica not in sync:\n%s", info)
		}
	}
	tests := []struct {
		name    string
		wait    int
		stopped bool // the replica is stopped (SIGSTOP): it acknowledges nothing
		wantErr bool
	}{
		{"waiting, replica up", 1, false, false},
		{"waiting, replica stopped", 1, true, true},
		{"waiting for two, one replica", 2, false, true},
		{"not waiting, replica stopped", 0, true, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A replica that is up acknowledges within the timeout even on a loaded machine
			// under the race detector; one that cannot acknowledge makes the write wait it out.
			timeout := 2 * time.Second
			if tt.wantErr {
				timeout = 100 * time.Millisecond
			}
			s := NewRedis(primary, "{w"+strconv.Itoa(i)+"}:", time.Now, WithWait(tt.wait, timeout))
			k := testKey(tt.name)
			sk := s.sessKey(&k)
			if tt.stopped {
				if err := replicaProc.Process.Signal(syscall.SIGSTOP); err != nil {
					t.Fatal(err)
				}
				defer replicaProc.Process.Signal(syscall.SIGCONT)
			}
			err := s.Create(ctx, k, newTestSession("alice", time.Now()))
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("Create: got %v, want error: %v", err, tt.wantErr)
			}
			if tt.wantErr && !errors.Is(err, errNotReplicated) {
				t.Fatalf("Create: got %v, want %v", err, errNotReplicated)
			}
			if err == nil && tt.wait > 0 {
				// Confirmed means the replica holds it now, not eventually.
				if n, _ := replica.Exists(ctx, sk).Result(); n != 1 {
					t.Fatalf("replica right after a confirmed Create: got %d keys, want 1", n)
				}
			}
			if err := primary.Exists(ctx, sk).Err(); err != nil {
				t.Fatal(err)
			}
			err = s.Delete(ctx, k)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("Delete: got %v, want error: %v", err, tt.wantErr)
			}
			if err == nil && tt.wait > 0 {
				if n, _ := replica.Exists(ctx, sk).Result(); n != 0 {
					t.Fatalf("replica right after a confirmed Delete: got %d keys, want 0", n)
				}
			}
		})
	}
}
