package users

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

var hashFieldRE = regexp.MustCompile(`hash\s*=\s*["']([^"'\n]{12,})["']`)

// FuzzParse feeds the users-file loader any bytes. It never panics; what it accepts holds only
// canonical, unique names; and its error text never repeats a hash from the file, whatever is
// wrong with it.
func FuzzParse(f *testing.F) {
	good := "[[users]]\nname = \"ada\"\nhash = \"$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzYWx0$wWKIMhR9lyDFvRz9YTZweHKfbftvj+qf+YFY4NeBbtA\"\ngroups = [\"staff\"]\ngeneration = 1\n"
	for _, s := range []string{
		good,
		good + good,
		strings.Replace(good, "$argon2id$", "{SHA}", 1),
		strings.Replace(good, "ada", "Ada ", 1),
		strings.Replace(good, "generation", "admin = true\ngeneration", 1),
		"[[users]]\nname = \"x\"\nhash = hunter2hunter2hunter2\n",
		"[[users]]\nname = \"x\"\nhash = \"$2y$04$" + strings.Repeat("a", 53) + "\"\n",
		"[[users]]\nname = \"x\"\nhash = \"$argon2id$v=19$m=4294967295,t=4294967295,p=255$c2FsdA$aGFzaA\"\n",
		"users = [{name = \"x\", hash = \"$apr1$salt1234$Rs3ljKgzRa/SqtwMMOQsN.\"}]\n",
		"[[users]]\nname = \"x\"\nhash = '''\nmultiline-hash-value\n'''\n",
		"", "[[users]", "\x00\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		db, err := Parse(bytes.NewReader(data), DefaultLimits())
		if err != nil {
			msg := err.Error()
			// The key material sits at a hash's end; its scheme prefix may appear in a message
			// that names the expected form.
			for _, m := range hashFieldRE.FindAllSubmatch(data, -1) {
				h := string(m[1])
				if len(h) < 20 || !strings.Contains(msg, h[len(h)-12:]) {
					continue
				}
				// The same text elsewhere in the file (a name, once lower-cased) may be quoted.
				rest := strings.ToLower(strings.ReplaceAll(string(data), h, ""))
				if strings.Contains(rest, strings.ToLower(h[len(h)-12:])) {
					continue
				}
				t.Fatalf("error repeats hash %q: %s", h, msg)
			}
			return
		}
		seen := map[string]bool{}
		for name := range db.byName {
			if c, err := Canonical(name); err != nil || c != name {
				t.Fatalf("accepted user %q is not canonical (%q, %v)", name, c, err)
			}
			if seen[name] {
				t.Fatalf("user %q twice", name)
			}
			seen[name] = true
		}
	})
}

// FuzzCanonicalName checks the one canonical form of usernames: idempotent, at most 64 bytes of
// [a-z0-9._@-] starting with a letter or digit, and the same for every ASCII case spelling and
// surrounding white space.
func FuzzCanonicalName(f *testing.F) {
	for _, s := range []string{"ada", "ADA", " Ada ", "a.b@c-d_e", "\u212aelvin", "ada\u200b", "-x", "", strings.Repeat("a", 65)} {
		f.Add(s)
	}
	nameRE := regexp.MustCompile(`^[a-z0-9][a-z0-9._@-]{0,63}$`)
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Canonical(s)
		if err != nil {
			return
		}
		if !nameRE.MatchString(c) {
			t.Fatalf("Canonical(%q) = %q: not of the documented form", s, c)
		}
		for _, v := range []string{c, strings.ToUpper(c), " " + c + "\t", strings.ToUpper(c[:1]) + c[1:]} {
			if again, err := Canonical(v); err != nil || again != c {
				t.Fatalf("Canonical(%q) = %q, %v; want %q", v, again, err, c)
			}
		}
	})
}
