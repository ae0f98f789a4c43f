package security

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestMain builds authd once for the run (unless AUTHD_BIN names a binary) and stops the shared
// stack after the last test.
func TestMain(m *testing.M) {
	if os.Getenv("AUTHD_E2E") == "" {
		os.Exit(m.Run())
	}
	var dir string
	if os.Getenv("AUTHD_BIN") == "" {
		var err error
		dir, err = os.MkdirTemp("", "authd-security-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		bin := filepath.Join(dir, "authd")
		cmd := exec.Command("go", "build", "-o", bin, "./authd")
		cmd.Dir = filepath.Join("..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build ./authd: %v\n%s", err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
		os.Setenv("AUTHD_BIN", bin)
	}
	code := m.Run()
	stopShared()
	if dir != "" {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}
