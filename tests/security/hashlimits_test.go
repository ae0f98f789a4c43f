package security

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestStoredHashBounds covers "Stored-hash parameters are bounded relative to the configured
// [hash] cost … a users file with a hash beyond the bounds is refused at check-config/start/
// reload naming the user". With the default [hash] (argon2id m=19456, t=2, p=1; max_bcrypt_cost
// 12) the bounds are m ≤ 77824, t ≤ 8, p ≤ 1 and bcrypt cost ≤ 12. Each over-bound hash is
// appended as user "heavy" to the stack's users file: check-config exits 1 naming heavy and its
// line without printing the hash, `serve` refuses to start, and a SIGHUP reload with that file
// keeps the old users (ada still logs in) and logs the refusal. The hashes only need to parse:
// the bounds are checked before any hashing.
func TestStoredHashBounds(t *testing.T) {
	s := newStack(t, stackOptions{logLevel: "info"})
	good := readFile(t, s.usersFile)
	line := strings.Count(good, "\n") + 2 // the blank line, then heavy's [[users]]
	const salt, key = "c2FsdHNhbHRzYWx0c2FsdA", "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U"
	argon := func(m, tm, p int) string {
		return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", m, tm, p, salt, key)
	}
	bcryptAt := func(cost int) string { return fmt.Sprintf("$2b$%02d$", cost) + strings.Repeat("x", 53) }
	withHeavy := func(hash string) string {
		return good + "\n[[users]]\nname = \"heavy\"\nhash = \"" + hash + "\"\ngeneration = 99\n"
	}
	tests := []struct {
		name, hash string
		refused    bool
	}{
		{"argon2id memory over 4x", argon(4*19456+1, 2, 1), true},
		{"argon2id time over 4x", argon(19456, 9, 1), true},
		{"argon2id threads over the configured", argon(19456, 2, 2), true},
		{"bcrypt cost 13", bcryptAt(13), true},
		{"argon2id at the bound", argon(4*19456, 8, 1), false},
		{"bcrypt cost 12", bcryptAt(12), false},
	}
	for _, tt := range tests {
		t.Run("check-config "+tt.name, func(t *testing.T) {
			file := s.dir + "/heavy-users.toml"
			must(t, os.WriteFile(file, []byte(withHeavy(tt.hash)), 0o600))
			cf := s.dir + "/heavy.toml"
			must(t, os.WriteFile(cf, []byte(strings.Replace(readFile(t, s.conf), s.usersFile, file, 1)), 0o600))
			out, err := runAuthd(s.bin, "check-config", "-config", cf)
			if !tt.refused {
				if err != nil {
					t.Fatalf("check-config refused a hash within the bounds: %v\n%s", err, out)
				}
				return
			}
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
				t.Fatalf("check-config: got %v, want exit status 1\n%s", err, out)
			}
			if !regexp.MustCompile(`line ` + strconv.Itoa(line) + `\b.*"heavy".*above the limit`).MatchString(out) {
				t.Errorf("error does not name user heavy at line %d and the limit:\n%s", line, out)
			}
			if strings.Contains(out, tt.hash) || strings.Contains(out, salt) || strings.Contains(out, strings.Repeat("x", 20)) {
				t.Errorf("error prints the hash:\n%s", out)
			}
		})
	}

	t.Run("serve refuses to start", func(t *testing.T) {
		file := s.dir + "/heavy-users.toml"
		must(t, os.WriteFile(file, []byte(withHeavy(bcryptAt(13))), 0o600))
		port, err := freePort()
		must(t, err)
		conf := strings.Replace(readFile(t, s.conf), s.usersFile, file, 1)
		conf = regexp.MustCompile(`(?m)^listen = .*$`).ReplaceAllString(conf, fmt.Sprintf("listen = \"127.0.0.1:%d\"", port))
		conf = strings.Replace(conf, s.dataDir, s.dir+"/data2", 1)
		cf := s.dir + "/heavy-serve.toml"
		must(t, os.WriteFile(cf, []byte(conf), 0o600))
		cmd := exec.Command(s.bin, "serve", "-config", cf)
		done := make(chan struct{})
		var out []byte
		go func() { out, err = cmd.CombinedOutput(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("serve with an over-bound hash kept running:\n%s", out)
		}
		if err == nil || !strings.Contains(string(out), `"heavy"`) || !strings.Contains(string(out), "bcrypt cost 13 is above the limit 12") {
			t.Errorf("serve: got %v, want a refusal naming heavy's bcrypt cost:\n%s", err, out)
		}
	})

	t.Run("reload keeps the last good users", func(t *testing.T) {
		before := strings.Count(s.authdLog(t), `"event":"reload_failed"`)
		must(t, os.WriteFile(s.usersFile, []byte(withHeavy(argon(19456, 9, 1))), 0o600))
		s.proc("authd").signal(syscall.SIGHUP)
		waitFor(t, "reload refusal in the log", func() bool {
			return strings.Count(s.authdLog(t), `"event":"reload_failed"`) > before
		})
		log := s.authdLog(t)
		if !strings.Contains(log, `\"heavy\"`) || !strings.Contains(log, "argon2id time 9 is above the limit 8") {
			t.Errorf("reload refusal does not name heavy and the limit:\n%s", tail(s.logs+"/authd.log", 5))
		}
		if r := s.loginAs(t, "ada", adaPassword, "127.0.0.90"); r.Status != http.StatusSeeOther {
			t.Errorf("ada after the refused reload: got %s, want 303", r)
		}
		if r := s.loginAs(t, "heavy", "anything at all", "127.0.0.91"); r.Status != http.StatusUnauthorized {
			t.Errorf("heavy after the refused reload: got %s, want 401", r)
		}
	})

	// A SIGHUP that raises [hash] max_bcrypt_cost applies the new bounds to the running users
	// store, as a restart would: a user with a bcrypt-13 hash, refused under the default 12, logs
	// in through nginx after the reload. (Before, the reload kept checking the users against the
	// bounds authd started with and failed, so only a restart let such a user in.)
	t.Run("reload that raises max_bcrypt_cost admits the user", func(t *testing.T) {
		const pw = "imported from the old system"
		h, err := bcrypt.GenerateFromPassword([]byte(pw), 13)
		must(t, err)
		before := strings.Count(s.authdLog(t), `"msg":"reloaded"`)
		must(t, os.WriteFile(s.conf, []byte(readFile(t, s.conf)+"\n[hash]\nmax_bcrypt_cost = 13\n"), 0o600))
		must(t, os.WriteFile(s.usersFile, []byte(good+"\n[[users]]\nname = \"carol\"\nhash = \""+string(h)+"\"\ngeneration = 100\n"), 0o600))
		s.proc("authd").signal(syscall.SIGHUP)
		waitFor(t, "the reload applied", func() bool {
			return strings.Count(s.authdLog(t), `"msg":"reloaded"`) > before
		})
		if r := s.loginAs(t, "carol", pw, "127.0.0.92"); r.Status != http.StatusSeeOther {
			t.Errorf("carol (bcrypt 13) after the reload raised max_bcrypt_cost to 13: got %s, want 303", r)
		}
		if r := s.loginAs(t, "ada", adaPassword, "127.0.0.93"); r.Status != http.StatusSeeOther {
			t.Errorf("ada after the reload: got %s, want 303", r)
		}
	})
}
