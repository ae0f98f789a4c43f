package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/authd/authd/tests/internal/authdtest"
)

// stack is one running deployment: authd, Streamlit and nginx, each in its own process group,
// with their files in a temporary directory.
type stack struct {
	root      string // repository root
	dir       string // temporary directory holding every file of this stack
	authdBin  string
	authdConf string
	stBin     string // the venv's streamlit
	staticDir string // streamlit/static inside the venv
	nginxBin  string
	nginxConf string

	httpsPort, httpPort, authdPort, stPort int
	ports                                  map[string]int // the apps' Streamlit ports, by prefix
	// prefix, when set, mounts the app under /<prefix>/ (Streamlit's server.baseUrlPath).
	prefix string
	// opts are the extras a test asked for (more apps, authd settings).
	opts stackOpts

	procs map[string]*proc
}

// appPath is the path the app is mounted at: "/" or "/<prefix>/".
func (s *stack) appPath() string {
	if s.prefix == "" {
		return "/"
	}
	return "/" + s.prefix + "/"
}

// origin is the site's origin as the browser uses it.
func (s *stack) origin() string { return "https://localhost:" + strconv.Itoa(s.httpsPort) }

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

// stop ends the process group with SIGTERM, then SIGKILL after a grace period.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(8 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// requireE2E skips unless the environment asked for the end-to-end suite.
func requireE2E(t testing.TB) {
	t.Helper()
	if os.Getenv("AUTHD_E2E") == "" {
		t.Skip("end-to-end tests need nginx, Chromium and Streamlit: run `bash tests/run.sh` (it installs them and sets AUTHD_E2E=1)")
	}
}

// repoRoot is the module root, two levels above this package.
func repoRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Clean(filepath.Join(wd, "..", ".."))
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found from %s: %v", wd, err)
	}
	return root
}

// lookTool finds an executable by env override, PATH, or a list of usual places.
func lookTool(t testing.TB, env string, names ...string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	for _, n := range names {
		if filepath.IsAbs(n) {
			if _, err := os.Stat(n); err == nil {
				return n
			}
			continue
		}
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	t.Fatalf("none of %v found (set %s)", names, env)
	return ""
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// stackOpts are a stack's extras beyond the demo app.
type stackOpts struct {
	// authdTOML is appended to authd.toml (tables only: it follows [log]).
	authdTOML string
	// apps are the example site's apps under a prefix ("sales", "ops") to run too, each a
	// Streamlit process of the demo app with that baseUrlPath and AUTHD_APP_TITLE.
	apps []string
	// noRoot skips the demo app at /.
	noRoot bool
	// beforeAuthd, when set, runs once the ports are chosen and before authd
	// starts; it may add to authdTOML (an identity provider that must know
	// the site's address, for one).
	beforeAuthd func(s *stack)
}

// newStack builds authd and starts authd, Streamlit (the demo app, under /<prefix>/ when prefix
// is set) and nginx (the example site rendered for this stack's ports and paths). Everything stops
// when the test ends.
func newStack(t *testing.T, prefix string) *stack {
	t.Helper()
	return newStackOpts(t, prefix, stackOpts{})
}

// newStackOpts is newStack with extras.
func newStackOpts(t *testing.T, prefix string, opts stackOpts) *stack {
	t.Helper()
	s := &stack{
		root:   repoRoot(t),
		dir:    t.TempDir(),
		procs:  map[string]*proc{},
		prefix: prefix,
		opts:   opts,
		ports:  map[string]int{},
	}
	// nginx workers run as nobody: they must reach files below the temp directory.
	if err := os.Chmod(s.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s.nginxBin = lookTool(t, "NGINX", "nginx", "/usr/sbin/nginx")
	s.stBin = lookTool(t, "STREAMLIT", "/opt/streamlit/venv/bin/streamlit", "streamlit")
	s.httpsPort, s.httpPort, s.authdPort, s.stPort = freePort(t), freePort(t), freePort(t), freePort(t)
	t.Cleanup(func() {
		// Stop in reverse order of start; show the logs when something failed.
		for _, n := range append(append([]string{"nginx", "streamlit"}, s.appProcs()...), "authd") {
			if p := s.procs[n]; p != nil {
				p.stop()
			}
		}
		if t.Failed() {
			for _, n := range append(append([]string{"authd", "streamlit"}, s.appProcs()...), "nginx", "nginx-error") {
				t.Logf("---- %s log (tail) ----\n%s", n, tail(filepath.Join(s.dir, "logs", n+".log"), 40))
			}
		}
	})
	must(t, os.MkdirAll(filepath.Join(s.dir, "logs"), 0o755))

	s.buildAuthd(t)
	if opts.beforeAuthd != nil {
		opts.beforeAuthd(s)
	}
	s.startAuthd(t)
	s.startStreamlit(t)
	s.startNginx(t)
	return s
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (s *stack) buildAuthd(t *testing.T) {
	t.Helper()
	if p := os.Getenv("AUTHD_BIN"); p != "" {
		s.authdBin = p
		return
	}
	s.authdBin = filepath.Join(s.dir, "authd")
	must(t, authdtest.Build(s.authdBin))
}

// start runs a long-lived process in its own process group, logging to logs/<name>.log.
func (s *stack) start(t testing.TB, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(s.dir, "logs", name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	must(t, err)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	must(t, cmd.Start())
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	s.procs[name] = p
	return p
}

// authd runs one authd CLI command (its words, then flags and arguments after -config) against
// this stack's config, with stdin as given.
func (s *stack) authd(t testing.TB, stdin string, words []string, args ...string) string {
	t.Helper()
	full := append(append(append([]string{}, words...), "-config", s.authdConf), args...)
	cmd := exec.Command(s.authdBin, full...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("authd %s: %v\n%s", strings.Join(full, " "), err, out)
	}
	return string(out)
}

func (s *stack) startAuthd(t *testing.T) {
	t.Helper()
	data := filepath.Join(s.dir, "authd-data")
	must(t, os.MkdirAll(data, 0o700))
	users := filepath.Join(s.dir, "users.toml")
	must(t, os.WriteFile(users, nil, 0o600))
	s.authdConf = filepath.Join(s.dir, "authd.toml")
	conf := fmt.Sprintf(`listen = "127.0.0.1:%d"
public_url = %q
data_dir = %q
users_file = %q
login_title = "authd e2e"

[log]
level = "debug"
`, s.authdPort, s.origin(), data, users) + s.opts.authdTOML
	must(t, os.WriteFile(s.authdConf, []byte(conf), 0o600))
	s.authd(t, "", []string{"check-config"})
	s.authd(t, testPassword+"\n", []string{"user", "add"}, "-groups", "staff,analysts", "-email", "ada@example.com", "-name", "Ada Lovelace", "ada")

	s.start(t, "authd", exec.Command(s.authdBin, "serve", "-config", s.authdConf))
	waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/healthz", s.authdPort), 200, 15*time.Second)
}

// testPassword is the demo user's password in every test stack.
const testPassword = "correct horse battery staple"

// appProcs names the processes of the apps under a prefix.
func (s *stack) appProcs() []string {
	var names []string
	for _, a := range s.opts.apps {
		names = append(names, "streamlit-"+a)
	}
	return names
}

// startStreamlit starts the demo app at / (or under the stack's prefix) and the apps under a
// prefix, all at once, and waits for each.
func (s *stack) startStreamlit(t *testing.T) {
	t.Helper()
	var waits []string
	if !s.opts.noRoot {
		s.startApp(t, "streamlit", s.prefix, s.stPort, nil)
		waits = append(waits, fmt.Sprintf("http://127.0.0.1:%d%s_stcore/health", s.stPort, s.appPath()))
	}
	for _, a := range s.opts.apps {
		s.ports[a] = freePort(t)
		s.startApp(t, "streamlit-"+a, a, s.ports[a], []string{"AUTHD_APP_TITLE=App " + a, "AUTHD_APP_GROUPS=" + a})
		waits = append(waits, fmt.Sprintf("http://127.0.0.1:%d/%s/_stcore/health", s.ports[a], a))
	}
	for _, u := range waits {
		waitHTTP(t, u, 200, 60*time.Second)
	}
}

// startApp runs the demo app as one Streamlit process, with the checkout's streamlit_authd
// package and the stack's authd.
func (s *stack) startApp(t *testing.T, name, prefix string, port int, env []string) {
	t.Helper()
	home := filepath.Join(s.dir, name)
	must(t, os.MkdirAll(filepath.Join(home, ".streamlit"), 0o755))
	conf, err := os.ReadFile(filepath.Join(s.root, "conf", "streamlit", "config.toml"))
	must(t, err)
	must(t, os.WriteFile(filepath.Join(home, ".streamlit", "config.toml"), conf, 0o644))

	py := filepath.Join(filepath.Dir(s.stBin), "python")
	out, err := exec.Command(py, "-c", "import os, streamlit; print(os.path.join(os.path.dirname(streamlit.__file__), 'static'))").Output()
	if err != nil {
		t.Fatalf("find Streamlit's static directory with %s: %v", py, err)
	}
	s.staticDir = strings.TrimSpace(string(out))

	args := []string{"run", filepath.Join(s.root, "conf", "demo", "app.py"),
		"--server.port", strconv.Itoa(port), "--server.address", "127.0.0.1"}
	if prefix != "" {
		args = append(args, "--server.baseUrlPath", prefix)
	}
	cmd := exec.Command(s.stBin, args...)
	cmd.Dir = home
	// The package from this checkout (not whatever the venv has installed), asking this authd.
	cmd.Env = append(append(os.Environ(), "HOME="+home,
		"PYTHONPATH="+filepath.Join(s.root, "conf", "clients", "streamlit_authd", "src"),
		fmt.Sprintf("AUTHD_URL=http://127.0.0.1:%d", s.authdPort)), env...)
	s.start(t, name, cmd)
}

// renderSite turns the shipped example site into this stack's site: loopback listeners on free
// ports, the test certificate, the venv's static directory. Each replaced text must occur in the
// shipped file, so a change there that the test does not know about fails here.
func (s *stack) renderSite(t *testing.T, ngx string) {
	t.Helper()
	site := readReplace(t, filepath.Join(s.root, "nginx", "example-site.conf"), []string{
		"    listen [::]:80;\n", "",
		"    listen [::]:443 ssl http2;\n", "",
		"listen 80;", fmt.Sprintf("listen 127.0.0.1:%d;", s.httpPort),
		"listen 443 ssl http2;", fmt.Sprintf("listen 127.0.0.1:%d ssl http2;", s.httpsPort),
		"return 301 https://$host$request_uri;", fmt.Sprintf("return 301 https://$host:%d$request_uri;", s.httpsPort),
		"server_name app.example.com;", "server_name localhost;",
		"/etc/ssl/authd/", filepath.Join(s.dir, "tls") + "/",
		"server 127.0.0.1:8501;", fmt.Sprintf("server 127.0.0.1:%d;", s.stPort),
		"server 127.0.0.1:8502;", fmt.Sprintf("server 127.0.0.1:%d;", s.appPort("sales", 8502)),
		"server 127.0.0.1:8503;", fmt.Sprintf("server 127.0.0.1:%d;", s.appPort("ops", 8503)),
		"/opt/streamlit/venv/lib/python3.11/site-packages/streamlit/static/", s.staticDir + "/",
	})
	if s.prefix != "" {
		// The example site's comment: the same four locations under /<prefix>/.
		for _, loc := range []string{"/", "/_stcore/stream", "/_stcore/upload_file/", "/static/"} {
			old := "    location " + loc + " {\n"
			if strings.Count(site, old) != 1 {
				t.Fatalf("example site: want exactly one %q", old)
			}
			site = strings.Replace(site, old, "    location /"+s.prefix+loc+" {\n", 1)
		}
	}
	must(t, os.WriteFile(filepath.Join(ngx, "site.conf"), []byte(site), 0o644))

	snippets, err := filepath.Glob(filepath.Join(s.root, "nginx", "*.conf"))
	must(t, err)
	must(t, os.MkdirAll(filepath.Join(ngx, "authd"), 0o755))
	// nginx's workers serve the page themselves, and cannot enter t.TempDir()'s parent (0700).
	html, err := os.MkdirTemp("", "authd-e2e-html-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(html) })
	must(t, os.Chmod(html, 0o755))
	for _, src := range snippets {
		if filepath.Base(src) == "example-site.conf" {
			continue
		}
		b, err := os.ReadFile(src)
		must(t, err)
		if filepath.Base(src) == "authd-http.conf" {
			b = []byte(readReplace(t, src, []string{"server 127.0.0.1:9091;", fmt.Sprintf("server 127.0.0.1:%d;", s.authdPort)}))
		}
		if filepath.Base(src) == "authd-server.conf" {
			// The unavailable page where the Debian package puts it → this stack's copy.
			b = []byte(readReplace(t, src, []string{"/usr/share/authd/html", html}))
		}
		must(t, os.WriteFile(filepath.Join(ngx, "authd", filepath.Base(src)), b, 0o644))
	}
	pages, err := filepath.Glob(filepath.Join(s.root, "nginx", "html", "*"))
	must(t, err)
	for _, src := range pages {
		b, err := os.ReadFile(src)
		must(t, err)
		must(t, os.WriteFile(filepath.Join(html, filepath.Base(src)), b, 0o644))
	}
}

// appPort is the port of the app under /<name>/, or def when this stack does not run it.
func (s *stack) appPort(name string, def int) int {
	if p := s.ports[name]; p != 0 {
		return p
	}
	return def
}

func readReplace(t testing.TB, path string, pairs []string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	text := string(b)
	for i := 0; i < len(pairs); i += 2 {
		if !strings.Contains(text, pairs[i]) {
			t.Fatalf("%s: expected text %q not found; update the test's rendering", path, pairs[i])
		}
		text = strings.ReplaceAll(text, pairs[i], pairs[i+1])
	}
	return text
}

func (s *stack) startNginx(t *testing.T) {
	t.Helper()
	ngx := filepath.Join(s.dir, "nginx")
	for _, d := range []string{"tmp"} {
		must(t, os.MkdirAll(filepath.Join(ngx, d), 0o777))
		must(t, os.Chmod(filepath.Join(ngx, d), 0o777))
	}
	must(t, authdtest.WriteCert(filepath.Join(s.dir, "tls")))
	s.renderSite(t, ngx)
	logs := filepath.Join(s.dir, "logs")
	main := fmt.Sprintf(`daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[2]s/nginx-error.log info;
events { worker_connections 512; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    log_format e2e '$remote_addr "$request" $status $body_bytes_sent upstream=$upstream_addr';
    access_log %[2]s/nginx-access.log e2e;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
    include site.conf;
}
`, ngx, logs)
	s.nginxConf = filepath.Join(ngx, "nginx.conf")
	must(t, os.WriteFile(s.nginxConf, []byte(main), 0o644))

	s.start(t, "nginx", exec.Command(s.nginxBin, "-p", ngx, "-e", filepath.Join(logs, "nginx-error.log"), "-c", s.nginxConf))
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.httpsPort), time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not listen on %d: %v", s.httpsPort, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// nginxTest runs `nginx -t` on the rendered site and returns its output.
func (s *stack) nginxTest(t testing.TB) (string, error) {
	t.Helper()
	ngx := filepath.Dir(s.nginxConf)
	out, err := exec.Command(s.nginxBin, "-t", "-p", ngx, "-e", filepath.Join(s.dir, "logs", "nginx-t.log"), "-c", s.nginxConf).CombinedOutput()
	return string(out), err
}

func waitHTTP(t testing.TB, url string, want int, timeout time.Duration) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not answering %d after %v (last error %v)", url, want, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// client is an HTTP/1.1 client for the site that neither follows redirects nor checks the
// self-signed certificate (HTTP/1.1 so that WebSocket handshakes can be sent).
func (s *stack) client() *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
			TLSNextProto:    map[string]func(string, *tls.Conn) http.RoundTripper{},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// listenAddrs lists the local addresses that sockets listening on port are bound to, read from
// /proc/net/tcp and tcp6 (hex, as the kernel writes them).
func listenAddrs(t testing.TB, port int) []string {
	t.Helper()
	var addrs []string
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 4 || fields[3] != "0A" { // 0A: LISTEN
				continue
			}
			host, hexPort, ok := strings.Cut(fields[1], ":")
			if !ok {
				continue
			}
			if p, err := strconv.ParseUint(hexPort, 16, 16); err == nil && int(p) == port {
				addrs = append(addrs, host)
			}
		}
	}
	return addrs
}
