package snippets

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/authd/authd/authd/internal/config"
)

// shipped is the source tree's nginx directory.
const shipped = "../../../nginx"

// examples are whole sites, not snippets: they name hosts and certificates
// that no authd setting knows.
var examples = []string{"example-site.conf", "lb-example.conf"}

// TestShippedSnippetsAreTheDefaults renders for the shipped config
// (conf/authd.toml, which keeps the defaults) and for config.Default and
// compares each snippet byte for byte with nginx/: an edit to one and not the
// other fails here.
func TestShippedSnippetsAreTheDefaults(t *testing.T) {
	f, err := os.Open("../../../conf/authd.toml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// The annotated config may fail validation for reasons of its own (an
	// example secret); only listen and prefix matter here.
	conf, _ := config.Parse(f)
	def := config.Default()
	if conf.Listen != def.Listen || conf.Prefix != def.Prefix {
		t.Fatalf("conf/authd.toml listen %q prefix %q, want the defaults %q %q", conf.Listen, conf.Prefix, def.Listen, def.Prefix)
	}
	p, err := For(def.Listen, def.Prefix, "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Render(p)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(shipped)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".conf") && !slices.Contains(examples, e.Name()) {
			files = append(files, e.Name())
		}
	}
	if !slices.Equal(files, Names()) {
		t.Errorf("nginx/ snippets %v, templates %v: every shipped snippet needs a template and back", files, Names())
	}
	for _, n := range files {
		want, err := os.ReadFile(filepath.Join(shipped, n))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[n], want) {
			t.Errorf("%s: rendered for the default config differs from nginx/%s at line %d:\n got: %s\nwant: %s",
				n, n, firstDiff(got[n], want)+1, line(got[n], firstDiff(got[n], want)), line(want, firstDiff(got[n], want)))
		}
	}
}

func firstDiff(a, b []byte) int {
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return i
		}
	}
	return min(len(al), len(bl))
}

func line(b []byte, i int) string {
	ls := strings.Split(string(b), "\n")
	if i < len(ls) {
		return ls[i]
	}
	return "(end of file)"
}

func TestRenderElsewhere(t *testing.T) {
	tests := []struct {
		name, listen, prefix, instance string
		want                           map[string][]string // file → lines it must hold
		absent                         []string            // in no file
	}{
		{"unix socket, /auth/", "unix:/run/authd/authd.sock", "/auth/", "", map[string][]string{
			"authd-http.conf":     {"    server unix:/run/authd/authd.sock;\n", `    ""      /auth/login;`},
			"authd-server.conf":   {"location ^~ /auth/ {\n", "location = /_authd/verify {\n"},
			"streamlit-page.conf": {`var u="/auth/whoami"`},
		}, []string{"/authd/login", "^~ /authd/", "/authd/whoami", "127.0.0.1:9091"}},
		{"second instance on 9191", "127.0.0.1:9191", "/authd2/", "authd2", map[string][]string{
			"authd-http.conf":       {"upstream authd2 {\n", "    server 127.0.0.1:9191;\n", "map $authd2_login $authd2_login_url {\n"},
			"authd-http-lb.conf":    {"    server 10.0.0.11:9191 max_fails=1 fail_timeout=5s;\n"},
			"authd-server.conf":     {"location = /_authd2/verify {\n", "    proxy_pass http://authd2/verify;\n", "location @authd2_401 {\n"},
			"authd-protect.conf":    {"auth_request /_authd2/verify;\n", "include authd2/authd-proxy-headers.conf;\n", "proxy_set_header Remote-User                     $authd2_user;\n"},
			"streamlit-stream.conf": {"include authd2/authd-protect.conf;\n", "$authd2_connection_upgrade;\n"},
		}, []string{"$authd_", "/_authd/", "@authd_", "include authd/", "http://authd;", "http://authd/", "upstream authd ", ":9091"}},
		{"every address", "0.0.0.0:9092", "/authd/", "", map[string][]string{
			"authd-http.conf": {"    server 127.0.0.1:9092;\n"},
		}, nil},
		{"every v6 address", "[::]:9092", "/authd/", "", map[string][]string{
			"authd-http.conf": {"    server [::1]:9092;\n"},
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := For(tt.listen, tt.prefix, tt.instance)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Render(p)
			if err != nil {
				t.Fatal(err)
			}
			for f, lines := range tt.want {
				for _, l := range lines {
					if !strings.Contains(string(got[f]), l) {
						t.Errorf("%s lacks %q", f, l)
					}
				}
			}
			for f, b := range got {
				for _, a := range tt.absent {
					if strings.Contains(string(b), a) {
						t.Errorf("%s holds %q", f, a)
					}
				}
			}
		})
	}
}

func TestForRefuses(t *testing.T) {
	tests := []struct{ name, listen, prefix, instance string }{
		{"name with a dash", "127.0.0.1:9091", "/authd/", "authd-2"},
		{"upper-case name", "127.0.0.1:9091", "/authd/", "Authd"},
		{"prefix without trailing slash", "127.0.0.1:9091", "/authd", ""},
		{"prefix with dot segment", "127.0.0.1:9091", "/a/../b/", ""},
		{"prefix with a quote", "127.0.0.1:9091", `/a"b/`, ""},
		{"prefix with a space", "127.0.0.1:9091", "/a b/", ""},
		{"root prefix", "127.0.0.1:9091", "/", ""},
		{"relative socket", "unix:run/authd.sock", "/authd/", ""},
		{"socket with a semicolon", "unix:/run/a;b.sock", "/authd/", ""},
		{"no port", "127.0.0.1", "/authd/", ""},
		{"line break in the socket path", "unix:/run/authd\nunderscores_in_headers/a.sock", "/authd/", ""},
		{"line break in the host", "127.0.0.1\nunderscores_in_headers:9091", "/authd/", ""},
		{"carriage return in the host", "localhost\r:9091", "/authd/", ""},
		{"control byte in the socket path", "unix:/run/a\x00.sock", "/authd/", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := For(tt.listen, tt.prefix, tt.instance); err == nil {
				t.Errorf("For(%q, %q, %q) = nil error, want a refusal", tt.listen, tt.prefix, tt.instance)
			}
		})
	}
}
