package security

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/authd/authd/tests/internal/authdtest"
)

// doctor runs `authd doctor` with args and returns its stdout, stderr and exit status.
func doctor(t testing.TB, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"doctor"}, args...)...)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("authd doctor: %v", err)
	}
	return o.String(), e.String(), code
}

// TestDoctorLiveStack: the suite's own nginx (the shipped snippets, the way an operator drops them
// in) read through a real `nginx -T` has no finding: exit 0.
func TestDoctorLiveStack(t *testing.T) {
	s := sharedStack(t)
	out, errOut, code := doctor(t, s.bin, "-config", s.conf, "-nginx", s.nginxBin, "-nginx-conf", s.nginxConf)
	if code != 0 || !strings.Contains(out, "no findings") {
		t.Fatalf("exit %d, want 0 and \"no findings\"\n%s%s", code, out, errOut)
	}
	out, errOut, code = doctor(t, s.bin, "-config", s.conf, "-nginx", s.nginxBin, "-nginx-conf", s.nginxConf, "-json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("-json: exit %d, output %q, want 0 and []\n%s", code, out, errOut)
	}
}

// brokenSite has three classic mistakes next to correct locations, each of which a real nginx
// serves the way doctor says: a hand-written verify location that does not set X-Forwarded-For
// (the client's own copy reaches authd, which takes the client address from it), a nested location whose own
// proxy_set_header drops every identity header the protect snippet set (the client's Remote-User
// reaches the app), and a return inside a protected location (answered before auth_request runs).
const brokenSite = `include authd/authd-http.conf;

upstream echo_app {
    server 127.0.0.1:%[1]d;
}

server {
    listen 127.0.0.1:%[2]d ssl;
    server_name localhost;
    ssl_certificate     %[3]s/cert.pem;
    ssl_certificate_key %[3]s/key.pem;

    location = /_authd/verify {
        internal;
        proxy_pass http://authd/verify;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_set_header Host $host;
        proxy_set_header X-Original-URI $request_uri;
        proxy_set_header X-Original-Method $request_method;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-Host $host;
    }
    location ^~ /authd/ {
        proxy_pass http://authd;
        include authd/authd-proxy-headers.conf;
        include authd/authd-identity-clear.conf;
    }
    location @authd_401 {
        return 401;
    }

    location / {
        proxy_pass http://echo_app;
        include authd/authd-protect.conf;
    }
    location /app/ {
        proxy_pass http://echo_app;
        include authd/authd-protect.conf;
        location /app/api/ {
            proxy_pass http://echo_app;
            proxy_set_header X-Api-Version 2;
        }
    }
    location /admin/report {
        include authd/authd-protect.conf;
        default_type text/plain;
        return 200 "quarterly numbers\n";
    }
}
`

// TestDoctorBrokenSite runs real nginx with brokenSite in front of the shared stack's authd and
// app, shows each mistake through it (a forged X-Forwarded-For opens the office-only path, a
// forged Remote-User and an accepted API token reach the app, a protected page answers without a
// login), and expects `authd doctor` (real nginx -T) to name each at its line in site.conf with
// exit status 1, and nothing else; an unloadable config is exit 2.
func TestDoctorBrokenSite(t *testing.T) {
	s := sharedStack(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The stack's rendered snippets: the authd upstream already points at its authd.
	if err := os.Symlink(filepath.Join(s.dir, "nginx", "authd"), filepath.Join(dir, "authd")); err != nil {
		t.Fatal(err)
	}
	if err := authdtest.WriteCert(dir); err != nil {
		t.Fatal(err)
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("site.conf", fmt.Sprintf(brokenSite, s.echoPort, port, dir))
	write("nginx.conf", fmt.Sprintf(`daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include site.conf;
}
`, dir))
	conf := filepath.Join(dir, "nginx.conf")
	site := filepath.Join(dir, "site.conf")

	// What a user sees through this nginx.
	ngx := exec.Command(s.nginxBin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", conf)
	ngx.Stdout, ngx.Stderr = os.Stderr, os.Stderr
	if err := ngx.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = ngx.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = ngx.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = ngx.Process.Kill()
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not listen on %d: %v\n%s", port, err, tail(filepath.Join(dir, "error.log"), 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
	broken := &stack{httpsPort: port}
	ada := session(s.login(t, "ada", adaPassword))
	if r := broken.do(t, req{target: "/app/x", header: http.Header{"Remote-User": {spoof}}, cookie: ada}); r.App == nil || strings.Join(r.App.header("Remote-User"), ",") != "ada" {
		t.Fatalf("control: /app/x as ada got %s, app saw Remote-User %v, want ada", r, appHeader(r, "Remote-User"))
	}
	r := broken.do(t, req{target: "/app/api/x", header: http.Header{"Remote-User": {spoof}}, cookie: ada})
	if r.App == nil || strings.Join(r.App.header("Remote-User"), ",") != spoof {
		t.Fatalf("/app/api/x as ada with a forged Remote-User: got %s, app saw %v; the broken site should pass the forgery (else this test shows nothing)", r, appHeader(r, "Remote-User"))
	}
	// The nested location's own proxy_set_header also drops the protect snippet's Authorization
	// line: an API token authd accepted reaches the app.
	token := strings.TrimSpace(s.cliOut(t, "", "token", "create", "-user", "ada", "-name", "doctor"))
	t.Cleanup(func() { s.cliOut(t, "", "token", "revoke", token) })
	waitFor(t, "the token through the broken site", func() bool {
		r := broken.do(t, req{target: "/app/api/x", header: http.Header{"Authorization": {"Bearer " + token}}})
		return r.App != nil && strings.Contains(strings.Join(r.App.header("Authorization"), ","), token)
	})
	if r := broken.do(t, req{target: "/admin/report"}); r.Status != 200 || !strings.Contains(r.Body, "quarterly") {
		t.Fatalf("/admin/report without a login: got %s %q; the broken site should answer it", r, r.Body)
	}
	// /office is open without a login to the office network, 127.0.0.5 (baseRules).
	if r := broken.do(t, req{target: "/office/x"}); r.Status != 401 {
		t.Fatalf("control: /office/x without a login from 127.0.0.1 got %s, want 401", r)
	}
	if r := broken.do(t, req{target: "/office/x", header: http.Header{"X-Forwarded-For": {"127.0.0.5"}}}); r.App == nil {
		t.Fatalf("/office/x from 127.0.0.1 claiming X-Forwarded-For: 127.0.0.5: got %s; the broken site should let it through", r)
	}

	// What doctor says about it, from a real nginx -T.
	out, errOut, code := doctor(t, s.bin, "-config", s.conf, "-nginx", s.nginxBin, "-nginx-conf", conf)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
	}
	text := fmt.Sprintf(brokenSite, s.echoPort, port, dir)
	verifyLine := lineOf(t, text, "location = /_authd/verify {")
	apiLine := lineOf(t, text, "location /app/api/ {")
	returnLine := lineOf(t, text, `return 200 "quarterly numbers\n";`)
	for _, want := range []string{
		fmt.Sprintf("%s:%d: location = /_authd/verify does not set X-Forwarded-For", site, verifyLine),
		fmt.Sprintf("%s:%d: location /app/api/ passes a client's Remote-User", site, apiLine),
		fmt.Sprintf("%s:%d: location /app/api/ passes the client's Authorization header to the app unchanged", site, apiLine),
		fmt.Sprintf("%s:%d: return in location /admin/report runs in nginx's rewrite phase, before auth_request", site, returnLine),
		"4 finding(s) in 1 file(s)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, _, code = doctor(t, s.bin, "-config", s.conf, "-nginx", s.nginxBin, "-nginx-conf", conf, "-json")
	var found []struct {
		File, Check, Message, Fix string
		Line                      int
	}
	if err := json.Unmarshal([]byte(out), &found); err != nil || code != 1 {
		t.Fatalf("-json: exit %d, %v:\n%s", code, err, out)
	}
	var got []string
	for _, f := range found {
		got = append(got, fmt.Sprintf("%s:%d %s", f.File, f.Line, f.Check))
	}
	want := []string{
		fmt.Sprintf("%s:%d verify-client-ip", site, verifyLine),
		fmt.Sprintf("%s:%d credentials-to-app", site, apiLine),
		fmt.Sprintf("%s:%d identity-not-cleared", site, apiLine),
		fmt.Sprintf("%s:%d return-before-auth", site, returnLine),
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("-json: got %v, want %v", got, want)
	}

	// nginx -T refuses a config it cannot load: doctor cannot read it (2), which is not "clean".
	write("bad.conf", "events {}\nhttp { server { location / { } }\n")
	out, errOut, code = doctor(t, s.bin, "-config", s.conf, "-nginx", s.nginxBin, "-nginx-conf", filepath.Join(dir, "bad.conf"))
	if code != 2 || !strings.Contains(errOut, "cannot read") {
		t.Errorf("unloadable nginx config: exit %d, want 2 and \"cannot read\"\n%s%s", code, out, errOut)
	}
}

// lineOf is the 1-based line of the first line of text containing substr.
func lineOf(t testing.TB, text, substr string) int {
	t.Helper()
	for i, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			return i + 1
		}
	}
	t.Fatalf("%q not in the site", substr)
	return 0
}

func appHeader(r *resp, name string) []string {
	if r.App == nil {
		return nil
	}
	return r.App.header(name)
}

// TestDoctorCorpusRealNginx loads every broken config of doctor's unit corpus
// (authd/internal/doctor/testdata/broken) into a real nginx: each must pass `nginx -t` (the corpus
// is configuration nginx accepts, not made-up syntax), and `authd doctor -json` over the real
// `nginx -T` must report exactly the findings the file's "# want:" lines list, at the same lines.
func TestDoctorCorpusRealNginx(t *testing.T) {
	requireE2E(t)
	root := authdtest.Root()
	nginxBin, err := lookTool("NGINX", "nginx", "/usr/sbin/nginx")
	if err != nil {
		t.Fatal(err)
	}
	bin := os.Getenv("AUTHD_BIN")
	files, err := filepath.Glob(filepath.Join(root, "authd", "internal", "doctor", "testdata", "broken", "*.conf"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	dir := t.TempDir()
	if err := os.Symlink(filepath.Join(root, "nginx"), filepath.Join(dir, "authd")); err != nil {
		t.Fatal(err)
	}
	if err := authdtest.WriteCert(dir); err != nil {
		t.Fatal(err)
	}
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			head, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			listen, prefix := "127.0.0.1:9091", "/authd/"
			var want []string
			for _, l := range strings.Split(string(head), "\n") {
				if !strings.HasPrefix(l, "# ") {
					break
				}
				k, v, _ := strings.Cut(strings.TrimPrefix(l, "# "), ": ")
				switch f := strings.Fields(v); k {
				case "want":
					file := name
					if len(f) > 2 {
						file = f[2]
					}
					want = append(want, f[0]+" "+file+":"+f[1])
				case "listen":
					listen = v
				case "prefix":
					prefix = v
				}
			}
			cfg := filepath.Join(dir, name+".toml")
			toml := fmt.Sprintf("listen = %q\nprefix = %q\npublic_url = \"https://app.example.com\"\ndata_dir = %q\nusers_file = %q\n",
				listen, prefix, filepath.Join(dir, "data"), filepath.Join(dir, "users.toml"))
			if err := os.WriteFile(cfg, []byte(toml), 0o600); err != nil {
				t.Fatal(err)
			}
			conf := filepath.Join(dir, name+".nginx.conf")
			main := fmt.Sprintf("events {}\nhttp {\n    ssl_certificate %[1]s/cert.pem;\n    ssl_certificate_key %[1]s/key.pem;\n    proxy_temp_path %[1]s/tmp;\n    include %[2]s;\n}\n", dir, path)
			if err := os.WriteFile(conf, []byte(main), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(nginxBin, "-t", "-q", "-p", dir, "-c", conf).CombinedOutput(); err != nil {
				t.Fatalf("nginx -t refuses the corpus file: %v\n%s", err, out)
			}
			out, errOut, code := doctor(t, bin, "-config", cfg, "-nginx", nginxBin, "-nginx-conf", conf, "-json")
			var found []struct {
				File, Check string
				Line        int
			}
			if err := json.Unmarshal([]byte(out), &found); err != nil || code != 1 {
				t.Fatalf("exit %d, %v, want 1 and JSON:\n%s%s", code, err, out, errOut)
			}
			var got []string
			for _, f := range found {
				got = append(got, fmt.Sprintf("%s %s:%d", f.Check, filepath.Base(f.File), f.Line))
			}
			if !sameFindings(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
}

// sameFindings compares "check file:line" lists in any order; a want line "*" matches any line.
func sameFindings(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	used := make([]bool, len(got))
	for _, w := range want {
		ok := false
		for i, g := range got {
			if !used[i] && (g == w || (strings.HasSuffix(w, ":*") && strings.HasPrefix(g, strings.TrimSuffix(w, "*")))) {
				used[i], ok = true, true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}
