package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNginxSnippetsPassDoctor writes snippets with `authd nginx` for configs
// other than the default and checks a site built only from them with `authd
// doctor`: the generated snippets must agree with the config they came from.
func TestNginxSnippetsPassDoctor(t *testing.T) {
	tests := []struct{ name, listen, prefix, instance string }{
		{"unix socket under /auth/", "unix:/run/authd/authd.sock", "/auth/", ""},
		{"second instance on 9191", "127.0.0.1:9191", "/authd2/", "authd2"},
		{"every address", "0.0.0.0:9092", "/sso/", "sso"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			conf := filepath.Join(dir, "authd.toml")
			writeFile(t, conf, fmt.Sprintf("listen = %q\nprefix = %q\npublic_url = \"https://app.example.com\"\ndata_dir = %q\nusers_file = %q\n",
				tt.listen, tt.prefix, filepath.Join(dir, "data"), filepath.Join(dir, "users.toml")))
			writeFile(t, filepath.Join(dir, "users.toml"), "")
			name := tt.instance
			if name == "" {
				name = "authd"
			}
			args := []string{"nginx", "-config", conf, "-out", filepath.Join(dir, name)}
			if tt.instance != "" {
				args = append(args, "-name", tt.instance)
			}
			var out, errb bytes.Buffer
			if code := run(context.Background(), args, nil, &out, &errb); code != 0 {
				t.Fatalf("authd nginx: exit %d: %s", code, errb.String())
			}
			site := filepath.Join(dir, "nginx.conf")
			writeFile(t, site, fmt.Sprintf(`events {}
http {
    include %[1]s/authd-http.conf;
    server {
        listen 443 ssl;
        ssl_certificate /etc/ssl/x.pem;
        ssl_certificate_key /etc/ssl/x.key;
        include %[1]s/authd-server.conf;
        location / { proxy_pass http://127.0.0.1:8501; include %[1]s/streamlit-page.conf; }
        location /_stcore/stream { proxy_pass http://127.0.0.1:8501; include %[1]s/streamlit-stream.conf; }
        location /api/ { proxy_pass http://127.0.0.1:8080; include %[1]s/authd-protect.conf; }
    }
}
`, name))
			out.Reset()
			errb.Reset()
			if code := run(context.Background(), []string{"doctor", "-config", conf, "-nginx-file", site}, nil, &out, &errb); code != 0 {
				t.Errorf("authd doctor on the generated snippets: exit %d\n%s%s", code, out.String(), errb.String())
			}
		})
	}
}

func TestNginxCommand(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "authd.toml")
	writeFile(t, conf, fmt.Sprintf("public_url = \"https://app.example.com\"\ndata_dir = %q\nusers_file = %q\n",
		filepath.Join(dir, "data"), filepath.Join(dir, "users.toml")))
	bad := filepath.Join(dir, "bad.toml")
	writeFile(t, bad, "listen = \"nowhere\"\npublic_url = \"https://app.example.com\"\n")
	tests := []struct {
		name string
		args []string
		code int
		want string // in stdout, or stderr when code != 0
	}{
		{"prints every file", []string{"nginx", "-config", conf}, 0, "# file authd-http.conf\n"},
		{"the default upstream", []string{"nginx", "-config", conf}, 0, "    server 127.0.0.1:9091;\n"},
		{"a name nginx cannot use", []string{"nginx", "-config", conf, "-name", "auth-d"}, 1, "name must be"},
		{"a config authd refuses", []string{"nginx", "-config", bad}, 1, "listen"},
		{"a stray argument", []string{"nginx", "-config", conf, "extra"}, 2, "no arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), tt.args, nil, &out, &errb)
			got := out.String()
			if code != 0 {
				got = errb.String()
			}
			if code != tt.code || !strings.Contains(got, tt.want) {
				t.Errorf("authd %v: exit %d, want %d with %q in:\n%s", tt.args, code, tt.code, tt.want, got)
			}
		})
	}
}

func writeFile(t testing.TB, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
