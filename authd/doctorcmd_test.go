package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// doctorEnv is an authd config and a directory laid out like /etc/nginx, with
// the shipped snippets under authd/.
func doctorEnv(t *testing.T, listen string) (cfg, confDir string) {
	t.Helper()
	dir := t.TempDir()
	cfg = filepath.Join(dir, "authd.toml")
	text := "listen = \"" + listen + "\"\npublic_url = \"https://app.example.com\"\ndata_dir = \"" + filepath.Join(dir, "data") + "\"\nusers_file = \"" + filepath.Join(dir, "users.toml") + "\"\n"
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	shipped, err := filepath.Abs(filepath.Join("..", "nginx"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(shipped, filepath.Join(dir, "authd")); err != nil {
		t.Fatal(err)
	}
	return cfg, dir
}

// TestDoctorExitCodes: 0 clean, 1 findings (one line each, then a summary),
// 2 when the nginx config cannot be read; -json is an array.
func TestDoctorExitCodes(t *testing.T) {
	cfg, dir := doctorEnv(t, "127.0.0.1:9091")
	site, _ := filepath.Abs(filepath.Join("..", "nginx", "example-site.conf"))
	broken, _ := filepath.Abs(filepath.Join("internal", "doctor", "testdata", "broken", "try-files.conf"))
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   string
		stderr   string
		jsonLen  int
		wantJSON bool
	}{
		{"clean", []string{"-nginx-file", site, "-nginx-dir", dir}, 0, "no findings: nginx " + site, "", 0, false},
		{"clean json", []string{"-nginx-file", site, "-nginx-dir", dir, "-json"}, 0, "[]", "", 0, true},
		{"findings", []string{"-nginx-file", broken, "-nginx-dir", dir}, 1,
			broken + ":11: try_files in location / hands the request to location @app", "doctor: 1 finding(s)", 0, false},
		{"findings json", []string{"-nginx-file", broken, "-nginx-dir", dir, "-json"}, 1, `"check": "try-files-unprotected"`, "", 1, true},
		{"missing file", []string{"-nginx-file", filepath.Join(dir, "nope.conf")}, 2, "", "cannot read", 0, false},
		{"missing include", []string{"-nginx-file", site}, 2, "", "cannot read", 0, false},
		{"not a dump", []string{"-nginx-T", site}, 2, "", "is this the output of nginx -T", 0, false},
		{"no nginx", []string{"-nginx", filepath.Join(dir, "no-nginx")}, 2, "", "no such file or directory (give the nginx binary with -nginx BIN, or saved nginx -T output with -nginx-T FILE)", 0, false},
		{"both sources", []string{"-nginx-file", site, "-nginx-T", "-"}, 2, "", "doctor [-config PATH]", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), append([]string{"doctor", "-config", cfg}, tc.args...), strings.NewReader(""), &out, &errb)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.code, out.String(), errb.String())
			}
			if !strings.Contains(out.String(), tc.stdout) || !strings.Contains(errb.String(), tc.stderr) {
				t.Errorf("got stdout %q stderr %q, want %q and %q", out.String(), errb.String(), tc.stdout, tc.stderr)
			}
			if tc.wantJSON {
				var found []map[string]any
				if err := json.Unmarshal(out.Bytes(), &found); err != nil || len(found) != tc.jsonLen {
					t.Errorf("-json: %v, %d findings, want %d:\n%s", err, len(found), tc.jsonLen, out.String())
				}
			}
		})
	}
}

// TestDoctorReadsDumpFromStdin: `nginx -T | authd doctor -nginx-T -`.
func TestDoctorReadsDumpFromStdin(t *testing.T) {
	cfg, _ := doctorEnv(t, "127.0.0.1:9092")
	dump := "# configuration file /etc/nginx/nginx.conf:\nevents {}\nhttp {\n upstream authd { server 127.0.0.1:9091; }\n server {\n  location = /_authd/verify { internal; proxy_pass http://authd/verify; proxy_pass_request_body off; proxy_set_header X-Original-URI $request_uri; }\n  location ^~ /authd/ { proxy_pass http://127.0.0.1:9092; }\n  location / { auth_request /_authd/verify; root /srv; }\n }\n}\n"
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"doctor", "-config", cfg, "-nginx-T", "-"}, strings.NewReader(dump), &out, &errb)
	want := "/etc/nginx/nginx.conf:5: proxy_pass http://authd/verify goes to 127.0.0.1:9091, but authd listens on 127.0.0.1:9092"
	if code != 1 || !strings.Contains(out.String(), want) {
		t.Errorf("exit %d, want 1 and %q:\n%s%s", code, want, out.String(), errb.String())
	}
}
