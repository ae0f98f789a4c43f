package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

const (
	benchUser  = "bench"
	cookieName = "authd_session" // cookie.insecure drops the __Host- prefix on plain HTTP
)

// authdInst is one authd under test with its own data directory.
type authdInst struct {
	name    string
	dir     string
	conf    string
	listen  string // as in authd.toml
	upAddr  string // the same for nginx's upstream: "127.0.0.1:P" or "unix:/path"
	health  *http.Client
	baseURL string // direct URL of authd's listener for /healthz
	proc    *proc
	ready   time.Duration // start to /healthz answering
	redis   string        // Redis address for store = "redis"; "" for the embedded store
}

// prepareAuthd writes authd.toml and a users file with one user. unix puts
// authd on a unix socket. publicURL is the nginx site's origin.
func (b *bench) prepareAuthd(name string, unix bool) (*authdInst, error) {
	a := &authdInst{name: name, dir: filepath.Join(b.dir, "authd-"+name)}
	if err := os.MkdirAll(a.dir, 0o755); err != nil {
		return nil, err
	}
	if unix {
		sock := filepath.Join(a.dir, "authd.sock")
		a.listen, a.upAddr = "unix:"+sock, "unix:"+sock
		a.health, a.baseURL = unixClient(sock), "http://authd"
	} else {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		a.listen = "127.0.0.1:" + strconv.Itoa(port)
		a.upAddr = a.listen
		a.health, a.baseURL = &http.Client{Timeout: 5 * time.Second}, "http://"+a.listen
	}
	return a, nil
}

// writeConfig writes the config for a site at publicURL and adds the user.
func (b *bench) writeAuthdConfig(a *authdInst, publicURL string) error {
	a.conf = filepath.Join(a.dir, "authd.toml")
	conf := fmt.Sprintf(`# Written by tests/bench.
listen = %q
socket_mode = "0660"
public_url = %q
data_dir = %q
users_file = %q
%s
[cookie]
insecure = true

[log]
level = "info"
`, a.listen, publicURL, filepath.Join(a.dir, "data"), filepath.Join(a.dir, "users.toml"), storeLine(a))
	if a.redis != "" {
		conf += fmt.Sprintf("\n[redis]\naddrs = [%q]\nkey_prefix = %q\n", a.redis, "bench-"+a.name+":")
	}
	if b.o.hashMax > 0 {
		conf += fmt.Sprintf("\n[hash]\nmax_concurrent = %d\n", b.o.hashMax)
	}
	if err := os.WriteFile(a.conf, []byte(conf), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(a.dir, "users.toml"), nil, 0o600); err != nil {
		return err
	}
	cmd := b.command(b.authdBin, "user", "add", "-config", a.conf, "-groups", "staff,analysts",
		"-email", "bench@example.com", "-name", "Bench User", benchUser)
	cmd.Stdin = strings.NewReader(b.password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("authd user add: %v\n%s", err, out)
	}
	return nil
}

// startAuthd starts authd serve and waits for /healthz.
func (b *bench) startAuthd(a *authdInst) error {
	var err error
	a.proc, err = b.procs.start("authd-"+a.name, filepath.Join(a.dir, "authd.log"), b.cpuBackend,
		b.authdBin, "serve", "-config", a.conf)
	if err != nil {
		return err
	}
	a.ready, err = waitHTTP(a.proc, a.health, a.baseURL+"/healthz", http.StatusOK, 120*time.Second)
	return err
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// loginClient logs in through nginx the way a browser does: GET the form
// (pre-session cookie and CSRF token), then POST it.
type loginClient struct {
	c      *http.Client
	site   string // nginx origin, e.g. http://127.0.0.1:PORT
	origin string // public_url, sent as Origin
}

func newLoginClient(site string, conns int) *loginClient {
	return newLoginClientFrom(site, conns, nil)
}

// newLoginClientFrom is newLoginClient with its connections made from the
// loopback address src (nil: any), so nginx sees that client address.
func newLoginClientFrom(site string, conns int, src net.IP) *loginClient {
	tr := &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	if src != nil {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 5 * time.Second}
		tr.DialContext = d.DialContext
	}
	return &loginClient{site: site, origin: site, c: &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: noRedirect,
		Transport:     tr,
	}}
}

// login returns the POST's status and, on 303, the session cookie's value.
// xff, when set, is sent as X-Forwarded-For: nginx appends its peer, and
// authd takes the rightmost untrusted address, so each flood client can
// appear to come from its own IP.
func (l *loginClient) login(user, password, xff string) (int, string, error) {
	req, _ := http.NewRequest(http.MethodGet, l.site+"/authd/login?rd=%2F", nil)
	req.Header.Set("Accept", "text/html")
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := l.c.Do(req)
	if err != nil {
		return 0, "", err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, "", fmt.Errorf("GET login form: status %d", resp.StatusCode)
	}
	m := csrfRE.FindSubmatch(body)
	if m == nil {
		return 0, "", errors.New("no csrf field in the login form")
	}
	form := url.Values{"csrf": {string(m[1])}, "rd": {"/"}, "username": {user}, "password": {password}}
	req, _ = http.NewRequest(http.MethodPost, l.site+"/authd/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", l.origin)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	for _, c := range resp.Cookies() {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	resp, err = l.c.Do(req)
	if err != nil {
		return 0, "", err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == cookieName && c.Value != "" {
			return resp.StatusCode, c.Value, nil
		}
	}
	return resp.StatusCode, "", nil
}

// randomToken is a cookie-shaped random string (43 characters of base64url).
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func storeLine(a *authdInst) string {
	if a.redis == "" {
		return ""
	}
	return "store = \"redis\"\n"
}
