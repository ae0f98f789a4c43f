package session

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The tests here run a store in a child process (this test binary, re-run
// with childEnv set) to see what another process and kill -9 do.
const (
	childEnv     = "AUTHD_SESSION_TEST_CHILD"
	childDirEnv  = "AUTHD_SESSION_TEST_DIR"
	crashCreates = 200
)

// TestHelperProcess is the child. It is skipped in a normal run.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		t.Skip("only runs as a child process")
	}
	s, err := OpenEmbedded(os.Getenv(childDirEnv), nil)
	if err != nil {
		fmt.Println("open failed:", err)
		os.Exit(3)
	}
	switch mode {
	case "rss":
		// Report what a store loaded from disk costs the process.
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Printf("rss %d %d %d\n", s.Len(), vmRSS(), ms.HeapInuse)
	case "hold":
		fmt.Println("locked")
	case "crash":
		// Concurrent creates, as logins would come: they share fsyncs.
		base := suiteBase()
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for i := w; i < crashCreates; i += 8 {
					if err := s.Create(context.Background(), testKey(fmt.Sprint(i)), newTestSession("alice", base)); err != nil {
						fmt.Println("create failed:", err)
						os.Exit(3)
					}
				}
			})
		}
		wg.Wait()
		fmt.Println("created")
	}
	time.Sleep(time.Minute) // until killed
	os.Exit(4)
}

// startChild runs the child in mode on dir, waits for it to print a line
// starting with want, and returns the line.
func startChild(t testing.TB, mode, dir, want string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, childDirEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), want) || strings.Contains(sc.Text(), "failed") {
				line <- sc.Text()
				break
			}
		}
		close(line)
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case got := <-line:
		if !strings.HasPrefix(got, want) {
			t.Fatalf("child said %q, want %q", got, want)
		}
		return cmd, got
	case <-time.After(time.Minute):
		t.Fatalf("child did not say %q in time", want)
	}
	return cmd, ""
}

func killChild(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no chance to flush
		t.Fatal(err)
	}
	_ = cmd.Wait()
}

func TestEmbeddedSurvivesKill9(t *testing.T) {
	dir := t.TempDir()
	cmd, _ := startChild(t, "crash", dir, "created")
	killChild(t, cmd)
	s := openTestStore(t, dir, nil)
	if s.Len() != crashCreates {
		t.Fatalf("Len after kill -9: got %d, want %d", s.Len(), crashCreates)
	}
	for i := range crashCreates {
		if _, ok := mustGet(t, s, testKey(fmt.Sprint(i))); !ok {
			t.Fatalf("session %d confirmed before kill -9: got not found", i)
		}
	}
}

func TestEmbeddedLock(t *testing.T) {
	t.Run("same process", func(t *testing.T) {
		dir := t.TempDir()
		s := openTestStore(t, dir, nil)
		_, err := OpenEmbedded(dir, nil)
		checkLockedError(t, err, dir, os.Getpid())
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s2 := openTestStore(t, dir, nil) // released by Close
		_ = s2
	})
	t.Run("other process", func(t *testing.T) {
		dir := t.TempDir()
		cmd, _ := startChild(t, "hold", dir, "locked")
		_, err := OpenEmbedded(dir, nil)
		checkLockedError(t, err, dir, cmd.Process.Pid)
		killChild(t, cmd)
		openTestStore(t, dir, nil) // the kernel dropped the dead process's lock
	})
}

func checkLockedError(tb testing.TB, err error, dir string, pid int) {
	tb.Helper()
	if !errors.Is(err, ErrLocked) {
		tb.Fatalf("second open: got %v, want ErrLocked", err)
	}
	want := "data directory " + dir + " is in use by another authd (pid " + strconv.Itoa(pid) + "); stop it or use another data_dir"
	if err.Error() != want {
		tb.Fatalf("message: got %q, want %q", err, want)
	}
}

// vmRSS returns the process's resident set in bytes, or 0 where /proc has none.
func vmRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
