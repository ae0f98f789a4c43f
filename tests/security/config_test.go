package security

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestConfigRefusals covers "Refuse to start with: … a secret that is short …, insecure cookies
// without an explicit development switch, unknown keys, idle timeout longer than the absolute lifetime, weak hash parameters, secret-bearing files readable by
// others", and an empty rule set (default deny). (A rule naming a group nobody holds is a warning,
// not a refusal: see TestGroupNobodyHoldsWarns.) Each broken setup fails check-config with the key
// named, and serve exits with an error instead of running.
func TestConfigRefusals(t *testing.T) {
	s := newStack(t, stackOptions{})
	base := readFile(t, s.conf)
	for _, tc := range []struct {
		name string
		edit func(dir, conf string) string // returns the config text
		want string                        // in the error
	}{
		{"no public_url", func(_, c string) string { return regexp.MustCompile(`(?m)^public_url = .*$`).ReplaceAllString(c, "") }, "public_url"},
		{"http without the insecure switch", func(_, c string) string { return strings.Replace(c, `"https://`, `"http://`, 1) }, "cookie.insecure"},
		{"insecure cookies on https", func(_, c string) string { return c + "\n[cookie]\ninsecure = true\n" }, "cookie.insecure"},
		{"unknown key", func(_, c string) string { return "sesion_secret = \"x\"\n" + c }, "sesion_secret"},
		{"unknown key in a table", func(_, c string) string { return c + "\n[session]\nidle = \"1m\"\n" }, "session.idle"},
		{"idle longer than lifetime", func(_, c string) string {
			return c + "\n[session]\nidle_timeout = \"2h\"\nlifetime = \"1h\"\n"
		}, "session.idle_timeout"},
		{"weak hash memory", func(_, c string) string { return c + "\n[hash]\nmemory_kib = 4096\n" }, "hash.memory_kib"},
		{"weak hash time", func(_, c string) string { return c + "\n[hash]\ntime = 1\nmemory_kib = 19456\n" }, "hash.time"},
		{"empty rule set", func(_, c string) string {
			i := strings.Index(c, "[networks.office]")
			return c[:i] + "rules = []\n"
		}, "rules"},
		{"users file readable by others", func(dir, c string) string {
			p := filepath.Join(dir, "users.toml")
			must(t, os.WriteFile(p, []byte(readFile(t, s.usersFile)), 0o644))
			return strings.Replace(c, s.usersFile, p, 1)
		}, "users_file"},
		{"data dir writable by others", func(dir, c string) string {
			p := filepath.Join(dir, "data")
			must(t, os.MkdirAll(p, 0o777))
			must(t, os.Chmod(p, 0o777))
			return strings.Replace(c, s.dataDir, p, 1)
		}, "data_dir"},
		{"short secret", func(dir, c string) string {
			p := filepath.Join(dir, "data")
			must(t, os.MkdirAll(p, 0o700))
			must(t, os.WriteFile(filepath.Join(p, "secret"), []byte("short"), 0o600))
			return strings.Replace(c, s.dataDir, p, 1)
		}, "secret"},
		{"secret readable by others", func(dir, c string) string {
			p := filepath.Join(dir, "data")
			must(t, os.MkdirAll(p, 0o700))
			must(t, os.WriteFile(filepath.Join(p, "secret"), []byte(strings.Repeat("k", 32)), 0o644))
			return strings.Replace(c, s.dataDir, p, 1)
		}, "secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			conf := filepath.Join(dir, "authd.toml")
			text := tc.edit(dir, base)
			// Another port, so a serve that wrongly starts does not clash with the stack's authd.
			text = regexp.MustCompile(`(?m)^listen = .*$`).ReplaceAllString(text, `listen = "127.0.0.1:1"`)
			must(t, os.WriteFile(conf, []byte(text), 0o600))
			secretOnly := strings.Contains(tc.name, "secret")
			if !secretOnly {
				out, err := runAuthd(s.bin, "check-config", "-config", conf)
				if err == nil {
					t.Fatalf("check-config accepted it:\n%s", out)
				}
				if !strings.Contains(out, tc.want) {
					t.Errorf("check-config error does not name %q:\n%s", tc.want, out)
				}
			}
			cmd := exec.Command(s.bin, "serve", "-config", conf)
			done := make(chan error, 1)
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			must(t, cmd.Start())
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err == nil {
					t.Errorf("serve exited 0:\n%s", out.String())
				} else if !strings.Contains(out.String(), tc.want) {
					t.Errorf("serve error does not name %q:\n%s", tc.want, out.String())
				}
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				t.Errorf("serve is running with a broken setup")
			}
		})
	}
}

// TestShippedUnitsKeepSecretsOffCommandLines covers "The shipped systemd unit runs as an
// unprivileged user with the usual hardening directives; secrets never appear on a command line."
func TestShippedUnitsKeepSecretsOffCommandLines(t *testing.T) {
	requireE2E(t)
	unit := readFile(t, filepath.Join("..", "..", "systemd", "authd.service"))
	for _, want := range []string{"User=authd", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
		"CapabilityBoundingSet=\n", "RestrictAddressFamilies=", "SystemCallFilter=", "UMask=0077"} {
		if !strings.Contains(unit, want) {
			t.Errorf("systemd/authd.service lacks %q", strings.TrimSpace(want))
		}
	}
	if regexp.MustCompile(`(?m)^User=(root|0)?\s*$`).MatchString(unit) {
		t.Errorf("systemd/authd.service runs as root")
	}
	secretRE := regexp.MustCompile(`(?i)(password|passwd|secret|token|key)[= ]`)
	for _, f := range []string{"systemd/authd.service", "supervisor/authd.conf"} {
		for _, line := range strings.Split(readFile(t, filepath.Join("..", "..", f)), "\n") {
			if (strings.HasPrefix(line, "Exec") || strings.HasPrefix(line, "command=")) && secretRE.MatchString(line) {
				t.Errorf("%s: a command line carries a secret: %s", f, line)
			}
		}
	}
}
