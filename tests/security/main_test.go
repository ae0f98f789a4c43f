package security

import (
	"fmt"
	"os"
	"testing"

	"github.com/authd/authd/tests/internal/authdtest"
)

// TestMain builds authd once for the run (unless AUTHD_BIN names a binary) and stops the shared
// stack after the last test.
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
	stopShared()
	cleanup()
	os.Exit(code)
}
