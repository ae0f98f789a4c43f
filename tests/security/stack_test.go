package security

import (
	"bufio"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
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
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/authd/authd/tests/internal/authdtest"
)

// The users every stack has. ada is an ordinary user, root is in the admins group that /admin needs,
// dis is locked.
const (
	adaPassword  = "correct horse battery staple"
	rootPassword = "tr0ub4dor&3 is not a good one"
	disPassword  = "locked out of here for good"
	cookieName   = "__Host-authd_session"
	preName      = "__Host-authd_pre"
	// spoof is the value the suite puts in every identity header a client sends.
	spoof = "spoofroot"
)

// baseRules is the rule set most tests run against: /public is public, /admin needs the admins
// group, /office is open to the office network's role, /readonly is public for GET only, /app and
// /ws need any login, and everything else matches no rule (default deny).
const baseRules = `
[networks.office]
cidrs = ["127.0.0.5/32"]
role = "office"

[[rules]]
path = "/public"
allow = "public"

[[rules]]
path = "/admin"
groups = ["admins"]

[[rules]]
path = "/office"
roles = ["office"]

[[rules]]
path = "/readonly"
methods = ["GET"]
allow = "public"

[[rules]]
path = "/app"

[[rules]]
path = "/ws"
`

// stackOptions vary a stack. The zero value is the shared stack's setup.
type stackOptions struct {
	// extra is TOML appended to the top-level keys (before any table).
	extra string
	// tables is TOML appended after the top-level keys ([throttle], …).
	tables string
	// rules replaces baseRules when set.
	rules string
	// logLevel defaults to "debug".
	logLevel string
	// trustedProxies replaces trusted_proxies (default: nginx's own address, 127.0.0.1).
	trustedProxies []string
}

// stack is one running deployment: authd behind nginx (the shipped snippets), an echo app behind
// the protect snippet, each process in its own process group, with its files in a temporary
// directory that is removed when the stack stops.
type stack struct {
	root, dir string
	bin       string
	conf      string
	dataDir   string
	usersFile string
	nginxBin  string
	nginxConf string
	logs      string

	httpsPort, authdPort, echoPort int

	echo  *http.Server
	mu    sync.Mutex
	procs map[string]*proc
}

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

// signal sends sig to the process (not its group: authd has no children).
func (p *proc) signal(sig syscall.Signal) { _ = p.cmd.Process.Signal(sig) }

// stop ends the process group with SIGTERM, then SIGKILL after a grace period.
func (p *proc) stop() {
	if !p.running() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(8 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// wait waits for the process to exit.
func (p *proc) wait(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("%s did not exit within %v", p.name, d)
	}
}

// requireE2E skips unless the environment asked for the end-to-end suites.
func requireE2E(t testing.TB) {
	t.Helper()
	if os.Getenv("AUTHD_E2E") == "" {
		t.Skip("the security suite needs nginx: run `bash tests/run.sh` (it installs nginx and sets AUTHD_E2E=1)")
	}
}

var shared struct {
	once sync.Once
	s    *stack
	err  error
}

// sharedStack is the stack most tests use: started on first use, stopped by TestMain. Tests that
// change authd's state in ways others would notice (restarts, reloads, throttles) start their own.
func sharedStack(t *testing.T) *stack {
	t.Helper()
	requireE2E(t)
	shared.once.Do(func() { shared.s, shared.err = startStack(stackOptions{}) })
	if shared.err != nil {
		t.Fatalf("shared stack: %v", shared.err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			shared.s.dumpLogs(t)
		}
	})
	return shared.s
}

func stopShared() {
	if shared.s != nil {
		shared.s.stop()
	}
}

// newStack starts a stack for one test; it stops when the test ends.
func newStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	requireE2E(t)
	s, err := startStack(o)
	if s != nil {
		t.Cleanup(func() {
			if t.Failed() {
				s.dumpLogs(t)
			}
			s.stop()
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *stack) stop() {
	s.mu.Lock()
	procs := s.procs
	s.mu.Unlock()
	for _, n := range []string{"nginx", "authd", "authd2"} {
		if p := procs[n]; p != nil {
			p.stop()
		}
	}
	if s.echo != nil {
		s.echo.Close()
	}
	if os.Getenv("AUTHD_KEEP") == "" {
		os.RemoveAll(s.dir)
	}
}

func (s *stack) dumpLogs(t testing.TB) {
	for _, n := range []string{"authd", "nginx-error"} {
		t.Logf("---- %s log (tail) ----\n%s", n, tail(filepath.Join(s.logs, n+".log"), 30))
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

func startStack(o stackOptions) (s *stack, err error) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "authd-security-")
	if err != nil {
		return nil, err
	}
	s = &stack{root: root, dir: dir, procs: map[string]*proc{}, bin: os.Getenv("AUTHD_BIN")}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\n---- authd log ----\n%s\n---- nginx error log ----\n%s", err,
				tail(filepath.Join(s.logs, "authd.log"), 20), tail(filepath.Join(s.logs, "nginx-error.log"), 20))
		}
	}()
	if s.bin == "" {
		return s, fmt.Errorf("AUTHD_BIN not set (TestMain builds it)")
	}
	// nginx workers run as nobody: they must reach files below the temp directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		return s, err
	}
	s.logs = filepath.Join(dir, "logs")
	if err := os.MkdirAll(s.logs, 0o755); err != nil {
		return s, err
	}
	if s.nginxBin, err = lookTool("NGINX", "nginx", "/usr/sbin/nginx"); err != nil {
		return s, err
	}
	for _, p := range []*int{&s.httpsPort, &s.authdPort} {
		if *p, err = freePort(); err != nil {
			return s, err
		}
	}
	if err := s.startEcho(); err != nil {
		return s, err
	}
	if err := s.writeAuthdConfig(o); err != nil {
		return s, err
	}
	if err := s.addUsers(); err != nil {
		return s, err
	}
	if err := s.startAuthd("authd"); err != nil {
		return s, err
	}
	if err := s.startNginx(); err != nil {
		return s, err
	}
	return s, nil
}

func lookTool(env string, names ...string) (string, error) {
	if p := os.Getenv(env); p != "" {
		return p, nil
	}
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("none of %v found (set %s)", names, env)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// origin is the site's public origin (authd's public_url).
func (s *stack) origin() string { return "https://localhost:" + strconv.Itoa(s.httpsPort) }

func (s *stack) writeAuthdConfig(o stackOptions) error {
	s.dataDir = filepath.Join(s.dir, "data")
	if err := os.MkdirAll(s.dataDir, 0o700); err != nil {
		return err
	}
	s.usersFile = filepath.Join(s.dir, "users.toml")
	if err := os.WriteFile(s.usersFile, nil, 0o600); err != nil {
		return err
	}
	level := o.logLevel
	if level == "" {
		level = "debug"
	}
	rules := o.rules
	if rules == "" {
		rules = baseRules
	}
	trusted := o.trustedProxies
	if trusted == nil {
		trusted = []string{"127.0.0.1/32"}
	}
	conf := fmt.Sprintf(`listen = "127.0.0.1:%d"
public_url = %q
data_dir = %q
users_file = %q
trusted_proxies = %s
redirect_hosts = ["https://allowed.example.com"]
%s
[log]
level = %q
%s
%s`, s.authdPort, s.origin(), s.dataDir, s.usersFile, tomlStrings(trusted), o.extra, level, o.tables, rules)
	s.conf = filepath.Join(s.dir, "authd.toml")
	return os.WriteFile(s.conf, []byte(conf), 0o600)
}

// tomlStrings writes a TOML array of strings.
func tomlStrings(ss []string) string {
	q := make([]string, len(ss))
	for i, v := range ss {
		q[i] = strconv.Quote(v)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// cli runs one authd command against this stack's config.
func (s *stack) cli(stdin string, words ...string) (string, error) {
	args := append([]string{}, words[:cliWords(words)]...)
	args = append(args, "-config", s.conf)
	args = append(args, words[cliWords(words):]...)
	cmd := exec.Command(s.bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("authd %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// cliWords counts the command words (those before the first flag or argument): "user add", "session revoke".
func cliWords(words []string) int {
	switch {
	case len(words) >= 2 && (words[0] == "user" || words[0] == "session" || words[0] == "token" || words[0] == "key"):
		return 2
	case len(words) >= 1:
		return 1
	}
	return 0
}

func (s *stack) mustCLI(t testing.TB, stdin string, words ...string) string {
	t.Helper()
	out, err := s.cli(stdin, words...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (s *stack) addUsers() error {
	for _, u := range []struct{ name, pw, groups string }{
		{"ada", adaPassword, "staff"}, {"root", rootPassword, "admins,staff"}, {"dis", disPassword, "staff"},
	} {
		if _, err := s.cli(u.pw+"\n", "user", "add", "-groups", u.groups, "-email", u.name+"@example.com", "-name", "User "+u.name, u.name); err != nil {
			return err
		}
	}
	_, err := s.cli("", "user", "lock", "dis")
	return err
}

// startAuthd starts `authd serve` as the named process and waits until it is healthy.
func (s *stack) startAuthd(name string) error {
	p, err := s.start(name, exec.Command(s.bin, "serve", "-config", s.conf))
	if err != nil {
		return err
	}
	return s.waitHealthy(p, 15*time.Second)
}

func (s *stack) waitHealthy(p *proc, d time.Duration) error {
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(d)
	for {
		resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", s.authdPort))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if !p.running() {
			return fmt.Errorf("%s exited before it was healthy", p.name)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("authd not healthy after %v: %v", d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// start runs a long-lived process in its own process group, logging to logs/<log>.log.
func (s *stack) start(name string, cmd *exec.Cmd) (*proc, error) {
	log := name
	if strings.HasPrefix(name, "authd") {
		log = "authd" // every authd process of a stack writes one log, in order
	}
	logf, err := os.OpenFile(filepath.Join(s.logs, log+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	s.mu.Lock()
	s.procs[name] = p
	s.mu.Unlock()
	return p, nil
}

func (s *stack) proc(name string) *proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.procs[name]
}

// site is the nginx server block: TLS on loopback, the shipped authd snippets, the echo app behind
// the protect snippet at / and behind the Streamlit WebSocket profile at /ws/.
const site = `include authd/authd-http.conf;

upstream echo_app {
    server 127.0.0.1:%[1]d;
    keepalive 8;
}

server {
    listen 127.0.0.1:%[2]d ssl;
    server_name localhost;
    ssl_certificate     %[3]s/cert.pem;
    ssl_certificate_key %[3]s/key.pem;
    include authd/tls.conf;
    include authd/security-headers.conf;
    underscores_in_headers off;
    server_tokens off;
    client_max_body_size 1m;

    include authd/authd-server.conf;

    location / {
        proxy_pass http://echo_app;
        include authd/authd-protect.conf;
    }
    location /ws/ {
        proxy_pass http://echo_app;
        include authd/streamlit-stream.conf;
    }
}
`

func (s *stack) startNginx() error {
	ngx := filepath.Join(s.dir, "nginx")
	if err := os.MkdirAll(filepath.Join(ngx, "tmp"), 0o777); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Join(ngx, "tmp"), 0o777); err != nil {
		return err
	}
	tlsDir := filepath.Join(s.dir, "tls")
	if err := authdtest.WriteCert(tlsDir); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(ngx, "authd"), 0o755); err != nil {
		return err
	}
	snippets, err := filepath.Glob(filepath.Join(s.root, "nginx", "*.conf"))
	if err != nil {
		return err
	}
	for _, src := range snippets {
		if filepath.Base(src) == "example-site.conf" {
			continue
		}
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if filepath.Base(src) == "authd-http.conf" {
			old := "server 127.0.0.1:9091;"
			if !strings.Contains(string(b), old) {
				return fmt.Errorf("%s: %q not found; update the suite's rendering", src, old)
			}
			b = []byte(strings.ReplaceAll(string(b), old, fmt.Sprintf("server 127.0.0.1:%d;", s.authdPort)))
		}
		if filepath.Base(src) == "authd-server.conf" {
			// The unavailable page where the Debian package puts it → this stack's copy.
			if !strings.Contains(string(b), shippedHTMLDir) {
				return fmt.Errorf("%s: %q not found; update the suite's rendering", src, shippedHTMLDir)
			}
			b = []byte(strings.ReplaceAll(string(b), shippedHTMLDir, filepath.Join(ngx, "html")))
		}
		if err := os.WriteFile(filepath.Join(ngx, "authd", filepath.Base(src)), b, 0o644); err != nil {
			return err
		}
	}
	if err := copyDir(filepath.Join(s.root, "nginx", "html"), filepath.Join(ngx, "html")); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(ngx, "site.conf"), []byte(fmt.Sprintf(site, s.echoPort, s.httpsPort, tlsDir)), 0o644); err != nil {
		return err
	}
	main := fmt.Sprintf(`daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[2]s/nginx-error.log info;
events { worker_connections 1024; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    log_format sec '$remote_addr "$request" $status upstream=$upstream_addr';
    access_log %[2]s/nginx-access.log sec;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
    include site.conf;
}
`, ngx, s.logs)
	s.nginxConf = filepath.Join(ngx, "nginx.conf")
	if err := os.WriteFile(s.nginxConf, []byte(main), 0o644); err != nil {
		return err
	}
	if _, err := s.start("nginx", exec.Command(s.nginxBin, "-p", ngx, "-e", filepath.Join(s.logs, "nginx-error.log"), "-c", s.nginxConf)); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.httpsPort), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nginx did not listen on %d: %v", s.httpsPort, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// shippedHTMLDir is where authd-server.conf expects the "sign-in service unavailable" page.
const shippedHTMLDir = "/usr/share/authd/html"

// copyDir copies the regular files of src into dst (created), world-readable for nginx's workers.
func copyDir(src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// appSeen is what the echo app reports about a request that reached it.
type appSeen struct {
	URI     string              `json:"uri"`
	Method  string              `json:"method"`
	Host    string              `json:"host"`
	Headers map[string][]string `json:"headers"`
}

// header returns every value the app received for name, matched case-insensitively.
func (a *appSeen) header(name string) []string {
	var out []string
	for k, v := range a.Headers {
		if strings.EqualFold(k, name) {
			out = append(out, v...)
		}
	}
	return out
}

// startEcho runs the app: it answers every request with what it received, marked with
// X-Echo-App so a test can tell the app's answers from nginx's and authd's; WebSocket handshakes
// get a 101.
func (s *stack) startEcho() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.echoPort = l.Addr().(*net.TCPAddr).Port
	s.echo = &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen := appSeen{URI: r.RequestURI, Method: r.Method, Host: r.Host, Headers: r.Header}
			body, _ := json.Marshal(seen)
			if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
				hj, ok := w.(http.Hijacker)
				if !ok {
					http.Error(w, "no hijack", 500)
					return
				}
				conn, buf, err := hj.Hijack()
				if err != nil {
					return
				}
				defer conn.Close()
				h := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
				fmt.Fprintf(buf, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\nX-Echo-App: 1\r\nX-Echo-Seen: %s\r\n\r\n",
					base64.StdEncoding.EncodeToString(h[:]), base64.StdEncoding.EncodeToString(body))
				buf.Flush()
				return
			}
			w.Header().Set("X-Echo-App", "1")
			w.Header().Set("Content-Type", "application/json")
			w.Write(body)
		}),
	}
	go s.echo.Serve(l)
	return nil
}

// resp is one answer the client saw, with what the app received when the app answered.
type resp struct {
	Status int
	Header http.Header
	Body   string
	App    *appSeen // nil unless the echo app answered
}

func (r *resp) String() string {
	app := "app not reached"
	if r.App != nil {
		app = fmt.Sprintf("app saw %q", r.App.URI)
	}
	return fmt.Sprintf("%d (%s, Location %q)", r.Status, app, r.Header.Get("Location"))
}

func readResp(hr *http.Response) (*resp, error) {
	defer hr.Body.Close()
	b, err := io.ReadAll(io.LimitReader(hr.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	r := &resp{Status: hr.StatusCode, Header: hr.Header, Body: string(b)}
	if seen := hr.Header.Get("X-Echo-Seen"); seen != "" && hr.StatusCode == http.StatusSwitchingProtocols {
		b, _ := base64.StdEncoding.DecodeString(seen)
		r.App = &appSeen{}
		if err := json.Unmarshal(b, r.App); err != nil {
			return nil, fmt.Errorf("echo app handshake: %v", err)
		}
	}
	if hr.Header.Get("X-Echo-App") == "1" && hr.StatusCode == 200 {
		r.App = &appSeen{}
		if err := json.Unmarshal(b, r.App); err != nil {
			return nil, fmt.Errorf("echo app body: %v", err)
		}
	}
	return r, nil
}

// client is an HTTP/1.1 client for the site from the given loopback source address ("" for any).
// It follows no redirects, keeps no cookies and trusts the self-signed certificate.
func (s *stack) client(from string) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	return &http.Client{
		Timeout: 15 * time.Second,
		Transport: &http.Transport{
			DialContext:         d.DialContext,
			TLSClientConfig:     &tls.Config{InsecureSkipVerify: true},
			TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
			MaxIdleConnsPerHost: 4,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// req describes one request through nginx.
type req struct {
	method, target string
	header         http.Header
	cookie         string // the whole Cookie header
	form           url.Values
	from           string // loopback source address
}

func (s *stack) do(t testing.TB, q req) *resp {
	t.Helper()
	r, err := s.try(q)
	if err != nil {
		t.Fatalf("%s %s: %v", q.method, q.target, err)
	}
	return r
}

var clients sync.Map // source address → *http.Client, per stack port

func (s *stack) try(q req) (*resp, error) {
	if q.method == "" {
		q.method = "GET"
	}
	var body io.Reader
	if q.form != nil {
		body = strings.NewReader(q.form.Encode())
	}
	hr, err := http.NewRequest(q.method, s.origin()+q.target, body)
	if err != nil {
		return nil, err
	}
	for k, vs := range q.header {
		hr.Header[k] = vs
	}
	if q.form != nil && hr.Header.Get("Content-Type") == "" {
		hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if q.cookie != "" {
		hr.Header.Set("Cookie", q.cookie)
	}
	key := fmt.Sprintf("%d|%s", s.httpsPort, q.from)
	c, ok := clients.Load(key)
	if !ok {
		c, _ = clients.LoadOrStore(key, s.client(q.from))
	}
	res, err := c.(*http.Client).Do(hr)
	if err != nil {
		return nil, err
	}
	return readResp(res)
}

// raw sends request bytes exactly as written over a fresh TLS connection from the given source
// address and reads one response. Go's client would normalise what these tests need to send.
func (s *stack) raw(t testing.TB, from, request string) *resp {
	t.Helper()
	r, err := s.tryRaw(from, request)
	if err != nil {
		t.Fatalf("raw request %q: %v", request, err)
	}
	return r
}

func (s *stack) tryRaw(from, request string) (*resp, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	conn, err := tls.DialWithDialer(d, "tcp", fmt.Sprintf("127.0.0.1:%d", s.httpsPort), &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		return nil, err
	}
	hr, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, err
	}
	return readResp(hr)
}

// rawGet builds a GET request for target with the given extra header lines (each without CRLF).
func (s *stack) rawGet(target string, lines ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: localhost:%d\r\n", target, s.httpsPort)
	for _, l := range lines {
		b.WriteString(l + "\r\n")
	}
	b.WriteString("Connection: close\r\n\r\n")
	return b.String()
}

var (
	csrfRE = regexp.MustCompile(`name="csrf" value="([^"]*)"`)
	rdRE   = regexp.MustCompile(`name="rd" value="([^"]*)"`)
)

// loginForm fetches the login form: the pre-session cookie and the CSRF token bound to it.
func (s *stack) loginForm(t testing.TB, query string) (pre, csrf string, r *resp) {
	t.Helper()
	r = s.do(t, req{target: "/authd/login" + query})
	if r.Status != 200 {
		t.Fatalf("GET /authd/login%s: got %s, want 200", query, r)
	}
	pre = setCookie(r.Header, preName)
	m := csrfRE.FindStringSubmatch(r.Body)
	if pre == "" || m == nil {
		t.Fatalf("login form without pre-session cookie or CSRF token:\n%s", r.Body)
	}
	return pre, html.UnescapeString(m[1]), r
}

// setCookie returns the value the response sets for the cookie name, "" if none.
func setCookie(h http.Header, name string) string {
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// postLogin submits the login form and returns the response.
func (s *stack) postLogin(t testing.TB, user, password, rd, from string) *resp {
	t.Helper()
	pre, csrf, _ := s.loginForm(t, "")
	form := url.Values{"username": {user}, "password": {password}, "csrf": {csrf}}
	if rd != "" {
		form.Set("rd", rd)
	}
	return s.do(t, req{method: "POST", target: "/authd/login", form: form, from: from,
		cookie: preName + "=" + pre, header: http.Header{"Origin": {s.origin()}}})
}

// login signs in and returns the session cookie's value.
func (s *stack) login(t testing.TB, user, password string) string {
	t.Helper()
	r := s.postLogin(t, user, password, "", "")
	v := setCookie(r.Header, cookieName)
	if r.Status != http.StatusSeeOther || v == "" {
		t.Fatalf("login as %s: got %s and no session cookie, want 303 with one\n%s", user, r, r.Body)
	}
	return v
}

// session is the Cookie header for a session value.
func session(v string) string { return cookieName + "=" + v }

// verifyDirect asks authd's /verify directly (not through nginx) from the given source address,
// writing the request by hand so that header values Go's client refuses can be sent.
func (s *stack) verifyDirect(t testing.TB, from string, h http.Header) int {
	t.Helper()
	d := &net.Dialer{Timeout: 2 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	conn, err := d.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", s.authdPort))
	if err != nil {
		t.Fatalf("direct verify: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	b.WriteString("GET /verify HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n")
	for k, vs := range h {
		for _, v := range vs {
			b.WriteString(k + ": " + v + "\r\n")
		}
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatalf("direct verify: %v", err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("direct verify: %v", err)
	}
	res.Body.Close()
	return res.StatusCode
}

// authdLog returns everything authd wrote so far.
func (s *stack) authdLog(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.logs, "authd.log"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// rawConn sends raw requests over one kept-alive TLS connection, reconnecting when nginx closes it.
type rawConn struct {
	s      *stack
	from   string
	direct bool // plain TCP to authd's own listener instead of TLS to nginx
	conn   net.Conn
	br     *bufio.Reader
}

func (c *rawConn) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// do sends one request (which must not ask for Connection: close) and reads its response.
func (c *rawConn) do(request string) (*resp, error) {
	for attempt := 0; ; attempt++ {
		if c.conn == nil {
			d := &net.Dialer{Timeout: 5 * time.Second}
			if c.from != "" {
				d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(c.from)}
			}
			var conn net.Conn
			var err error
			if c.direct {
				conn, err = d.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", c.s.authdPort))
			} else {
				conn, err = tls.DialWithDialer(d, "tcp", fmt.Sprintf("127.0.0.1:%d", c.s.httpsPort), &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
			}
			if err != nil {
				return nil, err
			}
			c.conn, c.br = conn, bufio.NewReader(conn)
		}
		c.conn.SetDeadline(time.Now().Add(15 * time.Second))
		_, err := io.WriteString(c.conn, request)
		var hr *http.Response
		for err == nil && (hr == nil || hr.StatusCode == http.StatusContinue) {
			hr, err = http.ReadResponse(c.br, nil)
		}
		if err != nil {
			c.close()
			if attempt == 0 {
				continue // the server may have closed an idle connection
			}
			return nil, err
		}
		r, err := readResp(hr)
		if err != nil || hr.Close {
			c.close()
		}
		return r, err
	}
}

// keepAliveGet builds a GET for target that keeps the connection open.
func (s *stack) keepAliveGet(target string, lines ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: localhost:%d\r\n", target, s.httpsPort)
	for _, l := range lines {
		b.WriteString(l + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// rawDirect sends a GET /verify straight to authd from loopback and returns the whole response.
func (s *stack) rawDirect(t testing.TB, h http.Header) *resp {
	t.Helper()
	hr, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/verify", s.authdPort), nil)
	for k, v := range h {
		hr.Header[k] = v
	}
	res, err := (&http.Client{Timeout: 5 * time.Second}).Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	r, err := readResp(res)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// runAuthd runs the authd binary with args and returns its combined output.
func runAuthd(bin string, args ...string) (string, error) {
	out, err := exec.Command(bin, args...).CombinedOutput()
	return string(out), err
}

// cliOut runs one authd command and returns its standard output only.
func (s *stack) cliOut(t testing.TB, stdin string, words ...string) string {
	t.Helper()
	args := append([]string{}, words[:cliWords(words)]...)
	args = append(args, "-config", s.conf)
	args = append(args, words[cliWords(words):]...)
	cmd := exec.Command(s.bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("authd %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}
