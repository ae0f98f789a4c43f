package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckFiles(t *testing.T) {
	for _, tt := range []struct {
		name    string
		setup   func(tb testing.TB, c *Config)
		wantKey string // "" means no error
		wantMsg string
	}{
		{"missing files are fine", func(tb testing.TB, c *Config) {}, "", ""},
		{"private users file", func(tb testing.TB, c *Config) { writeFile(tb, c.UsersFile, "", 0o600) }, "", ""},
		{"group-readable users file", func(tb testing.TB, c *Config) { writeFile(tb, c.UsersFile, "", 0o640) }, "", ""},
		{"world-readable users file", func(tb testing.TB, c *Config) { writeFile(tb, c.UsersFile, "", 0o644) },
			"users_file", "is readable by others (mode 0644); run chmod 600 "},
		{"world-writable users file", func(tb testing.TB, c *Config) { writeFile(tb, c.UsersFile, "", 0o602) },
			"users_file", "is writable by others (mode 0602)"},
		{"world-open users file", func(tb testing.TB, c *Config) { writeFile(tb, c.UsersFile, "", 0o666) },
			"users_file", "is readable and writable by others (mode 0666)"},
		{"users file is a directory", func(tb testing.TB, c *Config) { mkdir(tb, c.UsersFile, 0o700) },
			"users_file", "is a directory"},
		{"data_dir is a file", func(tb testing.TB, c *Config) { writeFile(tb, c.DataDir, "", 0o600) },
			"data_dir", "is not a directory"},
		{"data_dir private", func(tb testing.TB, c *Config) { mkdir(tb, c.DataDir, 0o700) }, "", ""},
		{"data_dir world-writable", func(tb testing.TB, c *Config) { mkdir(tb, c.DataDir, 0o777) },
			"data_dir", "is writable by others (mode 0777)"},
		{"private smtp password", func(tb testing.TB, c *Config) {
			c.SMTP.PasswordFile = filepath.Join(filepath.Dir(c.UsersFile), "smtp")
			writeFile(tb, c.SMTP.PasswordFile, "pw\n", 0o600)
		}, "", ""},
		{"readable smtp password", func(tb testing.TB, c *Config) {
			c.SMTP.PasswordFile = filepath.Join(filepath.Dir(c.UsersFile), "smtp")
			writeFile(tb, c.SMTP.PasswordFile, "pw\n", 0o644)
		}, "smtp.password_file", "is readable by others (mode 0644)"},
		{"missing smtp password", func(tb testing.TB, c *Config) {
			c.SMTP.PasswordFile = filepath.Join(filepath.Dir(c.UsersFile), "none")
		}, "smtp.password_file", "cannot read"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			c := valid()
			c.UsersFile = filepath.Join(dir, "users.toml")
			c.DataDir = filepath.Join(dir, "data")
			tt.setup(t, &c)
			err := CheckFiles(c)
			if tt.wantKey == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			e := problems(t, err)
			if len(e) != 1 || e[0].Key != tt.wantKey || !strings.Contains(e[0].Msg, tt.wantMsg) {
				t.Errorf("got %q, want one %s problem containing %q", e.Error(), tt.wantKey, tt.wantMsg)
			}
		})
	}
}

func TestCheckFilesReportsBoth(t *testing.T) {
	dir := t.TempDir()
	c := valid()
	c.UsersFile = filepath.Join(dir, "users.toml")
	c.DataDir = filepath.Join(dir, "data")
	writeFile(t, c.UsersFile, "", 0o644)
	writeFile(t, c.DataDir, "", 0o600)
	e := problems(t, CheckFiles(c))
	if got := keys(e); len(got) != 2 || got[0] != "users_file" || got[1] != "data_dir" {
		t.Errorf("got %q, want [users_file data_dir]", got)
	}
}

func mkdir(tb testing.TB, path string, mode os.FileMode) {
	tb.Helper()
	if err := os.Mkdir(path, mode); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		tb.Fatal(err)
	}
}
