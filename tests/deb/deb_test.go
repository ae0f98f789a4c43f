// Package deb tests the Debian package the way an operator meets it: built from this checkout
// with systemd/deb/build.sh, installed into this machine with apt-get, configured, run as the
// authd user behind the snippets it installed, then removed and purged.
//
// It changes the machine (a package, the authd system user, files under /etc, /usr, /var), so it
// runs only as root with AUTHD_E2E=1, one run at a time, and never over an authd that something
// else installed (a quick start, a hand install): it skips then, touching nothing.
package deb

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/authd/authd/tests/internal/authdtest"
)

// owned are the paths the package owns or creates. Before the test none may exist unless the
// package is installed; after the purge none may be left.
var owned = []string{
	"/usr/bin/authd", "/lib/systemd/system/authd.service", "/etc/authd", "/etc/nginx/authd",
	"/usr/share/authd", "/usr/share/doc/authd", "/var/lib/authd", "/var/log/authd",
	"/usr/share/man/man1/authd.1.gz", "/usr/share/lintian/overrides/authd",
}

func TestDebianPackage(t *testing.T) {
	if os.Getenv("AUTHD_E2E") == "" {
		t.Skip("installs a package into this machine: run `bash tests/run.sh` (it sets AUTHD_E2E=1) as root")
	}
	if os.Geteuid() != 0 {
		t.Skip("installs a package into this machine: needs root")
	}
	for _, tool := range []string{"apt-get", "dpkg-deb", "dpkg-query", "nginx"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found: not a Debian machine with nginx", tool)
		}
	}
	lockRun(t)
	if installed(t) {
		// Left by an interrupted run of this test (or an earlier package): ours to purge.
		run(t, 5*time.Minute, "", "apt-get", aptArgs("purge", "authd")...)
	}
	for _, p := range owned {
		if _, err := os.Lstat(p); err == nil {
			t.Skipf("%s exists and no authd package owns it (a quick start or a hand install?): not touching it", p)
		}
	}
	t.Cleanup(func() {
		if installed(t) {
			run(t, 5*time.Minute, "", "apt-get", aptArgs("purge", "authd")...)
		}
	})

	root := authdtest.Root()
	out := t.TempDir()
	start := time.Now()
	built := run(t, 20*time.Minute, "", "bash", filepath.Join(root, "systemd", "deb", "build.sh"), "-o", out)
	deb := lastLine(built)
	t.Logf("built %s in %v", filepath.Base(deb), time.Since(start).Round(time.Second))

	// The version comes from git, and the binary says the same.
	version := strings.TrimSpace(run(t, time.Minute, "", "dpkg-deb", "-f", deb, "Version"))
	if !regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*-1$`).MatchString(version) {
		t.Errorf("package version %q, want an upstream version from git and revision -1", version)
	}
	commit := authdtest.Commit()
	short := commit[:12]
	if !strings.Contains(version, short) && os.Getenv("AUTHD_DEB_VERSION") == "" {
		t.Errorf("package version %q does not name the commit %s", version, short)
	}
	conffiles := run(t, time.Minute, "", "sh", "-c", "dpkg-deb --ctrl-tarfile "+shellQuote(deb)+" | tar -xO ./conffiles")
	for _, want := range []string{"/etc/authd/authd.toml", "/etc/nginx/authd/authd-server.conf", "/etc/nginx/authd/authd-protect.conf"} {
		if !strings.Contains(conffiles, want+"\n") {
			t.Errorf("conffiles:\n%s\nwant %s in it", conffiles, want)
		}
	}
	lintian(t, deb)

	// Install with apt-get from the file, as the README says.
	start = time.Now()
	run(t, 5*time.Minute, filepath.Dir(deb), "apt-get", aptArgs("install", "./"+filepath.Base(deb))...)
	t.Logf("installed in %v", time.Since(start).Round(time.Second))
	if v := strings.TrimSpace(run(t, 10*time.Second, "", "/usr/bin/authd", "version")); !strings.HasPrefix(v, "authd "+strings.TrimSuffix(version, "-1")+" (commit "+commit+",") {
		t.Errorf("authd version: %q, want version %s and commit %s", v, strings.TrimSuffix(version, "-1"), commit)
	}
	u, err := user.Lookup("authd")
	if err != nil {
		t.Fatalf("no authd user after install: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if uid >= 1000 || u.HomeDir != "/var/lib/authd" {
		t.Errorf("authd user: uid %d, home %q; want a system user (uid < 1000) at /var/lib/authd", uid, u.HomeDir)
	}
	if pw := readFile(t, "/etc/passwd"); !regexp.MustCompile(`(?m)^authd:[^\n]*:/usr/sbin/nologin$`).MatchString(pw) {
		t.Errorf("authd user without the nologin shell")
	}
	for _, c := range []struct {
		path     string
		uid, gid int
		mode     os.FileMode
	}{
		{"/etc/authd", 0, gid, 0o750},
		{"/etc/authd/authd.toml", 0, gid, 0o640},
		{"/etc/authd/users.toml", uid, gid, 0o600},
		{"/var/lib/authd", uid, gid, 0o700},
		{"/var/log/authd", uid, gid, 0o750},
		{"/usr/bin/authd", 0, 0, 0o755},
	} {
		checkOwner(t, c.path, c.uid, c.gid, c.mode)
	}
	for dst, src := range map[string]string{
		"/etc/authd/authd.toml":                                 "conf/authd.toml",
		"/etc/nginx/authd/authd-server.conf":                    "nginx/authd-server.conf",
		"/etc/nginx/authd/authd-protect.conf":                   "nginx/authd-protect.conf",
		"/usr/share/authd/html/unavailable.html":                "nginx/html/unavailable.html",
		"/usr/share/authd/html/unavailable.css":                 "nginx/html/unavailable.css",
		"/usr/share/doc/authd/examples/nginx/example-site.conf": "nginx/example-site.conf",
	} {
		if readFile(t, dst) != readFile(t, filepath.Join(root, src)) {
			t.Errorf("%s differs from the checkout's %s", dst, src)
		}
	}
	if b, err := exec.Command("man", "-P", "cat", "authd").CombinedOutput(); err == nil && !strings.Contains(string(b), "check-config") {
		t.Errorf("man authd does not list the commands:\n%s", b)
	}
	if _, err := os.Stat("/usr/share/man/man1/authd.1.gz"); err != nil {
		t.Errorf("no manual page: %v", err)
	}
	if unit := readFile(t, "/lib/systemd/system/authd.service"); !strings.Contains(unit, "ExecStart=/usr/bin/authd serve -config /etc/authd/authd.toml") || strings.Contains(unit, "/usr/local/") {
		t.Errorf("authd.service does not run the packaged binary:\n%s", unit)
	}

	// The operator's part: a listen address of their own, a user. Then a reinstall (what an
	// upgrade's maintainer scripts do) must keep both.
	authdPort, nginxPort := freePort(t), freePort(t)
	conf := readFile(t, "/etc/authd/authd.toml")
	edited := strings.Replace(conf, `listen = "127.0.0.1:9091"`, fmt.Sprintf(`listen = "127.0.0.1:%d"`, authdPort), 1)
	edited = strings.Replace(edited, `public_url = "https://app.example.com"`, fmt.Sprintf(`public_url = "https://localhost:%d"`, nginxPort), 1)
	if edited == conf {
		t.Fatalf("the shipped config no longer has the listen and public_url lines this test edits")
	}
	edited += "\n# edited by the operator\n"
	writeKeepMode(t, "/etc/authd/authd.toml", edited)
	run(t, time.Minute, "", "/usr/bin/authd", "user", "add", "-config", "/etc/authd/authd.toml", "ada")
	users := readFile(t, "/etc/authd/users.toml")
	run(t, 5*time.Minute, filepath.Dir(deb), "apt-get", aptArgs("install", "--reinstall", "./"+filepath.Base(deb))...)
	if got := readFile(t, "/etc/authd/authd.toml"); got != edited {
		t.Errorf("a reinstall changed the edited config:\n%s", got)
	}
	if got := readFile(t, "/etc/authd/users.toml"); got != users {
		t.Errorf("a reinstall changed the users file")
	}
	checkOwner(t, "/etc/authd/users.toml", uid, gid, 0o600)

	// check-config and serve as the authd user, the way the unit runs them.
	asAuthd := &syscall.SysProcAttr{Setpgid: true, Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{uint32(gid)}}}
	cc := exec.Command("/usr/bin/authd", "check-config", "-config", "/etc/authd/authd.toml")
	cc.SysProcAttr = asAuthd
	if b, err := cc.CombinedOutput(); err != nil {
		t.Fatalf("check-config as authd: %v\n%s", err, b)
	}
	logs := t.TempDir()
	daemon := startAuthd(t, asAuthd, filepath.Join(logs, "authd.log"))
	waitReady(t, authdPort, daemon)
	t.Logf("authd ready as the authd user after %v", time.Since(daemon.started).Round(10*time.Millisecond))

	// nginx with the installed snippets and page: authd answers, then it is stopped.
	ngx := startNginx(t, authdPort, nginxPort)
	c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func() (*http.Response, string) {
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/app", nginxPort), nil)
		req.Header.Set("Sec-Fetch-Mode", "navigate")
		req.Header.Set("Accept", "text/html")
		res, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET /app through nginx: %v", err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}
	if res, _ := get(); res.StatusCode != http.StatusFound || !strings.HasPrefix(res.Header.Get("Location"), "/authd/login") {
		t.Errorf("through nginx with authd up: got %d (Location %q), want 302 to the login form", res.StatusCode, res.Header.Get("Location"))
	}
	daemon.stop(t)
	if res, body := get(); res.StatusCode != http.StatusServiceUnavailable || body != readFile(t, "/usr/share/authd/html/unavailable.html") {
		t.Errorf("through nginx with authd stopped: got %d\n%s\nwant 503 and the installed unavailable page", res.StatusCode, body)
	}
	ngx.stop(t)

	// remove: the program goes, the configuration and data stay.
	run(t, 5*time.Minute, "", "apt-get", aptArgs("remove", "authd")...)
	for _, gone := range []string{"/usr/bin/authd", "/lib/systemd/system/authd.service", "/usr/share/authd"} {
		if _, err := os.Lstat(gone); err == nil {
			t.Errorf("%s is still there after remove", gone)
		}
	}
	if got := readFile(t, "/etc/authd/authd.toml"); got != edited {
		t.Errorf("the edited config after remove:\n%s", got)
	}
	for _, kept := range []string{"/etc/authd/users.toml", "/etc/nginx/authd/authd-server.conf", "/var/lib/authd"} {
		if _, err := os.Lstat(kept); err != nil {
			t.Errorf("%s after remove: %v, want it kept", kept, err)
		}
	}
	if st := status(t); !strings.HasPrefix(st, "deinstall ok config-files") {
		t.Errorf("dpkg status after remove: %q, want config-files", st)
	}

	// purge: nothing of the package is left; the system user stays (Debian practice).
	run(t, 5*time.Minute, "", "apt-get", aptArgs("purge", "authd")...)
	for _, p := range owned {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s is still there after purge", p)
		}
	}
	if installed(t) || status(t) != "" {
		t.Errorf("dpkg still knows authd after purge: %q", status(t))
	}
	if _, err := user.Lookup("authd"); err != nil {
		t.Errorf("the authd system user is gone after purge (%v); Debian keeps system users", err)
	}

	// Over a hand install (README, step 2): dpkg would ask about the existing config; told to
	// keep it, the package installs around it and changes nothing in it.
	hand := fmt.Sprintf("# written by hand before the package\nlisten = \"127.0.0.1:%d\"\npublic_url = \"https://hand.example.com\"\n", authdPort)
	if err := os.Mkdir("/etc/authd", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("/etc/authd/authd.toml", []byte(hand), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, 5*time.Minute, filepath.Dir(deb), "apt-get", aptArgs("install", "-o", "Dpkg::Options::=--force-confold", "./"+filepath.Base(deb))...)
	if got := readFile(t, "/etc/authd/authd.toml"); got != hand {
		t.Errorf("installing over a hand-made config changed it:\n%s", got)
	}
	checkOwner(t, "/etc/authd/authd.toml", 0, gid, 0o640)
	cc = exec.Command("/usr/bin/authd", "check-config", "-config", "/etc/authd/authd.toml")
	cc.SysProcAttr = asAuthd
	if b, err := cc.CombinedOutput(); err != nil {
		t.Errorf("check-config as authd on the hand-made config: %v\n%s", err, b)
	}
	run(t, 5*time.Minute, "", "apt-get", aptArgs("purge", "authd")...)
	for _, p := range owned {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s is still there after the second purge", p)
		}
	}
}

// lockRun holds an exclusive lock for the test's lifetime: two runs would install over each other.
func lockRun(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile("/run/lock/authd-deb-test.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Minute)
	for syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		if time.Now().After(deadline) {
			t.Fatal("another run of this test holds /run/lock/authd-deb-test.lock")
		}
		time.Sleep(time.Second)
	}
	t.Cleanup(func() { f.Close() })
}

func aptArgs(verb string, args ...string) []string {
	return append([]string{"-y", "-q", "-o", "DPkg::Lock::Timeout=300", verb}, args...)
}

// run runs a command and returns its standard output; failing, it ends the test with the output.
func run(t *testing.T, d time.Duration, dir, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if name == "/usr/bin/authd" {
		// The CLI reads passwords from stdin, never from argv.
		cmd.Stdin = strings.NewReader("a long enough passphrase\n")
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// status is dpkg's status of the authd package ("" when dpkg does not know it).
func status(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", "authd").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func installed(t *testing.T) bool {
	t.Helper()
	st := status(t)
	return st != "" && st != "unknown ok not-installed"
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// writeKeepMode rewrites a file in place, as an editor would, keeping owner and mode.
func writeKeepMode(t *testing.T, path, content string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func checkOwner(t *testing.T, path string, uid, gid int, mode os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	if int(st.Uid) != uid || int(st.Gid) != gid || fi.Mode().Perm() != mode {
		t.Errorf("%s: owner %d:%d mode %04o, want %d:%d %04o", path, st.Uid, st.Gid, fi.Mode().Perm(), uid, gid, mode)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// proc is a long-running process in its own process group.
type proc struct {
	name    string
	cmd     *exec.Cmd
	done    chan struct{}
	started time.Time
}

func start(t *testing.T, name string, cmd *exec.Cmd, log string) *proc {
	t.Helper()
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), started: time.Now()}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			b, _ := os.ReadFile(log)
			t.Logf("---- %s log ----\n%s", name, tail(string(b), 30))
		}
	})
	return p
}

// stop ends the process group with SIGTERM, SIGKILL after 10 s.
func (p *proc) stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Errorf("%s did not stop within 10s of SIGTERM", p.name)
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func startAuthd(t *testing.T, attr *syscall.SysProcAttr, log string) *proc {
	t.Helper()
	cmd := exec.Command("/usr/bin/authd", "serve", "-config", "/etc/authd/authd.toml")
	cmd.SysProcAttr = attr
	cmd.Dir = "/var/lib/authd"
	cmd.Env = []string{"HOME=/var/lib/authd", "PATH=/usr/bin:/bin"}
	return start(t, "authd", cmd, log)
}

func waitReady(t *testing.T, port int, p *proc) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", port))
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.done:
			t.Fatalf("authd exited before /readyz answered 200")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("authd /readyz not 200 after 20s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startNginx runs nginx on plain HTTP with the installed snippets: authd-http.conf pointed at the
// test's authd port, everything else as installed.
func startNginx(t *testing.T, authdPort, port int) *proc {
	t.Helper()
	dir, err := os.MkdirTemp("", "authd-deb-nginx-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, d := range []string{dir, filepath.Join(dir, "authd"), filepath.Join(dir, "tmp"), filepath.Join(dir, "www")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "www", "app"), []byte("the app\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	snippets, err := filepath.Glob("/etc/nginx/authd/*.conf")
	if err != nil || len(snippets) == 0 {
		t.Fatalf("no installed snippets in /etc/nginx/authd: %v", err)
	}
	for _, src := range snippets {
		b := readFile(t, src)
		if filepath.Base(src) == "authd-http.conf" {
			b = strings.Replace(b, "server 127.0.0.1:9091;", fmt.Sprintf("server 127.0.0.1:%d;", authdPort), 1)
		}
		if err := os.WriteFile(filepath.Join(dir, "authd", filepath.Base(src)), []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	conf := fmt.Sprintf(`daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 64; }
http {
    include /etc/nginx/mime.types;
    access_log off;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
    include authd/authd-http.conf;
    server {
        listen 127.0.0.1:%[2]d;
        server_name localhost;
        include authd/authd-server.conf;
        # The app: a file nginx serves itself (content handlers run after auth_request;
        # a return would run before it).
        location / {
            include authd/authd-protect.conf;
            root %[1]s/www;
        }
    }
}
`, dir, port)
	main := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(main, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("nginx", "-t", "-q", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", main).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t with the installed snippets: %v\n%s", err, b)
	}
	p := start(t, "nginx", exec.Command("nginx", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", main), filepath.Join(dir, "nginx.log"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not listen on %d: %v\n%s", port, err, readFile(t, filepath.Join(dir, "error.log")))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lintian runs Debian's package checker when it is installed and reports what it finds; an
// error-level finding fails the test, warnings and the rest are logged.
func lintian(t *testing.T, deb string) {
	t.Helper()
	if _, err := exec.LookPath("lintian"); err != nil {
		t.Log("lintian not installed: skipped (apt-get install lintian)")
		return
	}
	out, _ := exec.Command("lintian", "--tag-display-limit", "0", deb).CombinedOutput()
	var errs []string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "E: ") {
			errs = append(errs, sc.Text())
		}
	}
	t.Logf("lintian:\n%s", out)
	if len(errs) > 0 {
		t.Errorf("lintian errors:\n%s", strings.Join(errs, "\n"))
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
