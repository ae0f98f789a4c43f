package doctor

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestTokenize(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // name|arg|arg@line, one per directive in order (blocks flattened)
	}{
		{"simple", "a b c;\nd;", []string{"a|b|c@1", "d@2"}},
		{"quotes", `add_header X "a b; {c}" always;`, []string{"add_header|X|a b; {c}|always@1"}},
		{"single quotes and escapes", `sub_filter '</head>' "x\"y";`, []string{`sub_filter|</head>|x"y@1`}},
		{"comment", "a 1; # b 2;\n# c;\nd 3;", []string{"a|1@1", "d|3@3"}},
		{"hash inside a word", "a b#c;", []string{"a|b#c@1"}},
		{"variable braces", "set $x ${host}z;", []string{"set|$x|${host}z@1"}},
		{"empty string", `proxy_set_header Remote-User "";`, []string{"proxy_set_header|Remote-User|@1"}},
		{"blocks", "http {\n server {\n  location / { if ($a) { return 1; } }\n }\n}", []string{"http@1", "server@2", "location|/@3", "if|($a)@3", "return|1@3"}},
		{"regex with backslash", `location ~ \.php$ { }`, []string{`location|~|\.php$@1`}},
		{"multiline quoted", "a \"x\ny\";\nb;", []string{"a|x\ny@1", "b@3"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ds, err := parse(tc.src, "f")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			var walk func([]*Directive)
			walk = func(ds []*Directive) {
				for _, d := range ds {
					got = append(got, strings.Join(append([]string{d.Name}, d.Args...), "|")+"@"+strconv.Itoa(d.Line))
					walk(d.Block)
				}
			}
			walk(ds)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"unterminated block", "http {\n a;\n", "unexpected end of file"},
		{"stray brace", "a;\n}\n", `f:2: unexpected "}"`},
		{"no semicolon", "a b", "unexpected end of file"},
		{"unterminated quote", "a \"b;\n", "f:1: unterminated quoted string"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(tc.src, "f")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// A dump as `nginx -T` prints it: each file after its marker, includes
// resolved against the printed files (a glob too), lines counted per file.
const dump = `# configuration file /etc/nginx/nginx.conf:
events {}
http {
    include /etc/nginx/conf.d/*.conf;
    include snippets/x.conf;
}

# configuration file /etc/nginx/conf.d/b.conf:
server { listen 81; }

# configuration file /etc/nginx/conf.d/a.conf:

server {
    listen 80;
}

# configuration file /etc/nginx/snippets/x.conf:
underscores_in_headers on;
`

func TestParseDump(t *testing.T) {
	c, err := ParseDump(strings.NewReader("nginx: the configuration file /etc/nginx/nginx.conf syntax is ok\n" + dump))
	if err != nil {
		t.Fatal(err)
	}
	if c.Main != "/etc/nginx/nginx.conf" {
		t.Errorf("main %q", c.Main)
	}
	http := c.Top[1]
	var got []string
	for _, d := range http.Block {
		got = append(got, d.Name+" "+d.Pos())
	}
	want := []string{"server /etc/nginx/conf.d/a.conf:2", "server /etc/nginx/conf.d/b.conf:1", "underscores_in_headers /etc/nginx/snippets/x.conf:1"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	// No server asks authd: that is a finding too, at the main file.
	var got2 []string
	for _, f := range Check(c, defaults) {
		got2 = append(got2, f.Check+" "+f.File+":"+strconv.Itoa(f.Line))
	}
	want2 := []string{"no-auth-request /etc/nginx/nginx.conf:1", "underscores-in-headers /etc/nginx/snippets/x.conf:1"}
	if !reflect.DeepEqual(got2, want2) {
		t.Errorf("got %v, want %v", got2, want2)
	}
}

func TestParseDumpErrors(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"not a dump", "hello\n", "is this the output of nginx -T"},
		{"missing include", "# configuration file /n.conf:\ninclude /x.conf;\n", "/x.conf: not in the nginx -T output"},
		{"syntax", "# configuration file /n.conf:\nhttp {\n", "unexpected end of file"},
		{"cycle", "# configuration file /n.conf:\ninclude /n.conf;\n", "a cycle"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseDump(strings.NewReader(tc.src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestParseFileMissingInclude(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "site.conf")
	if err := os.WriteFile(p, []byte("include nothere.conf;\ninclude none-*.conf;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ParseFile(p, "")
	if err == nil || !strings.Contains(err.Error(), "site.conf:1: include") {
		t.Errorf("got %v, want the include's file:line", err)
	}
}

// TestParseFileFindsConfDir: a sites-enabled file resolves its relative
// includes against the directory holding nginx.conf, as nginx does.
func TestParseFileFindsConfDir(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{
		"nginx.conf":                "http { include sites-enabled/*.conf; }\n",
		"snippets/x.conf":           "underscores_in_headers on;\n",
		"sites-enabled/a.conf":      "server {\n include snippets/x.conf;\n}\n",
		"sites-enabled/nested/b.ok": "",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c, err := ParseFile(filepath.Join(dir, "sites-enabled", "a.conf"), "")
	if err != nil {
		t.Fatal(err)
	}
	var in []string
	for _, f := range Check(c, defaults) {
		if f.Check == "underscores-in-headers" {
			in = append(in, f.File)
		}
	}
	if len(in) != 1 || in[0] != filepath.Join(dir, "snippets", "x.conf") {
		t.Errorf("underscores_in_headers found in %v, want snippets/x.conf", in)
	}
}
