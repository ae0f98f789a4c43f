package e2e

import (
	"fmt"
	"os"
	"testing"

	"github.com/authd/authd/tests/internal/authdtest"
)

// TestMain builds authd once for every stack of the run (unless AUTHD_BIN names a binary).
func TestMain(m *testing.M) {
	if os.Getenv("AUTHD_E2E") == "" {
		os.Exit(m.Run())
	}
	cleanup, err := authdtest.BuildOnce()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	cleanup()
	os.Exit(code)
}
