package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestReloadAppliesHashBounds: a reload that changes [hash] max_bcrypt_cost
// moves the bounds the running users store checks stored hashes against, as a
// restart would. Raised, a user the CLI imported under the new config (which
// the old bounds refused) can log in after SIGHUP. Lowered below a user's hash,
// the reload fails naming the user, like serve would at start, and the running
// config and users stay: that user still logs in.
func TestReloadAppliesHashBounds(t *testing.T) {
	const alicePW, carolPW = "long enough pw 1", "imported pass 1"
	bcrypt11, err := bcrypt.GenerateFromPassword([]byte(carolPW), 11)
	if err != nil {
		t.Fatal(err)
	}
	bounds := func(cost string) string { return "[hash]\nmax_bcrypt_cost = " + cost + "\n" }
	importCarol := func(s *stack) {
		ht := filepath.Join(s.dir, "htpasswd")
		if err := os.WriteFile(ht, []byte("carol:"+string(bcrypt11)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		s.mustCLI("", "user", "import-htpasswd", ht)
	}
	tests := []struct {
		name          string
		start, reload string // max_bcrypt_cost
		importAfter   bool   // import carol after rewriting the config, not before starting
		wantFail      string // in the failed reload's error; "" means it applies
	}{
		{"raised", "10", "12", true, ""},
		{"lowered below a stored hash", "12", "10", false, "bcrypt cost 11 is above the limit 10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStack(t, bounds(tt.start))
			s.mustCLI(alicePW+"\n", "user", "add", "alice")
			if !tt.importAfter {
				importCarol(s)
			}
			s.start()
			s.writeConfig(s.addr, bounds(tt.reload))
			if tt.importAfter {
				importCarol(s) // the CLI reads the new config
			}
			ok, failed := reloadOutcome(t, s)
			if tt.wantFail == "" {
				if failed != "" || !ok {
					t.Fatalf("reload: failed %q; want it applied:\n%s", failed, s.logs)
				}
			} else if !strings.Contains(failed, tt.wantFail) || !strings.Contains(failed, "carol") {
				t.Fatalf("reload: applied %v, failed %q; want a failure naming carol and %q", ok, failed, tt.wantFail)
			}
			if c, r := s.login("carol", carolPW, "/"); c == "" {
				t.Errorf("carol after the reload: login got %d, want a session", r.StatusCode)
			}
			if c, r := s.login("alice", alicePW, "/"); c == "" {
				t.Errorf("alice after the reload: login got %d, want a session", r.StatusCode)
			}
			s.stop(syscall.SIGTERM)
		})
	}
}

// reloadOutcome sends SIGHUP and returns whether the reload applied, or the
// error of the SIGHUP reload that failed. The users file watcher's own
// failures ("users file reload failed") are not the SIGHUP's.
func reloadOutcome(t *testing.T, s *stack) (applied bool, failed string) {
	t.Helper()
	const failMsg = "reload failed, keeping the last good users"
	count := func() (int, []string) {
		var errs []string
		for _, r := range s.logRecords() {
			if r["msg"] == failMsg || r["msg"] == "reload failed, keeping the last good config" {
				e, _ := r["error"].(string)
				errs = append(errs, e)
			}
		}
		return s.countLog("msg", "reloaded"), errs
	}
	okBefore, errsBefore := count()
	_ = s.proc.Process.Signal(syscall.SIGHUP)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		ok, errs := count()
		if ok > okBefore {
			return true, ""
		}
		if len(errs) > len(errsBefore) {
			return false, errs[len(errs)-1]
		}
	}
	t.Fatalf("no reload outcome in the log after SIGHUP:\n%s", s.logs)
	return false, ""
}
