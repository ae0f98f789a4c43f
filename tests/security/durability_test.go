package security

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestNewSecretIsDurable: the CSRF secret authd creates on first start must survive a power
// loss once authd has moved on, or a restart would quietly generate another. Its rename into
// data_dir is durable only once the directory is fsynced, so the first fsync after the rename
// must be the directory's, before authd creates or syncs any other file. Watched with strace.
func TestNewSecretIsDurable(t *testing.T) {
	requireE2E(t)
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Fatal("strace not found: run `bash tests/run.sh` (it installs strace)")
	}
	bin := os.Getenv("AUTHD_BIN")
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	users := filepath.Join(dir, "users.toml")
	must(t, os.WriteFile(users, nil, 0o600))
	port, err := freePort()
	must(t, err)
	conf := filepath.Join(dir, "authd.toml")
	must(t, os.WriteFile(conf, []byte(fmt.Sprintf(`listen = "127.0.0.1:%d"
public_url = "https://localhost:1"
data_dir = %q
users_file = %q
[[rules]]
path = "/public"
allow = "public"
`, port, dataDir, users)), 0o600))

	trace := filepath.Join(dir, "trace")
	cmd := exec.Command(strace, "-f", "-y", "-qq", "-o", trace,
		"-e", "trace=openat,open,creat,rename,renameat,renameat2,fsync,fdatasync,sync_file_range",
		bin, "serve", "-config", conf)
	logf, err := os.Create(filepath.Join(dir, "log"))
	must(t, err)
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	must(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			cmd.Process.Kill()
			<-done
		}
	}()
	// authd is the first process in the trace; stop it (not strace, which would leave it running)
	// once it is ready, so the trace ends with it.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(readFile(t, logf.Name()), "authd ready") {
		if time.Now().After(deadline) {
			t.Fatalf("authd not ready within 20s:\n%s", readFile(t, logf.Name()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, err := os.ReadFile(trace)
	must(t, err)
	pid, err := strconv.Atoi(strings.Fields(string(b))[0])
	must(t, err)
	must(t, syscall.Kill(pid, syscall.SIGTERM))
	select {
	case <-done:
		stopped = true
	case <-time.After(20 * time.Second):
		t.Fatal("authd did not stop on SIGTERM")
	}
	b, err = os.ReadFile(trace)
	must(t, err)

	secret := filepath.Join(dataDir, "secret")
	lines := strings.Split(string(b), "\n")
	renamed := -1
	for i, l := range lines {
		if strings.Contains(l, "rename") && strings.Contains(l, `, "`+secret+`"`) && strings.HasSuffix(l, "= 0") {
			renamed = i
			break
		}
	}
	if renamed < 0 {
		t.Fatalf("no rename into %s in the trace:\n%s", secret, b)
	}
	fsync := regexp.MustCompile(`\b(fsync|fdatasync)\(\d+<([^>]*)>`)
	for _, l := range lines[renamed+1:] {
		if m := fsync.FindStringSubmatch(l); m != nil {
			if m[2] != dataDir {
				t.Errorf("after the secret's rename, authd first synced %s, not the directory %s", m[2], dataDir)
			}
			return
		}
		if strings.Contains(l, "O_CREAT") {
			t.Errorf("after the secret's rename, authd created another file before syncing %s: %s", dataDir, l)
			return
		}
	}
	t.Errorf("the directory %s was never synced after the secret's rename:\n%s", dataDir, b)
}
