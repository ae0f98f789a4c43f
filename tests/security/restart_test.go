package security

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Zero-downtime restarts (README "Restarts and upgrades"): under the load TestRestartUnderLoad
// uses, a handover (SIGUSR2, also a binary upgrade) and a restart of a socket-activated authd
// give no 5xx and nothing but the app to a request with a valid session; TestPlainRestartCounts
// measures a plain restart for comparison.

// failures counts what a user would call an outage in l: every request with a valid session that
// did not reach the app, and every 5xx.
func (l *load) failures() (user, fivexx int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for code, n := range l.statuses {
		if code >= 500 {
			fivexx += n
		}
	}
	return int(l.userErr.Load()), fivexx
}

// logEvents returns the authd log's records whose event is ev, in order.
func (s *stack) logEvents(t testing.TB, ev string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(s.authdLog(t), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["event"] == ev {
			out = append(out, rec)
		}
	}
	return out
}

// waitEvents waits until the authd log holds n records of ev.
func (s *stack) waitEvents(t testing.TB, ev string, n int, d time.Duration) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if recs := s.logEvents(t, ev); len(recs) >= n {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %d %q records in the authd log after %v", n, ev, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logGap is the time between two log records' "time" fields.
func logGap(t testing.TB, from, to map[string]any) time.Duration {
	t.Helper()
	const layout = "2006-01-02T15:04:05.000Z07:00"
	a, err1 := time.Parse(layout, fmt.Sprint(from["time"]))
	b, err2 := time.Parse(layout, fmt.Sprint(to["time"]))
	if err1 != nil || err2 != nil {
		t.Fatalf("log times: %v %v", err1, err2)
	}
	return b.Sub(a)
}

func copyExecutable(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	must(t, err)
	must(t, os.WriteFile(to+".tmp", b, 0o755))
	must(t, os.Rename(to+".tmp", to)) // like a package upgrade: a new inode at the same path
}

func (s *stack) sessionsWork(t testing.TB, when string, cookies map[string]string) {
	t.Helper()
	for name, c := range cookies {
		if r := s.do(t, req{target: "/app/x", cookie: c}); r.App == nil {
			t.Errorf("%s: %s: got %s, want the app", when, name, r)
		}
	}
}

// TestHandoverUnderLoad covers "a supervisor restart or a binary upgrade under load gives no 5xx and
// no 401 to a request with a valid session": SIGUSR2 (`supervisorctl signal USR2 authd`) twice,
// the second time after the binary at authd's path was replaced. The PID stays (supervisor sees no
// restart), the new image runs the new file, and a handover whose new binary cannot start is
// refused while the old process keeps serving.
func TestHandoverUnderLoad(t *testing.T) {
	s := newStack(t, stackOptions{logLevel: "info"})
	// authd runs from its own copy of the binary, so the test can upgrade it.
	s.proc("authd").stop()
	bin := filepath.Join(s.dir, "authd-installed")
	copyExecutable(t, s.bin, bin)
	p, err := s.start("authd", exec.Command(bin, "serve", "-config", s.conf))
	must(t, err)
	must(t, s.waitHealthy(p, 15*time.Second))
	pid := p.cmd.Process.Pid

	ada := session(s.login(t, "ada", adaPassword))
	l := startLoad(t, s, ada)
	for _, step := range []string{"handover", "upgrade", "broken upgrade"} {
		fresh := session(s.login(t, "ada", adaPassword))
		time.Sleep(300 * time.Millisecond)
		switch step {
		case "upgrade":
			copyExecutable(t, s.bin, bin)
		case "broken upgrade":
			must(t, os.WriteFile(bin+".tmp", []byte("#!/bin/sh\nexit 1\n"), 0o755))
			must(t, os.Rename(bin+".tmp", bin))
		}
		readyBefore := len(s.logEvents(t, "ready"))
		p.signal(syscall.SIGUSR2)
		if step == "broken upgrade" {
			s.waitEvents(t, "handover_failed", 1, 15*time.Second)
			if n := len(s.logEvents(t, "handover")); n != 2 {
				t.Errorf("broken upgrade: %d handovers in the log, want the 2 before it", n)
			}
		} else {
			ready := s.waitEvents(t, "ready", readyBefore+1, 15*time.Second)
			handed := s.logEvents(t, "handover")
			t.Logf("%s: from the handover record to the new image's ready record: %v", step, logGap(t, handed[len(handed)-1], ready[len(ready)-1]))
		}
		time.Sleep(300 * time.Millisecond)
		if !p.running() {
			t.Fatalf("%s: authd (pid %d) exited", step, pid)
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		must(t, err)
		if step == "upgrade" && exe != bin {
			t.Errorf("upgrade: pid %d runs %q, want the new %s", pid, exe, bin)
		}
		s.sessionsWork(t, "after the "+step, map[string]string{"older session": ada, "session from just before": fresh})
	}
	l.end(t)
	if user, fivexx := l.failures(); user != 0 || fivexx != 0 {
		t.Errorf("during the handovers: %d requests with a valid session did not reach the app, %d 5xx; want 0 and 0", user, fivexx)
	}
	if l.userOK.Load() == 0 {
		t.Errorf("the load served nothing: the test did not test the handover")
	}
}

// activatedAuthd starts authd the way systemd starts a socket-activated service: the socket f at
// fd 3, LISTEN_FDS=1, LISTEN_FDNAMES=authd and LISTEN_PID set to authd's own PID (sh's $$ before
// exec).
func (s *stack) activatedAuthd(t testing.TB, f *os.File) *proc {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", `export LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=authd; exec "$0" serve -config "$1"`, s.bin, s.conf)
	cmd.ExtraFiles = []*os.File{f}
	p, err := s.start("authd", cmd)
	must(t, err)
	must(t, s.waitHealthy(p, 15*time.Second))
	return p
}

// TestSocketActivatedRestartUnderLoad covers "`systemctl restart authd` under load gives no 5xx and
// no 401 to a request with a valid session" with authd.socket: the socket outlives the process, so
// while the old authd drains and the new one opens the store, nginx's connects wait in the backlog.
// The test holds the socket as systemd would and restarts authd (SIGTERM, wait, start) twice.
func TestSocketActivatedRestartUnderLoad(t *testing.T) {
	s := newStack(t, stackOptions{logLevel: "info"})
	s.proc("authd").stop()
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", s.authdPort))
	must(t, err)
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	must(t, err)
	defer f.Close()
	p := s.activatedAuthd(t, f)
	if recs := s.logEvents(t, "socket_inherited"); len(recs) != 1 || recs[0]["addr"] != fmt.Sprintf("127.0.0.1:%d", s.authdPort) {
		t.Errorf("socket_inherited records: got %v, want one for 127.0.0.1:%d", recs, s.authdPort)
	}

	ada := session(s.login(t, "ada", adaPassword))
	l := startLoad(t, s, ada)
	// The second restart waits as long with no authd as TestRestartUnderLoad does (a slow start:
	// ExecStartPre, a big store): nginx's connects still succeed and its verify subrequests wait,
	// well inside authd-server.conf's proxy_read_timeout.
	for _, gap := range []time.Duration{0, 500 * time.Millisecond} {
		fresh := session(s.login(t, "ada", adaPassword))
		time.Sleep(300 * time.Millisecond)
		start := time.Now()
		p.signal(syscall.SIGTERM)
		p.wait(t, 20*time.Second)
		if code := p.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("authd exited with %d after SIGTERM, want 0", code)
		}
		time.Sleep(gap)
		p = s.activatedAuthd(t, f)
		t.Logf("restart with %v between the old authd's exit and the new one's start: SIGTERM to the new authd healthy: %v", gap, time.Since(start).Round(time.Millisecond))
		time.Sleep(300 * time.Millisecond)
		s.sessionsWork(t, "after the restart", map[string]string{"older session": ada, "session from just before": fresh})
	}
	l.end(t)
	if user, fivexx := l.failures(); user != 0 || fivexx != 0 {
		t.Errorf("during the restarts: %d requests with a valid session did not reach the app, %d 5xx; want 0 and 0", user, fivexx)
	}
}

// TestSystemdSocketActivate checks the protocol against systemd's own implementation
// (systemd-socket-activate binds, sets LISTEN_* and execs authd).
func TestSystemdSocketActivate(t *testing.T) {
	tool, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Skip("systemd-socket-activate not installed (Debian package systemd)")
	}
	s := newStack(t, stackOptions{logLevel: "info"})
	ada := session(s.login(t, "ada", adaPassword))
	s.proc("authd").stop()
	p, err := s.start("authd", exec.Command(tool, "-l", fmt.Sprintf("127.0.0.1:%d", s.authdPort), "--fdname=authd", s.bin, "serve", "-config", s.conf))
	must(t, err)
	must(t, s.waitHealthy(p, 15*time.Second))
	if recs := s.logEvents(t, "socket_inherited"); len(recs) != 1 || recs[0]["fd_name"] != "authd" {
		t.Errorf("socket_inherited records: got %v, want one named authd", recs)
	}
	s.sessionsWork(t, "socket-activated", map[string]string{"session": ada})
	if r := s.do(t, req{target: "/app/x"}); r.App != nil || r.Status >= 500 {
		t.Errorf("anonymous: got %s, want a deny", r)
	}
}

// TestPlainRestartCounts measures, for comparison, what a restart without a kept socket costs
// (supervisorctl restart, or systemctl restart without authd.socket): SIGTERM, wait, start.
func TestPlainRestartCounts(t *testing.T) {
	s := newStack(t, stackOptions{logLevel: "info"})
	ada := session(s.login(t, "ada", adaPassword))
	l := startLoad(t, s, ada)
	for range 2 {
		time.Sleep(300 * time.Millisecond)
		p := s.proc("authd")
		p.signal(syscall.SIGTERM)
		p.wait(t, 20*time.Second)
		must(t, s.startAuthd("authd"))
		time.Sleep(300 * time.Millisecond)
	}
	l.end(t)
	user, fivexx := l.failures()
	t.Logf("plain restarts: %d requests with a valid session did not reach the app, %d 5xx", user, fivexx)
	if fivexx == 0 {
		t.Errorf("a plain restart under load saw no 5xx (statuses %v): the test did not see the gap", l.statuses)
	}
}

// TestSystemdUnits checks the shipped authd.socket and authd.service with systemd-analyze verify
// (in a scratch root holding the binary and systemd's own units, as no systemd runs here), and that
// the service requires the socket and the socket listens where authd.toml and nginx expect.
func TestSystemdUnits(t *testing.T) {
	requireE2E(t)
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (Debian package systemd)")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	must(t, err)
	socket, service := readFile(t, filepath.Join(root, "systemd", "authd.socket")), readFile(t, filepath.Join(root, "systemd", "authd.service"))
	for _, want := range []string{"\nRequires=authd.socket\n", "\nAfter=network.target authd.socket\n"} {
		if !strings.Contains(service, want) {
			t.Errorf("authd.service lacks %q", strings.TrimSpace(want))
		}
	}
	for _, want := range []string{"\nListenStream=127.0.0.1:9091\n", "\nFileDescriptorName=authd\n"} {
		if !strings.Contains(socket, want) {
			t.Errorf("authd.socket lacks %q", strings.TrimSpace(want))
		}
	}
	if conf := readFile(t, filepath.Join(root, "conf", "authd.toml")); !strings.Contains(conf, `listen = "127.0.0.1:9091"`) {
		t.Errorf("conf/authd.toml does not listen on 127.0.0.1:9091, authd.socket's address")
	}

	scratch := t.TempDir()
	for _, d := range []string{"usr/local/bin", "bin", "etc/systemd/system", "usr/lib/systemd"} {
		must(t, os.MkdirAll(filepath.Join(scratch, d), 0o755))
	}
	copyExecutable(t, os.Getenv("AUTHD_BIN"), filepath.Join(scratch, "usr/local/bin/authd"))
	copyExecutable(t, "/bin/kill", filepath.Join(scratch, "bin/kill"))
	for _, u := range []string{"authd.socket", "authd.service"} {
		must(t, os.WriteFile(filepath.Join(scratch, "etc/systemd/system", u), []byte(readFile(t, filepath.Join(root, "systemd", u))), 0o644))
	}
	if out, err := exec.Command("cp", "-a", "/usr/lib/systemd/system", filepath.Join(scratch, "usr/lib/systemd/")).CombinedOutput(); err != nil {
		t.Fatalf("copy systemd's units: %v: %s", err, out)
	}
	out, err := exec.Command(tool, "verify", "--man=no", "--root="+scratch, "authd.socket", "authd.service").CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify authd.socket authd.service: %v\n%s", err, out)
	}
}

// supervised runs authd under a real supervisord, with the program section of the shipped
// supervisor/authd.conf (paths pointed at this stack; no user switch), and returns supervisorctl.
func (s *stack) supervised(t *testing.T, bin string) (ctl func(args ...string) string) {
	t.Helper()
	supd, err1 := exec.LookPath("supervisord")
	supctl, err2 := exec.LookPath("supervisorctl")
	if err1 != nil || err2 != nil {
		t.Skip("supervisor not installed (Debian package supervisor)")
	}
	shipped := readFile(t, filepath.Join(s.root, "supervisor", "authd.conf"))
	var prog []string
	for _, line := range strings.Split(shipped[strings.Index(shipped, "[program:authd]"):], "\n") {
		switch {
		case strings.HasPrefix(line, ";"), strings.HasPrefix(line, "user="), strings.HasPrefix(line, "directory="), strings.HasPrefix(line, "environment="):
			continue
		case strings.HasPrefix(line, "stdout_logfile="):
			line = "stdout_logfile=" + filepath.Join(s.logs, "authd.log")
		}
		line = strings.ReplaceAll(line, "/usr/local/bin/authd", bin)
		prog = append(prog, strings.ReplaceAll(line, "/etc/authd/authd.toml", s.conf))
	}
	conf := filepath.Join(s.dir, "supervisord.conf")
	must(t, os.WriteFile(conf, []byte(fmt.Sprintf(`[unix_http_server]
file=%[1]s/supervisor.sock
[supervisord]
nodaemon=true
logfile=%[1]s/supervisord.log
pidfile=%[1]s/supervisord.pid
childlogdir=%[1]s
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://%[1]s/supervisor.sock
`, s.dir)+strings.Join(prog, "\n")), 0o600))
	p, err := s.start("supervisord", exec.Command(supd, "-c", conf))
	must(t, err)
	t.Cleanup(p.stop)
	must(t, s.waitHealthy(p, 20*time.Second))
	return func(args ...string) string {
		t.Helper()
		out, err := exec.Command(supctl, append([]string{"-c", conf}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("supervisorctl %v: %v: %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
}

// TestSupervisorHandoverUnderLoad covers "a supervisor restart under load gives no 5xx and no 401
// to a request with a valid session" with real supervisord and the shipped program section:
// `supervisorctl signal USR2 authd` hands over (supervisor sees the same PID, still RUNNING);
// `supervisorctl restart authd`, a plain stop and start, is measured for comparison.
func TestSupervisorHandoverUnderLoad(t *testing.T) {
	s := newStack(t, stackOptions{logLevel: "info"})
	ada := session(s.login(t, "ada", adaPassword))
	s.proc("authd").stop()
	bin := filepath.Join(s.dir, "authd-installed")
	copyExecutable(t, s.bin, bin)
	ctl := s.supervised(t, bin)
	// RUNNING once authd has stayed up startsecs: from then on, a restart would show.
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(ctl("status", "authd"), "RUNNING"); {
		if time.Now().After(deadline) {
			t.Fatalf("supervisorctl status: %s, want RUNNING", ctl("status", "authd"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	pid := ctl("pid", "authd")

	l := startLoad(t, s, ada)
	for range 2 {
		time.Sleep(300 * time.Millisecond)
		readyBefore := len(s.logEvents(t, "ready"))
		copyExecutable(t, s.bin, bin) // an upgrade
		ctl("signal", "USR2", "authd")
		s.waitEvents(t, "ready", readyBefore+1, 15*time.Second)
		time.Sleep(300 * time.Millisecond)
		if got := ctl("pid", "authd"); got != pid {
			t.Errorf("after the handover supervisor's authd pid is %s, want %s (no restart)", got, pid)
		}
		if st := ctl("status", "authd"); !strings.Contains(st, "RUNNING") {
			t.Errorf("after the handover: supervisorctl status: %s", st)
		}
		s.sessionsWork(t, "after supervisorctl signal USR2", map[string]string{"session": ada})
	}
	l.end(t)
	if user, fivexx := l.failures(); user != 0 || fivexx != 0 {
		t.Errorf("during supervisorctl signal USR2: %d requests with a valid session did not reach the app, %d 5xx; want 0 and 0", user, fivexx)
	}

	l = startLoad(t, s, ada)
	time.Sleep(300 * time.Millisecond)
	ctl("restart", "authd")
	time.Sleep(300 * time.Millisecond)
	l.end(t)
	user, fivexx := l.failures()
	t.Logf("supervisorctl restart (for comparison): %d requests with a valid session did not reach the app, %d 5xx", user, fivexx)
	s.sessionsWork(t, "after supervisorctl restart", map[string]string{"session": ada})
}

// TestLoginDuringHandover covers the login form's POST through handovers: nginx sends it on a
// keepalive connection that the old authd may close in that instant, and only
// authd-server.conf's `proxy_next_upstream error non_idempotent` makes nginx retry a POST (it
// retries GETs by itself). Without that line 3 of 437 logins through 65 handovers got a 502 here
// (in 2 of 5 runs), so this test catches its loss often, not always: two logins at a time through
// 15 handovers.
func TestLoginDuringHandover(t *testing.T) {
	s := newStack(t, stackOptions{logLevel: "info"})
	var ok atomic.Int64
	var mu sync.Mutex
	failed := map[int]int{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if r := s.postLogin(t, "ada", adaPassword, "/app/", "127.0.0.1"); r.Status == http.StatusSeeOther {
					ok.Add(1)
				} else {
					mu.Lock()
					failed[r.Status]++
					mu.Unlock()
				}
			}
		}()
	}
	p := s.proc("authd")
	for range 15 {
		time.Sleep(300 * time.Millisecond)
		n := len(s.logEvents(t, "ready"))
		p.signal(syscall.SIGUSR2)
		s.waitEvents(t, "ready", n+1, 15*time.Second)
	}
	close(stop)
	wg.Wait()
	t.Logf("logins through 15 handovers: %d signed in, failed %v", ok.Load(), failed)
	if len(failed) > 0 || ok.Load() == 0 {
		t.Errorf("logins through handovers: %d signed in, failed %v; want every one signed in", ok.Load(), failed)
	}
}

// TestHandoverUnderLoadRedis: the same handover with store = "redis" (no data_dir lock to wait
// for; the old image closes its Redis client, the new one dials its own).
func TestHandoverUnderLoadRedis(t *testing.T) {
	requireE2E(t)
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed")
	}
	port, err := freePort()
	must(t, err)
	redis := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no")
	must(t, redis.Start())
	t.Cleanup(func() { _ = redis.Process.Kill(); _ = redis.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("redis-server did not start")
		}
	}
	s := newStack(t, stackOptions{logLevel: "info", extra: `store = "redis"`,
		tables: fmt.Sprintf("[redis]\naddrs = [\"127.0.0.1:%d\"]\nkey_prefix = \"handover:\"\n", port)})
	ada := session(s.login(t, "ada", adaPassword))
	l := startLoad(t, s, ada)
	p := s.proc("authd")
	for range 2 {
		time.Sleep(300 * time.Millisecond)
		n := len(s.logEvents(t, "ready"))
		p.signal(syscall.SIGUSR2)
		ready := s.waitEvents(t, "ready", n+1, 15*time.Second)
		handed := s.logEvents(t, "handover")
		t.Logf("redis: from the handover record to the new image's ready record: %v", logGap(t, handed[len(handed)-1], ready[len(ready)-1]))
		time.Sleep(300 * time.Millisecond)
		s.sessionsWork(t, "after the handover", map[string]string{"session": ada})
	}
	l.end(t)
	if user, fivexx := l.failures(); user != 0 || fivexx != 0 {
		t.Errorf("during the handovers: %d requests with a valid session did not reach the app, %d 5xx; want 0 and 0", user, fivexx)
	}
}
