package security

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/authd/authd/tests/internal/authdtest"
)

// snippetInstance is one authd whose nginx snippets come from `authd nginx`.
type snippetInstance struct {
	name, listen, prefix, cookie string
	// dir is where its snippets go under nginx's prefix; "" means name (what they include).
	dir  string
	conf string
}

func (in *snippetInstance) includeDir() string {
	if in.dir != "" {
		return in.dir
	}
	return in.name
}

// generate writes instance's config and renders its snippets into dir/<includeDir>.
func (in *snippetInstance) generate(t *testing.T, bin, dir, origin string) {
	t.Helper()
	base := filepath.Join(dir, in.includeDir()+"-state")
	must(t, os.MkdirAll(base, 0o755))
	in.conf = filepath.Join(base, "authd.toml")
	conf := fmt.Sprintf(`listen = %q
socket_mode = "0666"
prefix = %q
public_url = %q
data_dir = %q
users_file = %q
[cookie]
name = %q
[[rules]]
path = "/"
`, in.listen, in.prefix, origin, filepath.Join(base, "data"), filepath.Join(base, "users.toml"), in.cookie)
	must(t, os.WriteFile(in.conf, []byte(conf), 0o600))
	must(t, os.WriteFile(filepath.Join(base, "users.toml"), nil, 0o600))
	if out, err := exec.Command(bin, "nginx", "-config", in.conf, "-name", in.name, "-out", filepath.Join(dir, in.includeDir())).CombinedOutput(); err != nil {
		t.Fatalf("authd nginx for %s: %v\n%s", in.name, err, out)
	}
}

// snippetSite is an nginx config with the generated snippets of every
// instance in one server: instance i protects /app<i>/.
func snippetSite(dir, logs string, port int, tlsDir string, ins []*snippetInstance) string {
	var http, locs strings.Builder
	for i, in := range ins {
		fmt.Fprintf(&http, "    include %s/authd-http.conf;\n", in.includeDir())
		fmt.Fprintf(&locs, "        include %s/authd-server.conf;\n", in.includeDir())
		fmt.Fprintf(&locs, "        location /app%d/x/ { proxy_pass http://127.0.0.1:1; include %s/authd-protect.conf; }\n", i, in.includeDir())
	}
	return fmt.Sprintf(`daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[2]s/nginx-error.log info;
events { worker_connections 64; }
http {
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
    access_log %[2]s/nginx-access.log;
%[3]s
    server {
        listen 127.0.0.1:%[4]d ssl;
        server_name localhost;
        ssl_certificate     %[5]s/cert.pem;
        ssl_certificate_key %[5]s/key.pem;
%[6]s    }
}
`, dir, logs, http.String(), port, tlsDir, locs.String())
}

func nginxTest(t *testing.T, nginx, dir, conf string) (string, error) {
	t.Helper()
	out, err := exec.Command(nginx, "-t", "-p", dir, "-e", filepath.Join(dir, "logs", "nginx-error.log"), "-c", conf).CombinedOutput()
	return string(out), err
}

// TestGeneratedSnippetsPassNginxT covers "authd nginx writes the snippets for this config, so a
// second instance, another port or another prefix needs no hand edits": snippets for an authd on
// a unix socket with prefix /auth/ and for a second instance on port 9191 with prefix /authd2/,
// included side by side in one nginx, pass `nginx -t`; the second rendered without its own name
// collides with the first and does not.
func TestGeneratedSnippetsPassNginxT(t *testing.T) {
	requireE2E(t)
	bin := os.Getenv("AUTHD_BIN")
	nginx, err := lookTool("NGINX", "nginx", "/usr/sbin/nginx")
	must(t, err)
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, "tmp"), 0o777))
	must(t, os.MkdirAll(filepath.Join(dir, "logs"), 0o755))
	tlsDir := filepath.Join(dir, "tls")
	must(t, authdtest.WriteCert(tlsDir))
	origin := "https://localhost:8443"
	a := &snippetInstance{name: "authd", listen: "unix:" + filepath.Join(dir, "authd.sock"), prefix: "/auth/", cookie: "authd_session"}
	b := &snippetInstance{name: "authd2", listen: "127.0.0.1:9191", prefix: "/authd2/", cookie: "authd2_session"}
	a.generate(t, bin, dir, origin)
	b.generate(t, bin, dir, origin)
	for _, want := range []string{"server unix:" + filepath.Join(dir, "authd.sock") + ";", `""      /auth/login;`} {
		if got, _ := os.ReadFile(filepath.Join(dir, "authd", "authd-http.conf")); !strings.Contains(string(got), want) {
			t.Errorf("authd/authd-http.conf lacks %q", want)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "authd2", "authd-http.conf")); !strings.Contains(string(got), "server 127.0.0.1:9191;") {
		t.Error("authd2/authd-http.conf lacks server 127.0.0.1:9191")
	}
	conf := filepath.Join(dir, "nginx.conf")
	must(t, os.WriteFile(conf, []byte(snippetSite(dir, filepath.Join(dir, "logs"), 8443, tlsDir, []*snippetInstance{a, b})), 0o644))
	if out, err := nginxTest(t, nginx, dir, conf); err != nil {
		t.Fatalf("nginx -t with both instances' generated snippets: %v\n%s", err, out)
	}

	// The control: the second instance rendered under the first one's name (in its own
	// directory) cannot share the http block.
	dup := filepath.Join(dir, "dup")
	must(t, os.MkdirAll(filepath.Join(dup, "tmp"), 0o777))
	must(t, os.MkdirAll(filepath.Join(dup, "logs"), 0o755))
	must(t, exec.Command("cp", "-r", filepath.Join(dir, "authd"), filepath.Join(dup, "authd")).Run())
	same := &snippetInstance{name: "authd", dir: "other", listen: "127.0.0.1:9191", prefix: "/authd2/", cookie: "authd2_session"}
	same.generate(t, bin, dup, origin)
	must(t, os.WriteFile(filepath.Join(dup, "nginx.conf"), []byte(snippetSite(dup, filepath.Join(dup, "logs"), 8443, tlsDir, []*snippetInstance{a, same})), 0o644))
	if out, err := nginxTest(t, nginx, dup, filepath.Join(dup, "nginx.conf")); err == nil || !strings.Contains(out, "duplicate") {
		t.Errorf("two instances both named authd: nginx -t %v, want a duplicate error\n%s", err, out)
	}
}

// TestGeneratedSnippetsServe runs two authd instances behind one nginx that uses only generated
// snippets: one on a unix socket with prefix /auth/, one on another port with prefix /authd2/.
// Each sends a page navigation to its own login form, logs in under its own prefix, and a
// session of one does not open the other's locations.
func TestGeneratedSnippetsServe(t *testing.T) {
	requireE2E(t)
	bin := os.Getenv("AUTHD_BIN")
	nginx, err := lookTool("NGINX", "nginx", "/usr/sbin/nginx")
	must(t, err)
	dir, err := os.MkdirTemp("", "authd-snippets-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	must(t, os.Chmod(dir, 0o755)) // nginx workers (nobody) open the socket below it
	must(t, os.MkdirAll(filepath.Join(dir, "tmp"), 0o777))
	must(t, os.Chmod(filepath.Join(dir, "tmp"), 0o777))
	logs := filepath.Join(dir, "logs")
	must(t, os.MkdirAll(logs, 0o755))
	tlsDir := filepath.Join(dir, "tls")
	must(t, authdtest.WriteCert(tlsDir))
	httpsPort, err := freePort()
	must(t, err)
	bPort, err := freePort()
	must(t, err)
	origin := fmt.Sprintf("https://localhost:%d", httpsPort)
	a := &snippetInstance{name: "authd", listen: "unix:" + filepath.Join(dir, "authd.sock"), prefix: "/auth/", cookie: "authd_session"}
	b := &snippetInstance{name: "authd2", listen: fmt.Sprintf("127.0.0.1:%d", bPort), prefix: "/authd2/", cookie: "authd2_session"}
	for _, in := range []*snippetInstance{a, b} {
		in.generate(t, bin, dir, origin)
		cmd := exec.Command(bin, "user", "add", "-config", in.conf, "ada")
		cmd.Stdin = strings.NewReader(adaPassword + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("user add on %s: %v\n%s", in.name, err, out)
		}
		startLogged(t, filepath.Join(logs, in.name+".log"), exec.Command(bin, "serve", "-config", in.conf))
	}
	conf := filepath.Join(dir, "nginx.conf")
	must(t, os.WriteFile(conf, []byte(snippetSite(dir, logs, httpsPort, tlsDir, []*snippetInstance{a, b})), 0o644))
	startLogged(t, filepath.Join(logs, "nginx.log"), exec.Command(nginx, "-p", dir, "-e", filepath.Join(logs, "nginx-error.log"), "-c", conf))

	hc := &http.Client{Timeout: 5 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path, cookie string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", origin+path, nil)
		req.Header.Set("Accept", "text/html")
		req.Header.Set("Sec-Fetch-Mode", "navigate")
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := hc.Do(req)
		must(t, err)
		resp.Body.Close()
		return resp
	}
	// Wait until nginx and both instances answer.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		req, _ := http.NewRequest("GET", origin+"/app1/x/", nil)
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 401 {
				if r2, err := hc.Get(origin + "/app0/x/"); err == nil {
					r2.Body.Close()
					if r2.StatusCode == 401 {
						break
					}
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the site did not come up: %v\n%s\n%s", err, tail(filepath.Join(logs, "nginx-error.log"), 20), tail(filepath.Join(logs, "authd.log"), 20))
		}
	}

	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	login := func(in *snippetInstance) string {
		t.Helper()
		req, _ := http.NewRequest("GET", origin+in.prefix+"login?rd=/", nil)
		resp, err := hc.Do(req)
		must(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := csrf.FindStringSubmatch(string(body))
		if resp.StatusCode != 200 || m == nil || len(resp.Cookies()) == 0 {
			t.Fatalf("%slogin through nginx: got %s, want the form", in.prefix, resp.Status)
		}
		form := url.Values{"username": {"ada"}, "password": {adaPassword}, "rd": {"/"}, "csrf": {m[1]}}
		req, _ = http.NewRequest("POST", origin+in.prefix+"login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", origin)
		req.AddCookie(resp.Cookies()[0])
		resp, err = hc.Do(req)
		must(t, err)
		resp.Body.Close()
		if c := setCookie(resp.Header, "__Host-"+in.cookie); c != "" {
			return "__Host-" + in.cookie + "=" + c
		}
		t.Fatalf("POST %slogin: got %s and no session cookie", in.prefix, resp.Status)
		return ""
	}
	for i, in := range []*snippetInstance{a, b} {
		app := fmt.Sprintf("/app%d/x/", i)
		if r := get(app, ""); r.StatusCode != 302 || !strings.HasPrefix(r.Header.Get("Location"), in.prefix+"login?rd=") {
			t.Errorf("%s without a session: got %d to %q, want 302 to %slogin?rd=…", app, r.StatusCode, r.Header.Get("Location"), in.prefix)
		}
		cookie := login(in)
		// The protected location proxies to a closed port: past authd, nginx answers 502.
		if r := get(app, cookie); r.StatusCode != 502 {
			t.Errorf("%s with %s's session: got %d, want 502 (authd let it through to the dead app)", app, in.name, r.StatusCode)
		}
		other := fmt.Sprintf("/app%d/x/", 1-i)
		if r := get(other, cookie); r.StatusCode != 302 {
			t.Errorf("%s with %s's session: got %d, want 302 (the other instance's login)", other, in.name, r.StatusCode)
		}
	}
}

// startLogged starts cmd in its own process group with output to logPath and stops the group
// when the test ends.
func startLogged(t *testing.T, logPath string, cmd *exec.Cmd) {
	t.Helper()
	f, err := os.Create(logPath)
	must(t, err)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	must(t, cmd.Start())
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		f.Close()
	})
}
