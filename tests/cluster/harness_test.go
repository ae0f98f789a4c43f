package cluster

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/authd/authd/tests/internal/authdtest"
)

// proc is a long-lived process in its own process group, logging to a file.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// signal sends sig to the process group.
func (p *proc) signal(sig syscall.Signal) { _ = syscall.Kill(-p.cmd.Process.Pid, sig) }

// stop ends the process with sig, then SIGKILL after a grace period.
func (p *proc) stop(sig syscall.Signal) {
	if !p.running() {
		return
	}
	p.signal(syscall.SIGCONT)
	p.signal(sig)
	select {
	case <-p.done:
	case <-time.After(8 * time.Second):
		p.signal(syscall.SIGKILL)
		<-p.done
	}
}

// cluster is the deployment under test: one Redis (AOF on), two authd
// instances and two Streamlit servers on their own loopback addresses, and
// nginx running nginx/lb-example.conf with the shipped snippets.
type cluster struct {
	t     *testing.T
	root  string
	dir   string
	bin   string
	procs map[string]*proc

	redisPort                  int
	authdAddrs, streamlitAddrs [2]string
	httpsPort, httpPort        int
	confs                      [2]string
}

const password = "correct horse battery staple"

func requireCluster(t *testing.T) {
	t.Helper()
	if os.Getenv("AUTHD_E2E") == "" {
		t.Skip("cluster tests need nginx, redis-server and Streamlit: run `bash tests/run.sh` (it installs them and sets AUTHD_E2E=1)")
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func freePort(t testing.TB, host string) int {
	t.Helper()
	l, err := net.Listen("tcp", host+":0")
	must(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func look(t testing.TB, env string, names ...string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	t.Fatalf("none of %v found (set %s)", names, env)
	return ""
}

// newClusterDir is a cluster with its directory, its logs folder and the
// authd binary, and nothing running yet. At cleanup it stops the processes
// named in stop, in that order, and on failure prints the tails of the logs
// named in tails.
func newClusterDir(t *testing.T, stop, tails []string) *cluster {
	t.Helper()
	wd, _ := os.Getwd()
	c := &cluster{t: t, root: filepath.Clean(filepath.Join(wd, "..", "..")), dir: t.TempDir(), procs: map[string]*proc{}}
	must(t, os.MkdirAll(filepath.Join(c.dir, "logs"), 0o755))
	t.Cleanup(func() {
		for _, n := range stop {
			if p := c.procs[n]; p != nil {
				p.stop(syscall.SIGTERM)
			}
		}
		if t.Failed() {
			for _, n := range tails {
				b, _ := os.ReadFile(filepath.Join(c.dir, "logs", n+".log"))
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				t.Logf("---- %s log (tail) ----\n%s", n, strings.Join(lines[max(0, len(lines)-25):], "\n"))
			}
		}
	})
	c.bin = os.Getenv("AUTHD_BIN")
	if c.bin == "" {
		c.bin = filepath.Join(c.dir, "authd")
		must(t, authdtest.Build(c.bin))
	}
	return c
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	c := newClusterDir(t, []string{"nginx", "streamlit-0", "streamlit-1", "authd-0", "authd-1", "redis"},
		[]string{"authd-0", "authd-1", "redis", "streamlit-0", "nginx-error"})
	must(t, os.Chmod(c.dir, 0o755)) // nginx workers run as nobody
	// Distinct loopback addresses, as separate machines would have.
	for i := range 2 {
		host := fmt.Sprintf("127.0.0.%d", 11+i)
		c.authdAddrs[i] = net.JoinHostPort(host, strconv.Itoa(freePort(t, host)))
		host = fmt.Sprintf("127.0.0.%d", 21+i)
		c.streamlitAddrs[i] = net.JoinHostPort(host, strconv.Itoa(freePort(t, host)))
	}
	c.redisPort = freePort(t, "127.0.0.1")
	c.httpsPort, c.httpPort = freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1")

	c.startRedis()
	for i := range 2 {
		c.writeAuthdConf(i)
	}
	c.cli(0, password+"\n", "user", "add", "-groups", "staff", "-name", "Ada Lovelace", "ada")
	for i := range 2 {
		c.startAuthd(i)
	}
	for i := range 2 {
		c.startStreamlit(i)
	}
	c.startNginx()
	return c
}

func (c *cluster) start(name string, cmd *exec.Cmd) *proc {
	c.t.Helper()
	logf, err := os.OpenFile(filepath.Join(c.dir, "logs", name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	must(c.t, err)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	must(c.t, cmd.Start())
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	c.procs[name] = p
	return p
}

func (c *cluster) startRedis() {
	c.t.Helper()
	bin := look(c.t, "REDIS_SERVER", "redis-server", "/usr/bin/redis-server")
	data := filepath.Join(c.dir, "redis")
	must(c.t, os.MkdirAll(data, 0o700))
	c.start("redis", exec.Command(bin, "--port", strconv.Itoa(c.redisPort), "--bind", "127.0.0.1", "--dir", data,
		"--save", "", "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no"))
	waitDial(c.t, net.JoinHostPort("127.0.0.1", strconv.Itoa(c.redisPort)), 10*time.Second)
}

// writeAuthdConf writes authd instance i's config for the standalone Redis.
func (c *cluster) writeAuthdConf(i int) {
	c.writeConf(i, fmt.Sprintf("addrs = [\"127.0.0.1:%d\"]\nkey_prefix = \"cluster:\"", c.redisPort))
}

// cli runs an authd command against instance i's config.
func (c *cluster) cli(i int, stdin string, args ...string) string {
	c.t.Helper()
	cmd := exec.Command(c.bin, append(args, "-config", c.confs[i])...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		c.t.Fatalf("authd %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func (c *cluster) startAuthd(i int) {
	c.t.Helper()
	c.start(fmt.Sprintf("authd-%d", i), exec.Command(c.bin, "serve", "-config", c.confs[i]))
	waitHTTP(c.t, "http://"+c.authdAddrs[i]+"/readyz", 200, 15*time.Second)
}

func (c *cluster) startStreamlit(i int) {
	c.t.Helper()
	st := look(c.t, "STREAMLIT", "/opt/streamlit/venv/bin/streamlit", "streamlit")
	home := filepath.Join(c.dir, fmt.Sprintf("streamlit-%d", i))
	must(c.t, os.MkdirAll(filepath.Join(home, ".streamlit"), 0o755))
	conf, err := os.ReadFile(filepath.Join(c.root, "conf", "streamlit", "config.toml"))
	must(c.t, err)
	must(c.t, os.WriteFile(filepath.Join(home, ".streamlit", "config.toml"), conf, 0o644))
	host, port, _ := net.SplitHostPort(c.streamlitAddrs[i])
	// The same cookieSecret on every server, as lb-example.conf asks.
	cmd := exec.Command(st, "run", filepath.Join(c.root, "conf", "demo", "app.py"),
		"--server.address", host, "--server.port", port)
	cmd.Dir = home
	// The demo app asks this server's own authd whether a session is still live (streamlit_authd
	// from this checkout), as each server of lb-example.conf would.
	cmd.Env = append(os.Environ(), "HOME="+home, "STREAMLIT_SERVER_COOKIE_SECRET=cluster-test-shared-secret",
		"PYTHONPATH="+filepath.Join(c.root, "conf", "clients", "streamlit_authd", "src"), "AUTHD_URL=http://"+c.authdAddrs[i])
	c.start(fmt.Sprintf("streamlit-%d", i), cmd)
	waitHTTP(c.t, "http://"+c.streamlitAddrs[i]+"/_stcore/health", 200, 90*time.Second)
}

func readReplace(t testing.TB, path string, pairs ...string) string {
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

func (c *cluster) startNginx() {
	c.t.Helper()
	ngx := filepath.Join(c.dir, "nginx")
	must(c.t, os.MkdirAll(filepath.Join(ngx, "authd"), 0o755))
	must(c.t, os.MkdirAll(filepath.Join(ngx, "tmp"), 0o777))
	must(c.t, os.Chmod(filepath.Join(ngx, "tmp"), 0o777))
	must(c.t, authdtest.WriteCert(filepath.Join(c.dir, "tls")))
	py := filepath.Join(filepath.Dir(look(c.t, "STREAMLIT", "/opt/streamlit/venv/bin/streamlit", "streamlit")), "python")
	out, err := exec.Command(py, "-c", "import os, streamlit; print(os.path.join(os.path.dirname(streamlit.__file__), 'static'))").Output()
	must(c.t, err)
	static := strings.TrimSpace(string(out))

	site := readReplace(c.t, filepath.Join(c.root, "nginx", "lb-example.conf"),
		"    listen [::]:80;\n", "",
		"    listen [::]:443 ssl http2;\n", "",
		"listen 80;", fmt.Sprintf("listen 127.0.0.1:%d;", c.httpPort),
		"listen 443 ssl http2;", fmt.Sprintf("listen 127.0.0.1:%d ssl http2;", c.httpsPort),
		"server_name app.example.com;", "server_name localhost;",
		"/etc/ssl/authd/", filepath.Join(c.dir, "tls")+"/",
		"server 10.0.0.11:8501", "server "+c.streamlitAddrs[0],
		"server 10.0.0.12:8501", "server "+c.streamlitAddrs[1],
		"/opt/streamlit/venv/lib/python3.11/site-packages/streamlit/static/", static+"/",
	)
	must(c.t, os.WriteFile(filepath.Join(ngx, "site.conf"), []byte(site), 0o644))
	snippets, err := filepath.Glob(filepath.Join(c.root, "nginx", "*.conf"))
	must(c.t, err)
	for _, src := range snippets {
		b, err := os.ReadFile(src)
		must(c.t, err)
		if filepath.Base(src) == "authd-http-lb.conf" {
			b = []byte(readReplace(c.t, src,
				"server 10.0.0.11:9091", "server "+c.authdAddrs[0],
				"server 10.0.0.12:9091", "server "+c.authdAddrs[1]))
		}
		must(c.t, os.WriteFile(filepath.Join(ngx, "authd", filepath.Base(src)), b, 0o644))
	}
	logs := filepath.Join(c.dir, "logs")
	main := fmt.Sprintf(`daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[2]s/nginx-error.log info;
events { worker_connections 1024; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    log_format cluster '"$request" $status upstream=$upstream_addr';
    access_log %[2]s/nginx-access.log cluster;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
    include site.conf;
}
`, ngx, logs)
	conf := filepath.Join(ngx, "nginx.conf")
	must(c.t, os.WriteFile(conf, []byte(main), 0o644))
	bin := look(c.t, "NGINX", "nginx", "/usr/sbin/nginx")
	c.start("nginx", exec.Command(bin, "-p", ngx, "-e", filepath.Join(logs, "nginx-error.log"), "-c", conf))
	waitDial(c.t, fmt.Sprintf("127.0.0.1:%d", c.httpsPort), 10*time.Second)
}

func waitDial(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(50 * time.Millisecond) {
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening after %v", addr, timeout)
		}
	}
}

func waitHTTP(t testing.TB, u string, want int, timeout time.Duration) {
	t.Helper()
	hc := &http.Client{Timeout: 2 * time.Second}
	var last string
	for deadline := time.Now().Add(timeout); ; time.Sleep(100 * time.Millisecond) {
		resp, err := hc.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not answering %d after %v (last: %s)", u, want, timeout, last)
		}
	}
}

// client talks HTTP/1.1 to the site without following redirects.
func (c *cluster) client() *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{InsecureSkipVerify: true},
			TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
			MaxIdleConnsPerHost: 64,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func (c *cluster) origin() string { return "https://localhost:" + strconv.Itoa(c.httpsPort) }

// get fetches path through nginx with cookie, as a page navigation.
func (c *cluster) get(hc *http.Client, path, cookie string) (*http.Response, string) {
	c.t.Helper()
	req, _ := http.NewRequest("GET", c.origin()+path, nil)
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	req.Header.Set("Accept", "text/html")
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := hc.Do(req)
	if err != nil {
		c.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, string(b)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

const cookieName = "__Host-authd_session"

// login signs in through base (the site's origin, or one authd directly)
// and returns the session cookie ("name=value"), or "" and the response.
func (c *cluster) login(base, user, pw string) (string, *http.Response) {
	c.t.Helper()
	hc := c.client()
	resp, err := hc.Get(base + "/authd/login")
	if err != nil {
		c.t.Fatalf("login form: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfField.FindStringSubmatch(string(body))
	if m == nil || len(resp.Cookies()) == 0 {
		c.t.Fatalf("login form without csrf token or pre-session cookie (%s):\n%.500s", resp.Status, body)
	}
	pre := resp.Cookies()[0]
	form := url.Values{"username": {user}, "password": {pw}, "rd": {"/"}, "csrf": {m[1]}}
	req, _ := http.NewRequest("POST", base+"/authd/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", c.origin())
	req.Header.Set("Cookie", pre.Name+"="+pre.Value)
	resp, err = hc.Do(req)
	if err != nil {
		c.t.Fatalf("login post: %v", err)
	}
	resp.Body.Close()
	for _, ck := range resp.Cookies() {
		if ck.Name == cookieName && ck.Value != "" {
			return ck.Name + "=" + ck.Value, resp
		}
	}
	return "", resp
}

// verify asks authd instance i directly, as nginx would.
func (c *cluster) verify(i int, cookie string) int {
	c.t.Helper()
	req, _ := http.NewRequest("GET", "http://"+c.authdAddrs[i]+"/verify", nil)
	req.Header.Set("X-Original-URI", "/")
	req.Header.Set("X-Original-Method", "GET")
	req.Header.Set("X-Forwarded-Host", "localhost")
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := c.client().Do(req)
	if err != nil {
		c.t.Fatalf("verify on authd-%d: %v", i, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// metric reads one counter from authd instance i's /metrics.
func (c *cluster) metric(i int, name string) int {
	c.t.Helper()
	resp, err := http.Get("http://" + c.authdAddrs[i] + "/metrics")
	if err != nil {
		c.t.Fatalf("metrics of authd-%d: %v", i, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			// client_golang writes large counts in exponent form (1.2e+06).
			n, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int(n)
		}
	}
	c.t.Fatalf("metric %s not found", name)
	return 0
}

// procStatus reads a field (VmRSS in kB, Threads) of a process.
func procStatus(t testing.TB, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	must(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	return 0
}

// openFDs counts a process's open file descriptors (connections included).
func openFDs(t testing.TB, pid int) int {
	t.Helper()
	es, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	must(t, err)
	return len(es)
}
