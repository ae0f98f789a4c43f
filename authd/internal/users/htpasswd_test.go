package users

import (
	"strings"
	"testing"
)

func TestParseHTPasswd(t *testing.T) {
	src := "\uFEFFAlice:" + bcrypt10 + "\r\n# exported from apache\n\nbob@example.com:$2y$" + bcrypt10[4:] + "\n  carol:$2b$" + bcrypt10[4:] + "  \n"
	us, err := ParseHTPasswd(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"alice", "bob@example.com", "carol"}
	if len(us) != len(want) {
		t.Fatalf("got %d users, want %d", len(us), len(want))
	}
	for i, u := range us {
		if u.Name != want[i] {
			t.Errorf("user %d: got %q, want %q", i, u.Name, want[i])
		}
		if u.Generation == 0 || !strings.HasSuffix(u.Hash, bcrypt10[4:]) {
			t.Errorf("user %q: got generation %d, hash ok %v; want a generation and the bcrypt hash", u.Name, u.Generation, strings.HasSuffix(u.Hash, bcrypt10[4:]))
		}
	}
	ok, upgrade, err := Verify(us[0].Hash, bcryptPassword, testParams, DefaultLimits())
	if err != nil || !ok || !upgrade {
		t.Errorf("imported hash: got ok=%v upgrade=%v err=%v, want true, true, nil", ok, upgrade, err)
	}
}

func TestParseHTPasswdErrors(t *testing.T) {
	tests := []struct {
		name   string
		line   string
		want   []string
		secret string
	}{
		{"sha", "bob:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=", []string{"line 2", `user "bob"`, "{SHA}", "only bcrypt"}, "qUqP5cyxm6YcTAhz05Hph5gvu9M="},
		{"apr1", "bob:$apr1$saltsalt$qjXMvbEw8oaL.CzflDugX/", []string{"line 2", `user "bob"`, "Apache MD5-crypt"}, "qjXMvbEw8oaL.CzflDugX/"},
		{"crypt", "bob:abJnggxhB/yWI", []string{"line 2", `user "bob"`, "plaintext or DES-crypt"}, "abJnggxhB/yWI"},
		{"plaintext", "bob:hunter2hunter2", []string{"line 2", `user "bob"`, "unsupported"}, "hunter2hunter2"},
		{"bcrypt cost 4", "bob:" + bcrypt04, []string{"line 2", `user "bob"`, "cost 4 is below the minimum 10"}, bcrypt04[7:]},
		{"malformed bcrypt", "bob:" + bcrypt10[:50], []string{"line 2", `user "bob"`, "malformed"}, bcrypt10[7:50]},
		{"duplicate after canonicalisation", "ALICE:" + bcrypt10, []string{"line 2", `user "alice"`, "duplicate user (first at line 1)"}, bcrypt10[7:]},
		{"no colon", "bob" + bcrypt10, []string{"line 2", `expected "name:hash"`}, bcrypt10[7:]},
		{"extra field", "bob:realm:" + bcrypt10, []string{"line 2", `user "bob"`, "no further fields"}, bcrypt10[7:]},
		{"bad name", "b ob:" + bcrypt10, []string{"line 2", "invalid name"}, bcrypt10[7:]},
		{"empty name", ":" + bcrypt10, []string{"line 2", "invalid name"}, bcrypt10[7:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "alice:" + bcrypt10 + "\n" + tt.line + "\n"
			us, err := ParseHTPasswd(strings.NewReader(src))
			if err == nil {
				t.Fatalf("got %v, nil; want an error", us)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want it to contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), tt.secret) {
				t.Errorf("got %q, which quotes the hash", err)
			}
		})
	}
}
