package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestMain builds authd once for every stack of the run (unless AUTHD_BIN names a binary).
func TestMain(m *testing.M) {
	if os.Getenv("AUTHD_E2E") == "" || os.Getenv("AUTHD_BIN") != "" {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "authd-e2e-bin-")
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
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
