package users

import (
	"fmt"
	"strings"
	"testing"
)

// testUsersFile returns a valid users file with alice (admins, ops) and bob.
func testUsersFile(tb testing.TB) (string, map[string]string) {
	tb.Helper()
	hashes := map[string]string{"alice": mustHash(tb, "alice password", testParams), "bob": bcrypt10}
	return fmt.Sprintf(`# users
[[users]]
name = "alice"
hash = '%s'
groups = ["admins", "ops"]
email = "alice@example.com"
display_name = "Alice Ünicode"
generation = 7

[[users]]
name = "bob"
hash = '%s'
disabled = true
generation = 9
`, hashes["alice"], hashes["bob"]), hashes
}

func mustParse(tb testing.TB, s string) *DB {
	tb.Helper()
	db, err := Parse(strings.NewReader(s), DefaultLimits())
	if err != nil {
		tb.Fatalf("Parse: %v", err)
	}
	return db
}

func TestParse(t *testing.T) {
	src, hashes := testUsersFile(t)
	db := mustParse(t, src)
	if got := db.Len(); got != 2 {
		t.Fatalf("got Len %d, want 2", got)
	}
	a, ok := db.Lookup("alice")
	if !ok {
		t.Fatal("alice not found")
	}
	if a.Hash != hashes["alice"] || a.Email != "alice@example.com" || a.DisplayName != "Alice Ünicode" || a.Generation != 7 || a.Disabled {
		t.Errorf("got %+v, want alice's fields from the file", a.User)
	}
	if a.GroupsHeader != "admins,ops" {
		t.Errorf("got GroupsHeader %q, want %q", a.GroupsHeader, "admins,ops")
	}
	if a.Fingerprint != Fingerprint(a.User) || a.Fingerprint == 0 {
		t.Errorf("got Fingerprint %d, want %d", a.Fingerprint, Fingerprint(a.User))
	}
	b, _ := db.Lookup("bob")
	if !b.Disabled || b.GroupsHeader != "" {
		t.Errorf("got bob %+v, want disabled with no groups", b)
	}
	if _, ok := db.Lookup("Alice"); ok {
		t.Errorf("Lookup(\"Alice\") found a user: Lookup takes canonical names only")
	}
	if _, ok := db.Lookup("carol"); ok {
		t.Errorf("Lookup(\"carol\") found a user")
	}
	for g, want := range map[string]bool{"admins": true, "ops": true, "staff": false, "": false} {
		if got := db.HasGroup(g); got != want {
			t.Errorf("HasGroup(%q) = %v, want %v", g, got, want)
		}
	}
	us := db.Users()
	if len(us) != 2 || us[0].Name != "alice" || us[1].Name != "bob" {
		t.Fatalf("got Users %v, want alice, bob", us)
	}
	us[0].Groups[0] = "mutated"
	if a, _ := db.Lookup("alice"); a.Groups[0] != "admins" {
		t.Errorf("changing Users() changed the snapshot")
	}
}

func TestParseEmpty(t *testing.T) {
	for _, src := range []string{"", "# no users yet\n", "users = []\n"} {
		if db := mustParse(t, src); db.Len() != 0 {
			t.Errorf("Parse(%q): got %d users, want 0", src, db.Len())
		}
	}
}

func TestNilDB(t *testing.T) {
	var db *DB
	if _, ok := db.Lookup("alice"); ok || db.Len() != 0 || db.HasGroup("x") || db.Users() != nil {
		t.Errorf("nil DB: got users, want none")
	}
}

func TestFingerprint(t *testing.T) {
	u := User{Name: "alice", Hash: bcrypt10, Generation: 1}
	base := Fingerprint(u)
	changes := map[string]User{
		"generation": {Name: "alice", Hash: bcrypt10, Generation: 2},
		"hash":       {Name: "alice", Hash: "$2a$10$" + strings.Repeat("A", 53), Generation: 1},
	}
	for name, v := range changes {
		t.Run(name, func(t *testing.T) {
			if Fingerprint(v) == base {
				t.Errorf("got the same fingerprint after a %s change", name)
			}
		})
	}
	same := u
	same.Groups, same.Email, same.Disabled = []string{"x"}, "e@x", true
	if Fingerprint(same) != base {
		t.Errorf("fingerprint changed with non-credential fields")
	}
}

func TestParseErrors(t *testing.T) {
	good := mustHash(t, "alice password", testParams)
	valid := mustHash(t, "x", testParams)
	parts := strings.Split(valid, "$")
	huge := "$argon2id$v=19$m=4194304,t=1,p=1$" + parts[4] + "$" + parts[5]
	// Alice's table takes lines 1-3 and a blank line, so the second [[users]] is on line 5.
	file := func(second string) string {
		return "[[users]]\nname = \"alice\"\nhash = '" + good + "'\n\n[[users]]\n" + second
	}
	tests := []struct {
		name   string
		src    string
		want   []string // substrings of the error
		secret string   // must not appear in the error
	}{
		{"plaintext", file("name = \"bob\"\nhash = 'hunter2hunter2'\n"),
			[]string{"line 5", `user "bob"`, "unsupported hash scheme", "only argon2id and bcrypt"}, "hunter2hunter2"},
		{"ldap sha", file("name = \"bob\"\nhash = '{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M='\n"),
			[]string{"line 5", `user "bob"`, "unsupported hash scheme {SHA}"}, "qUqP5cyxm6YcTAhz05Hph5gvu9M="},
		{"md5-crypt", file("name = \"bob\"\nhash = '$1$saltsalt$qjXMvbEw8oaL.CzflDugX/'\n"),
			[]string{"line 5", `user "bob"`, "MD5-crypt"}, "$1$saltsalt$qjXMvbEw8oaL.CzflDugX/"},
		{"apr1", file("name = \"bob\"\nhash = '$apr1$saltsalt$qjXMvbEw8oaL.CzflDugX/'\n"),
			[]string{"line 5", `user "bob"`, "Apache MD5-crypt"}, "qjXMvbEw8oaL.CzflDugX/"},
		{"sha-crypt", file("name = \"bob\"\nhash = '$6$saltsalt$qjXMvbEw8oaL.CzflDugX/'\n"),
			[]string{"line 5", `user "bob"`, "SHA-512-crypt"}, "qjXMvbEw8oaL.CzflDugX/"},
		{"argon2i", file("name = \"bob\"\nhash = '$argon2i" + valid[len("$argon2id"):] + "'\n"),
			[]string{"line 5", `user "bob"`, "argon2i "}, parts[5]},
		{"argon2d", file("name = \"bob\"\nhash = '$argon2d" + valid[len("$argon2id"):] + "'\n"),
			[]string{"line 5", `user "bob"`, "argon2d "}, parts[5]},
		{"bcrypt cost 4", file("name = \"bob\"\nhash = '" + bcrypt04 + "'\n"),
			[]string{"line 5", `user "bob"`, "bcrypt cost 4 is below the minimum 10"}, bcrypt04[7:]},
		{"argon2id beyond limits", file("name = \"bob\"\nhash = '" + huge + "'\n"),
			[]string{"line 5", `user "bob"`, "memory 4194304 KiB is above the limit"}, parts[5]},
		{"malformed argon2id", file("name = \"bob\"\nhash = '" + valid[:len(valid)-20] + "!'\n"),
			[]string{"line 5", `user "bob"`, "malformed hash"}, parts[4]},
		{"missing hash", file("name = \"bob\"\n"),
			[]string{"line 5", `user "bob"`, "hash is missing"}, ""},
		{"missing name", file("hash = '" + bcrypt10 + "'\n"),
			[]string{"line 5", "user #2", "name is missing"}, bcrypt10[7:]},
		{"name not canonical", file("name = \"Bob\"\nhash = '" + bcrypt10 + "'\n"),
			[]string{"line 5", `user "Bob"`, `canonical form (write "bob")`}, bcrypt10[7:]},
		{"invalid name is not echoed", file("name = \"" + bcrypt10 + "\"\nhash = '" + bcrypt10 + "'\n"),
			[]string{"line 5", "user #2", "invalid name"}, bcrypt10[7:]},
		{"duplicate", file("name = \"alice\"\nhash = '" + bcrypt10 + "'\n"),
			[]string{"line 5", `user "alice"`, "duplicate user (first at line 1)"}, bcrypt10[7:]},
		{"unknown key", file("name = \"bob\"\nhash = '" + bcrypt10 + "'\npassword = 'hunter2hunter2'\n"),
			[]string{"line 5", `user "bob"`, `unknown key "password"`}, "hunter2hunter2"},
		{"unknown top-level key", "admins = ['x']\n" + file("name = \"bob\"\nhash = '"+bcrypt10+"'\n"),
			[]string{`unknown key "admins"`}, bcrypt10[7:]},
		{"bad group", file("name = \"bob\"\nhash = '" + bcrypt10 + "'\ngroups = ['Admins']\n"),
			[]string{"line 5", `user "bob"`, `group "Admins"`}, bcrypt10[7:]},
		{"empty group", file("name = \"bob\"\nhash = '" + bcrypt10 + "'\ngroups = ['']\n"),
			[]string{"line 5", `user "bob"`, "empty group"}, ""},
		{"duplicate group", file("name = \"bob\"\nhash = '" + bcrypt10 + "'\ngroups = ['ops', 'ops']\n"),
			[]string{"line 5", `user "bob"`, `group "ops" listed twice`}, ""},
		{"control character in email", file("name = \"bob\"\nhash = '" + bcrypt10 + "'\nemail = \"bob@x\\r\\nX-Remote-User: admin\"\n"),
			[]string{"line 5", `user "bob"`, "email: contains control characters"}, ""},
		{"long display name", file("name = \"bob\"\nhash = '" + bcrypt10 + "'\ndisplay_name = '" + strings.Repeat("x", 257) + "'\n"),
			[]string{"line 5", `user "bob"`, "display_name: longer than 256 bytes"}, ""},
		{"wrong type", file("name = \"bob\"\nhash = '" + bcrypt10 + "'\ngeneration = 'one'\n"),
			[]string{"line 8", "incompatible types"}, bcrypt10[7:]},
		{"negative generation", file("name = \"bob\"\nhash = '" + bcrypt10 + "'\ngeneration = -1\n"),
			[]string{"line 5", `user "bob"`, "generation must be between 0 and"}, bcrypt10[7:]},
		{"syntax error", file("name = \"bob\"\nhash = '" + bcrypt10 + "\n"),
			[]string{"line 7", "syntax"}, bcrypt10[7:]},
		{"unquoted hash", file("name = \"bob\"\nhash = hunter2hunter2\n"),
			[]string{"line 7", "syntax"}, "hunter"},
		{"several problems at once", file("name = \"bob\"\nhash = 'hunter2hunter2'\ngroups = ['A']\n[[users]]\nname = \"carol\"\nhash = '" + bcrypt10 + "'\ncolour = 'red'\n"),
			[]string{"line 5", "line 9", `user "carol"`, `unknown key "colour"`, `group "A"`, "unsupported hash"}, "hunter2hunter2"},
		{"inline array has no line numbers", "users = [{name = 'Bob', hash = '" + bcrypt10 + "'}]\n",
			[]string{"users file: ", `user "Bob"`, "canonical"}, bcrypt10[7:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.src), DefaultLimits())
			if err == nil {
				t.Fatal("got nil error, want one")
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("got %q, want it to contain %q", msg, w)
				}
			}
			if tt.secret != "" && strings.Contains(msg, tt.secret) {
				t.Errorf("got %q, which quotes the secret %q", msg, tt.secret)
			}
		})
	}
}

func TestParseAcceptsWeakArgon2id(t *testing.T) {
	// Below the OWASP baseline: loads, and Verify asks for an upgrade at the next login.
	h := mustHash(t, "pw", Params{MemoryKiB: 1024, Time: 1, Threads: 1})
	db := mustParse(t, "[[users]]\nname = 'w'\nhash = '"+h+"'\n")
	e, ok := db.Lookup("w")
	if !ok {
		t.Fatal("w not found")
	}
	ok, upgrade, err := Verify(e.Hash, "pw", DefaultParams(), DefaultLimits())
	if err != nil || !ok || !upgrade {
		t.Errorf("got ok=%v upgrade=%v err=%v, want true, true, nil", ok, upgrade, err)
	}
}

func TestParseUsesLimits(t *testing.T) {
	h := mustHash(t, "pw", Params{MemoryKiB: 256, Time: 1, Threads: 1})
	src := "[[users]]\nname = 'w'\nhash = '" + h + "'\n"
	if _, err := Parse(strings.NewReader(src), Limits{MaxMemoryKiB: 128}); err == nil {
		t.Errorf("got nil error for m=256 with MaxMemoryKiB 128, want one")
	}
	if _, err := Parse(strings.NewReader(src), Limits{MaxMemoryKiB: 256}); err != nil {
		t.Errorf("got %v, want nil", err)
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	src, _ := testUsersFile(t)
	db := mustParse(t, src)
	for _, name := range []string{"alice", "nobody"} {
		if n := testing.AllocsPerRun(100, func() { db.Lookup(name) }); n != 0 {
			t.Errorf("Lookup(%q): got %v allocations, want 0", name, n)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	var sb strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&sb, "[[users]]\nname = 'user%d'\nhash = '%s'\ngroups = ['g%d']\n", i, bcrypt10, i%10)
	}
	db := mustParse(b, sb.String())
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := db.Lookup("user500"); !ok {
			b.Fatal("user500 not found")
		}
	}
}

func TestLimitsFor(t *testing.T) {
	tests := []struct {
		name      string
		p         Params
		maxBcrypt int
		want      Limits
	}{
		{"default params", DefaultParams(), 12, Limits{MaxMemoryKiB: 4 * 19456, MaxTime: 8, MaxThreads: 1, MaxBcryptCost: 12}},
		{"heavier params", Params{MemoryKiB: 65536, Time: 3, Threads: 2}, 10, Limits{MaxMemoryKiB: 262144, MaxTime: 12, MaxThreads: 2, MaxBcryptCost: 10}},
		{"capped by the defaults", Params{MemoryKiB: 1 << 20, Time: 20, Threads: 16}, 31, DefaultLimits()},
		{"zero bcrypt cost means the default", DefaultParams(), 0, Limits{MaxMemoryKiB: 4 * 19456, MaxTime: 8, MaxThreads: 1, MaxBcryptCost: 14}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := LimitsFor(tt.p, tt.maxBcrypt); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestParseRefusesHashBeyondConfiguredBounds: with the default [hash] settings, a hash
// demanding more than 4x the memory or passes, more threads, or bcrypt above cost 12, is refused
// naming the user and its line, and the error never quotes the hash.
func TestParseRefusesHashBeyondConfiguredBounds(t *testing.T) {
	lim := LimitsFor(DefaultParams(), 12)
	salt, key := "c2FsdHNhbHRzYWx0c2FsdA", "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U"
	argon := func(m, tm, p int) string {
		return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", m, tm, p, salt, key)
	}
	bcryptAt := func(cost int) string { return fmt.Sprintf("$2b$%02d$", cost) + strings.Repeat("a", 53) }
	tests := []struct {
		name, hash string
		want       string // "" means accepted
	}{
		{"argon2id at the bound", argon(4*19456, 8, 1), ""},
		{"argon2id memory over", argon(4*19456+1, 2, 1), "argon2id memory 77825 KiB is above the limit 77824 KiB"},
		{"argon2id time over", argon(19456, 9, 1), "argon2id time 9 is above the limit 8"},
		{"argon2id threads over", argon(19456, 2, 2), "argon2id threads 2 is above the limit 1"},
		{"bcrypt at the bound", bcryptAt(12), ""},
		{"bcrypt over", bcryptAt(13), "bcrypt cost 13 is above the limit 12"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "[[users]]\nname = 'ok'\nhash = '" + bcrypt10 + "'\n\n[[users]]\nname = 'heavy'\nhash = '" + tt.hash + "'\n"
			_, err := Parse(strings.NewReader(src), lim)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got nil, want an error naming heavy")
			}
			msg := err.Error()
			for _, want := range []string{"line 5", "heavy", tt.want} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q lacks %q", msg, want)
				}
			}
			if strings.Contains(msg, salt) || strings.Contains(msg, strings.Repeat("a", 20)) || strings.Contains(msg, "ok:") {
				t.Errorf("error %q quotes the hash or blames another user", msg)
			}
		})
	}
}
