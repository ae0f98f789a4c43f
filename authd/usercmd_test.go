package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// TestImportRefusesHashBeyondConfiguredBounds: import-htpasswd into the users
// file applies the bounds serve loads the file with ([hash] max_bcrypt_cost),
// so it never writes a file the daemon would refuse: an over-bound hash is
// refused naming the user, and the file keeps its users; a hash within the
// bounds is imported and the file still passes check-config.
func TestImportRefusesHashBeyondConfiguredBounds(t *testing.T) {
	bcrypt10, err := bcrypt.GenerateFromPassword([]byte("imported pass 1"), 10)
	if err != nil {
		t.Fatal(err)
	}
	over := func(cost string) string { return "$2b$" + cost + "$" + strings.Repeat("a", 53) }
	tests := []struct {
		name   string
		config string
		hash   string
		want   string // in the refusal; "" means imported
	}{
		{"cost 13 above the default 12", "", over("13"), "bcrypt cost 13 is above the limit 12"},
		{"cost 11 above a configured 10", "[hash]\nmax_bcrypt_cost = 10\n", over("11"), "bcrypt cost 11 is above the limit 10"},
		{"cost 10 within the bounds", "", string(bcrypt10), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStack(t, tt.config)
			s.mustCLI("long enough pw 1\n", "user", "add", "alice")
			ht := filepath.Join(s.dir, "htpasswd")
			if err := os.WriteFile(ht, []byte("carol:"+tt.hash+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			out, errs, code := s.cli("", "user", "import-htpasswd", ht)
			file, _ := os.ReadFile(filepath.Join(s.dir, "users.toml"))
			if tt.want == "" {
				if code != 0 || !strings.Contains(string(file), `"carol"`) {
					t.Fatalf("import within the bounds: exit %d, %s%s; want carol imported", code, out, errs)
				}
				s.mustCLI("", "check-config")
				return
			}
			if code == 0 || !strings.Contains(errs, "carol") || !strings.Contains(errs, tt.want) {
				t.Errorf("import of an over-bound hash: exit %d, stderr %q; want a refusal naming carol and %q", code, errs, tt.want)
			}
			if strings.Contains(errs, tt.hash[7:27]) {
				t.Errorf("refusal prints the hash: %q", errs)
			}
			if strings.Contains(string(file), "carol") || !strings.Contains(string(file), `"alice"`) {
				t.Errorf("users file after the refusal:\n%s\nwant alice only", file)
			}
			s.mustCLI("", "check-config")
		})
	}
}
