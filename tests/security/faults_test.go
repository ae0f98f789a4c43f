package security

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// load runs anonymous and authenticated requests through nginx until stopped, and records what
// came back. An anonymous request must never reach the app, authd up or down.
type load struct {
	stop                  chan struct{}
	wg                    sync.WaitGroup
	anonLeaks, anonDenied atomic.Int64
	userOK, userErr       atomic.Int64
	mu                    sync.Mutex
	statuses              map[int]int
}

func startLoad(t *testing.T, s *stack, cookie string) *load {
	l := &load{stop: make(chan struct{}), statuses: map[int]int{}}
	for i := range 3 {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				target := []string{"/app/x", "/admin/x", "/office/x"}[i]
				r, err := s.try(req{target: target, from: "127.0.0.2"})
				if err == nil {
					l.mu.Lock()
					l.statuses[r.Status]++
					l.mu.Unlock()
					if r.App != nil || r.Status < 300 {
						l.anonLeaks.Add(1)
						t.Errorf("anonymous %s during the fault: got %s", target, r)
					} else {
						l.anonDenied.Add(1)
					}
				}
				r, err = s.try(req{target: "/app/y", cookie: cookie})
				if err == nil && r.App != nil {
					l.userOK.Add(1)
				} else {
					l.userErr.Add(1)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	return l
}

func (l *load) end(t *testing.T) {
	close(l.stop)
	l.wg.Wait()
	t.Logf("anonymous: %d denied, %d let through (statuses %v); with a session: %d served, %d not",
		l.anonDenied.Load(), l.anonLeaks.Load(), l.statuses, l.userOK.Load(), l.userErr.Load())
}

// TestRestartUnderLoad covers "authd restarts (SIGTERM or SIGKILL) under load: during the gap
// nothing is let through; afterwards existing sessions still work", including a session confirmed
// to the browser just before the kill.
func TestRestartUnderLoad(t *testing.T) {
	s := newStack(t, stackOptions{logLevel: "info"})
	ada := session(s.login(t, "ada", adaPassword))
	l := startLoad(t, s, ada)
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		fresh := session(s.login(t, "ada", adaPassword))
		p := s.proc("authd")
		time.Sleep(200 * time.Millisecond)
		p.signal(sig)
		p.wait(t, 15*time.Second)
		if sig == syscall.SIGTERM && p.cmd.ProcessState.ExitCode() != 0 {
			t.Errorf("authd exited with %v after SIGTERM, want a clean exit", p.cmd.ProcessState)
		}
		time.Sleep(500 * time.Millisecond) // the gap, under load
		must(t, s.startAuthd("authd"))
		time.Sleep(300 * time.Millisecond)
		for name, c := range map[string]string{"older session": ada, "session from just before the " + sig.String(): fresh} {
			if r := s.do(t, req{target: "/app/x", cookie: c}); r.App == nil {
				t.Errorf("after %v: %s: got %s, want the app", sig, name, r)
			}
		}
	}
	l.end(t)
	l.mu.Lock()
	defer l.mu.Unlock()
	// authd down: 503 (the unavailable page); 500/502/504 from any snippet without it.
	if l.statuses[http.StatusServiceUnavailable]+l.statuses[http.StatusInternalServerError]+l.statuses[http.StatusBadGateway]+l.statuses[http.StatusGatewayTimeout] == 0 {
		t.Errorf("the load never saw authd down (statuses %v): the test did not test the gap", l.statuses)
	}
}

// TestSecondAuthdOnOneStore covers "Two authd processes pointed at one embedded store fail fast
// with a clear message."
func TestSecondAuthdOnOneStore(t *testing.T) {
	s := newStack(t, stackOptions{logLevel: "info"})
	ada := session(s.login(t, "ada", adaPassword))
	port, err := freePort()
	must(t, err)
	conf := regexp.MustCompile(`(?m)^listen = .*$`).ReplaceAllString(readFile(t, s.conf), fmt.Sprintf(`listen = "127.0.0.1:%d"`, port))
	path := s.dir + "/second.toml"
	must(t, os.WriteFile(path, []byte(conf), 0o600))
	cmd := exec.Command(s.bin, "serve", "-config", path)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	must(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("the second authd exited 0")
		}
		t.Logf("second authd refused after %v: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(out.String()))
		if !regexp.MustCompile(`(?i)lock|in use|another|already`).MatchString(out.String()) {
			t.Errorf("the second authd's message does not say the store is in use:\n%s", out.String())
		}
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("the second authd is still running after 5s:\n%s", out.String())
	}
	if r := s.do(t, req{target: "/app/x", cookie: ada}); r.App == nil {
		t.Errorf("the first authd after the attempt: got %s, want the app", r)
	}
}

// TestBrokenReloadKeepsLastGood covers "A broken config or users file on reload keeps the last good
// one; at start it refuses to run." (A rule naming a group nobody holds is not broken: it reloads
// with a warning, see TestGroupNobodyHoldsWarns.)
func TestBrokenReloadKeepsLastGood(t *testing.T) {
	s := newStack(t, stackOptions{logLevel: "info"})
	ada := session(s.login(t, "ada", adaPassword))
	goodConf, goodUsers := readFile(t, s.conf), readFile(t, s.usersFile)
	hup := func() {
		s.proc("authd").signal(syscall.SIGHUP)
		time.Sleep(400 * time.Millisecond)
	}
	failures := func() int { return strings.Count(s.authdLog(t), `"event":"reload_failed"`) }
	works := func(when string) {
		t.Helper()
		if r := s.do(t, req{target: "/app/x", cookie: ada}); r.App == nil {
			t.Errorf("%s: ada's session: got %s, want the app", when, r)
		}
		if r := s.do(t, req{target: "/public/x"}); r.App == nil {
			t.Errorf("%s: /public: got %s, want the app", when, r)
		}
		if r := s.do(t, req{target: "/admin/x", cookie: ada}); r.Status != http.StatusForbidden {
			t.Errorf("%s: /admin as ada: got %s, want 403", when, r)
		}
		if r := s.loginAs(t, "root", rootPassword, ""); r.Status != http.StatusSeeOther {
			t.Errorf("%s: root's login: got %s, want 303", when, r)
		}
	}

	// (An empty file is not broken: it is a valid file with no users.)
	for name, broken := range map[string]string{
		"garbage":        "this is not toml [[[",
		"unknown scheme": strings.Replace(goodUsers, "$argon2id$", "{SHA}", 1),
		"unknown key":    strings.Replace(goodUsers, "[[users]]", "[[users]]\nadmin = true", 1),
		"duplicate user": goodUsers + "\n" + goodUsers[strings.Index(goodUsers, "[[users]]"):],
	} {
		before := failures()
		must(t, os.WriteFile(s.usersFile, []byte(broken), 0o600))
		hup()
		works("users file " + name)
		if failures() == before {
			t.Errorf("users file %s: no reload_failed record", name)
		}
	}
	must(t, os.WriteFile(s.usersFile, []byte(goodUsers), 0o600))

	for name, broken := range map[string]string{
		"unknown key":     "bogus = 1\n" + goodConf,
		"syntax error":    goodConf + "\n[[rules]\n",
		"no rules":        goodConf[:strings.Index(goodConf, "[networks.office]")] + "rules = []\n",
		"everything open": strings.Replace(goodConf, "[[rules]]\npath = \"/admin\"\ngroups = [\"admins\"]", "[[rules]]\npath = \"/admin\"\nallow = \"public\"\nbogus = true", 1),
	} {
		before := failures()
		must(t, os.WriteFile(s.conf, []byte(broken), 0o600))
		hup()
		works("config " + name)
		if failures() == before {
			t.Errorf("config %s: no reload_failed record", name)
		}
	}
	// The control: a good new config does take effect on reload.
	must(t, os.WriteFile(s.conf, []byte(goodConf+"\n[[rules]]\npath = \"/nothing\"\nallow = \"public\"\n"), 0o600))
	hup()
	if r := s.do(t, req{target: "/nothing/x"}); r.App == nil {
		t.Errorf("a good reload: /nothing: got %s, want the app", r)
	}

	// At start, a broken users file is refused.
	s.proc("authd").stop()
	must(t, os.WriteFile(s.usersFile, []byte("this is not toml [[["), 0o600))
	cmd := exec.Command(s.bin, "serve", "-config", s.conf)
	done := make(chan error, 1)
	must(t, cmd.Start())
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("serve with a broken users file exited 0")
		}
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		t.Errorf("serve is running with a broken users file")
	}
}
