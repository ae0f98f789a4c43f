package main

import (
	"context"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"

	"github.com/authd/authd/authd/internal/audit"
	"github.com/authd/authd/authd/internal/users"
)

// TestCLIAuditAndLastAdminFileAndRedis runs the user subcommands on both stores: each
// change is an audit event naming the unix user, "add" records when the user
// was created, and the last enabled admin cannot be locked, deleted or
// demoted without -force.
func TestCLIAuditAndLastAdminFileAndRedis(t *testing.T) {
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"file", "redis"} {
		t.Run(kind, func(t *testing.T) {
			var s *stack
			var log audit.Log
			var rc *redis.Client
			if kind == "redis" {
				rd := startTestRedis(t)
				s = redisStack(t, rd)
				rc = redis.NewClient(&redis.Options{Addr: rd.addr()})
				t.Cleanup(func() { rc.Close() })
				log = audit.NewRedis(rc, "story:", 0)
			} else {
				s = newStack(t, "")
			}
			before := time.Now().Add(-time.Second)
			s.mustCLI("long enough pw 1\n", "user", "add", "-groups", "admin", "root-admin")
			s.mustCLI("long enough pw 2\n", "user", "add", "-groups", "staff", "bob")
			if kind == "file" {
				f, err := audit.OpenFile(filepath.Join(s.dir, "data", audit.FileName), 0)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { f.Close() })
				log = f
			}

			for _, args := range [][]string{
				{"user", "lock", "root-admin"},
				{"user", "del", "root-admin"},
				{"user", "set", "-groups", "staff", "root-admin"},
			} {
				_, errs, code := s.cli("", args...)
				if code != 1 || !strings.Contains(errs, "last enabled member of the admin groups") || !strings.Contains(errs, "-force") {
					t.Errorf("%v: exit %d, stderr %q; want a last-admin refusal", args, code, errs)
				}
			}
			s.mustCLI("", "user", "lock", "bob")
			s.mustCLI("", "user", "set", "-groups", "staff,admin", "bob")
			s.mustCLI("", "user", "unlock", "bob")
			s.mustCLI("", "user", "lock", "root-admin") // bob is an admin now
			s.mustCLI("", "user", "del", "-force", "bob")
			s.mustCLI("", "token", "create", "-user", "root-admin", "-name", "ci")
			s.mustCLI("", "session", "revoke", "-user", "root-admin")
			s.mustCLI("", "session", "revoke", "-all")

			got, err := log.Recent(context.Background(), audit.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range got {
				names = append(names, e.Event+" "+e.Target)
				if e.Actor != "unix:"+me.Username || e.Source != "cli" || e.Time.Before(before) {
					t.Errorf("event %+v: want actor unix:%s, source cli, a current time", e, me.Username)
				}
			}
			want := "all_sessions_revoked ,sessions_revoked root-admin,token_created root-admin,user_deleted bob,user_locked root-admin,user_unlocked bob,user_updated bob,user_locked bob,user_added bob,user_added root-admin"
			if strings.Join(names, ",") != want {
				t.Errorf("audit events:\n got %s\nwant %s", strings.Join(names, ","), want)
			}
			if len(got) > 6 && !strings.Contains(got[6].Detail, `groups "staff" -> "staff,admin"`) {
				t.Errorf("user set detail: got %q", got[6].Detail)
			}

			ht := filepath.Join(s.dir, "htpasswd")
			bh, _ := bcrypt.GenerateFromPassword([]byte("imported pass 1"), 10)
			if err := os.WriteFile(ht, []byte("carol:"+string(bh)+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			s.mustCLI("", "user", "import-htpasswd", ht)
			if ev, _ := log.Recent(context.Background(), audit.Filter{Event: "users_imported"}); len(ev) != 1 || ev[0].Detail != "import-htpasswd "+ht {
				t.Errorf("import event: got %+v", ev)
			}
			s.mustCLI("", "user", "del", "carol")

			out := s.mustCLI("", "user", "list")
			if !strings.Contains(out, "root-admin") || strings.Contains(out, "bob") {
				t.Errorf("user list after the changes:\n%s", out)
			}
			var u users.User
			if kind == "file" {
				f, err := users.OpenFile(filepath.Join(s.dir, "users.toml"), users.Limits{})
				if err != nil {
					t.Fatal(err)
				}
				e, _ := f.DB().Lookup("root-admin")
				u = e.User
			} else {
				ru, err := users.OpenRedis(context.Background(), rc, "story:", users.Limits{})
				if err != nil {
					t.Fatal(err)
				}
				e, _ := ru.DB().Lookup("root-admin")
				u = e.User
			}
			if u.Created.Before(before.Truncate(time.Second)) || u.Created.After(time.Now()) {
				t.Errorf("created: got %v, want the time of user add", u.Created)
			}
		})
	}
}
