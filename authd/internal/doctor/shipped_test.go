package doctor

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

func repoFile(t testing.TB, parts ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(append([]string{"..", "..", ".."}, parts...)...))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func write(t testing.TB, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// upRender renders nginx/example-site.conf and supervisor/nginx.conf the way
// supervisor/up.sh does (its sed lines), into dir.
func upRender(t testing.TB, dir string) string {
	t.Helper()
	site := repoFile(t, "nginx", "example-site.conf")
	for _, r := range [][2]string{
		{"listen 80;", "listen 8080;"},
		{"listen [::]:80;", "listen [::]:8080;"},
		{"listen 443 ssl http2;", "listen 8443 ssl http2;"},
		{"listen [::]:443 ssl http2;", "listen [::]:8443 ssl http2;"},
		{"return 301 https://$host$request_uri;", "return 301 https://$host:8443$request_uri;"},
		{"server_name app.example.com;", "server_name localhost;"},
		{"/etc/ssl/authd/", "/etc/authd-demo/tls/"},
	} {
		if !strings.Contains(site, r[0]) {
			t.Fatalf("example-site.conf no longer contains %q: update upRender to follow supervisor/up.sh", r[0])
		}
		site = strings.ReplaceAll(site, r[0], r[1])
	}
	write(t, filepath.Join(dir, "site.conf"), site)
	main := repoFile(t, "supervisor", "nginx.conf")
	// The system's mime.types is not part of the repository; an empty one stands in.
	write(t, filepath.Join(dir, "mime.types"), "types { text/html html; }\n")
	main = strings.ReplaceAll(main, "/etc/nginx/mime.types", filepath.Join(dir, "mime.types"))
	write(t, filepath.Join(dir, "nginx.conf"), main)
	return filepath.Join(dir, "nginx.conf")
}

// TestShippedConfigsClean: every configuration the project ships, with the
// authd config it is documented with, has no finding.
func TestShippedConfigsClean(t *testing.T) {
	dir := snippetDir(t)
	nginxDir, _ := filepath.Abs(filepath.Join("..", "..", "..", "nginx"))
	tests := []struct {
		name string
		file string
		opt  Options
	}{
		{"example-site", filepath.Join(nginxDir, "example-site.conf"), defaults},
		// lb-example: authd on each node listens on its private address.
		{"lb-example", filepath.Join(nginxDir, "lb-example.conf"), Options{Listen: "10.0.0.11:9091", Prefix: "/authd/"}},
		{"supervisor-up", upRender(t, dir), defaults},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseFile(tc.file, dir)
			if err != nil {
				t.Fatal(err)
			}
			if n := countLocations(c); n < 5 {
				t.Fatalf("parsed only %d locations: includes not followed?", n)
			}
			for _, f := range Check(c, tc.opt) {
				t.Errorf("finding in a shipped config: %s", f)
			}
		})
	}
}

func countLocations(c *Config) int {
	n := 0
	var walk func([]*Directive)
	walk = func(ds []*Directive) {
		for _, d := range ds {
			if d.Name == "location" {
				n++
			}
			walk(d.Block)
		}
	}
	walk(c.Top)
	return n
}

// TestShippedWithOtherListen: the same shipped site against an authd that
// listens elsewhere is a finding, not silence.
func TestShippedWithOtherListen(t *testing.T) {
	dir := snippetDir(t)
	nginxDir, _ := filepath.Abs(filepath.Join("..", "..", "..", "nginx"))
	c, err := ParseFile(filepath.Join(nginxDir, "example-site.conf"), dir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		listen string
		want   bool
	}{
		{"127.0.0.1:9091", false},
		{"localhost:9091", false},
		{"0.0.0.0:9091", false},
		{"127.0.0.1:9092", true},
		{"unix:/run/authd/authd.sock", true},
	}
	for _, tc := range tests {
		found := false
		for _, f := range Check(c, Options{Listen: tc.listen, Prefix: "/authd/"}) {
			if f.Check == "verify-address" {
				found = true
			}
		}
		if found != tc.want {
			t.Errorf("listen %s: verify-address finding %v, want %v", tc.listen, found, tc.want)
		}
	}
}

// TestIdentityHeadersMatchSnippet keeps doctor's list of identity headers in
// step with the headers the shipped snippet clears.
func TestIdentityHeadersMatchSnippet(t *testing.T) {
	re := regexp.MustCompile(`(?m)^proxy_set_header\s+(\S+)\s+""`)
	var names []string
	for _, m := range re.FindAllStringSubmatch(repoFile(t, "nginx", "authd-identity-clear.conf"), -1) {
		names = append(names, m[1])
	}
	if strings.Join(names, ",") != strings.Join(identityHeaders, ",") {
		t.Errorf("authd-identity-clear.conf clears %v, doctor checks %v", names, identityHeaders)
	}
}

// TestUnixSocketListen: the snippets' commented unix socket variant matches an
// authd listening on that socket, and only on it.
func TestUnixSocketListen(t *testing.T) {
	dir := snippetDir(t)
	site := filepath.Join(dir, "site.conf")
	write(t, site, `upstream authd { server unix:/run/authd/authd.sock; }
upstream app { server 127.0.0.1:8501; }
server {
    listen 443 ssl;
    include authd/authd-server.conf;
    location / {
        proxy_pass http://app;
        include authd/authd-protect.conf;
    }
    location = /authd/whoami {
        proxy_pass http://authd;
        include authd/authd-proxy-headers.conf;
        include authd/authd-identity-clear.conf;
    }
}
server {
    listen 80;
    return 301 https://$host$request_uri;
}
`)
	c, err := ParseFile(site, dir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		listen string
		want   []string
	}{
		{"unix:/run/authd/authd.sock", nil},
		{"unix:/run/authd/other.sock", []string{"prefix-mismatch", "unprotected-location", "unprotected-location", "verify-address"}},
		{"[::1]:9091", []string{"prefix-mismatch", "unprotected-location", "unprotected-location", "verify-address"}},
	}
	for _, tc := range tests {
		var got []string
		for _, f := range Check(c, Options{Listen: tc.listen, Prefix: "/authd/"}) {
			got = append(got, f.Check)
		}
		sort.Strings(got)
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("listen %s: got %v, want %v", tc.listen, got, tc.want)
		}
	}
}
