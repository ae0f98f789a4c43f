package session

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// store is what the behaviour suite needs; every session store must pass
// testStore.
type store interface {
	Create(ctx context.Context, k Key, sess Session) error
	Get(ctx context.Context, k Key) (Session, bool, error)
	Touch(ctx context.Context, k Key, t time.Time) error
	Delete(ctx context.Context, k Key) error
	DeleteUser(ctx context.Context, user string) (int, error)
	DeleteAll(ctx context.Context) (int, error)
	List(ctx context.Context, user string) ([]Entry, error)
}

var _ store = (*Embedded)(nil)

// testKey returns a distinct key for a test label.
func testKey(label string) Key { return Key(sha256.Sum256([]byte(label))) }

// suiteBase is the time the suite's sessions are built around. It is close to
// the real clock and whole seconds, so stores that expire records by wall
// clock (Redis TTLs) and keep coarser times run the same body.
func suiteBase() time.Time { return time.Now().Truncate(time.Second) }

func newTestSession(user string, created time.Time) Session {
	return Session{
		User:        user,
		Created:     created,
		LastSeen:    created,
		Expires:     created.Add(12 * time.Hour),
		Idle:        time.Hour,
		IP:          "203.0.113.7",
		UserAgent:   "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
		Fingerprint: 0x1234_5678_9abc_def0,
	}
}

func mustCreate(tb testing.TB, s store, k Key, sess Session) {
	tb.Helper()
	if err := s.Create(context.Background(), k, sess); err != nil {
		tb.Fatalf("Create: %v", err)
	}
}

func mustGet(tb testing.TB, s store, k Key) (Session, bool) {
	tb.Helper()
	got, ok, err := s.Get(context.Background(), k)
	if err != nil {
		tb.Fatalf("Get: %v", err)
	}
	return got, ok
}

// sameSession fails unless got and want hold the same values (times by Equal).
func sameSession(tb testing.TB, got, want Session) {
	tb.Helper()
	if got.User != want.User || !got.Created.Equal(want.Created) || !got.LastSeen.Equal(want.LastSeen) ||
		!got.Expires.Equal(want.Expires) || got.Idle != want.Idle || got.Remember != want.Remember ||
		got.IP != want.IP || got.UserAgent != want.UserAgent || got.Fingerprint != want.Fingerprint ||
		!got.SecondFactor.Equal(want.SecondFactor) || !reflect.DeepEqual(got.External, want.External) {
		tb.Fatalf("session: got %+v (identity %+v), want %+v (identity %+v)", got, got.External, want, want.External)
	}
}

// headerOnly is a header-only identity at every limit but the group count.
func headerOnly() *External {
	return &External{Source: "oidc:corp", Email: "dora@example.com", DisplayName: "Dora Ext",
		Groups: []string{"staff", "eng"}}
}

func listKeys(tb testing.TB, s store, user string) []Key {
	tb.Helper()
	es, err := s.List(context.Background(), user)
	if err != nil {
		tb.Fatalf("List(%q): %v", user, err)
	}
	keys := make([]Key, len(es))
	for i, e := range es {
		keys[i] = e.Key
	}
	return keys
}

// testStore is the behaviour every session store must show. open returns an
// empty store that the suite may use until the test ends.
func testStore(t *testing.T, open func(t *testing.T) store) {
	ctx := context.Background()

	t.Run("create then get returns every field", func(t *testing.T) {
		s := open(t)
		base := suiteBase()
		want := newTestSession("alice", base)
		want.Remember = true
		want.LastSeen = base.Add(time.Second)
		mustCreate(t, s, testKey("a"), want)
		got, ok := mustGet(t, s, testKey("a"))
		if !ok {
			t.Fatal("Get after Create: got not found, want found")
		}
		sameSession(t, got, want)
	})

	t.Run("a second factor time survives create and get", func(t *testing.T) {
		s := open(t)
		base := suiteBase()
		want := newTestSession("alice", base)
		want.Remember = true
		want.SecondFactor = base.Add(-time.Minute)
		mustCreate(t, s, testKey("mfa"), want)
		plain := newTestSession("bob", base)
		mustCreate(t, s, testKey("plain"), plain)
		got, _ := mustGet(t, s, testKey("mfa"))
		sameSession(t, got, want)
		got, _ = mustGet(t, s, testKey("plain"))
		if !got.SecondFactor.IsZero() {
			t.Fatalf("SecondFactor of a password-only session: got %v, want zero", got.SecondFactor)
		}
	})

	t.Run("a header-only identity survives create, get, list and delete user", func(t *testing.T) {
		s := open(t)
		base := suiteBase()
		want := newTestSession("dora", base)
		want.Fingerprint = 0
		want.External = headerOnly()
		mustCreate(t, s, testKey("ext"), want)
		withFactor := newTestSession("erin", base)
		withFactor.SecondFactor = base.Add(-time.Minute)
		withFactor.External = &External{Source: "oidc:other"}
		mustCreate(t, s, testKey("ext2"), withFactor)
		mustCreate(t, s, testKey("plain"), newTestSession("bob", base))
		got, _ := mustGet(t, s, testKey("ext"))
		sameSession(t, got, want)
		got, _ = mustGet(t, s, testKey("ext2"))
		sameSession(t, got, withFactor)
		if got, _ = mustGet(t, s, testKey("plain")); got.External != nil {
			t.Fatalf("External of a local user's session: got %+v, want nil", got.External)
		}
		es, err := s.List(ctx, "dora")
		if err != nil || len(es) != 1 || !reflect.DeepEqual(es[0].Session.External, want.External) {
			t.Fatalf("List(dora): got %+v, %v; want the one header-only session", es, err)
		}
		if n, err := s.DeleteUser(ctx, "dora"); err != nil || n != 1 {
			t.Fatalf("DeleteUser(dora): got %d, %v; want 1, nil", n, err)
		}
		if _, ok := mustGet(t, s, testKey("ext")); ok {
			t.Fatal("header-only session after DeleteUser: got found, want not found")
		}
	})

	t.Run("a header-only identity past the limits is refused", func(t *testing.T) {
		s := open(t)
		long := func(n int) string { return strings.Repeat("g", n) }
		many := make([]string, MaxGroups+1)
		for i := range many {
			many[i] = fmt.Sprintf("g%d", i)
		}
		for name, e := range map[string]*External{
			"no source":        {},
			"long source":      {Source: long(MaxSource + 1)},
			"long email":       {Source: "oidc:a", Email: long(MaxText + 1)},
			"long name":        {Source: "oidc:a", DisplayName: long(MaxText + 1)},
			"too many groups":  {Source: "oidc:a", Groups: many},
			"long group":       {Source: "oidc:a", Groups: []string{long(MaxGroup + 1)}},
			"empty group name": {Source: "oidc:a", Groups: []string{""}},
		} {
			sess := newTestSession("dora", suiteBase())
			sess.External = e
			if err := s.Create(ctx, testKey(name), sess); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: Create: got %v, want ErrInvalid", name, err)
			}
		}
		// At the limits it fits, in a frame too.
		at := make([]string, MaxGroups)
		for i := range at {
			at[i] = fmt.Sprintf("%0*d", MaxGroup, i)
		}
		sess := newTestSession(long(MaxUser), suiteBase())
		sess.IP, sess.UserAgent = long(MaxIP), long(MaxUserAgent)
		sess.SecondFactor = suiteBase()
		sess.External = &External{Source: long(MaxSource), Email: long(MaxText), DisplayName: long(MaxText), Groups: at}
		mustCreate(t, s, testKey("max"), sess)
		got, _ := mustGet(t, s, testKey("max"))
		sameSession(t, got, sess)
	})

	t.Run("get of an unknown key is not found", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, testKey("a"), newTestSession("alice", suiteBase()))
		if _, ok := mustGet(t, s, testKey("b")); ok {
			t.Fatal("Get(unknown): got found, want not found")
		}
	})

	t.Run("an idle-expired session is never valid", func(t *testing.T) {
		s := open(t)
		base := suiteBase()
		sess := newTestSession("alice", base.Add(-2*time.Hour))
		mustCreate(t, s, testKey("a"), sess)
		if got, ok := mustGet(t, s, testKey("a")); ok && got.Valid(base) {
			t.Fatalf("idle-expired session: got valid %+v, want invalid or not found", got)
		}
	})

	t.Run("create rejects unusable sessions", func(t *testing.T) {
		s := open(t)
		base := suiteBase()
		tests := []struct {
			name   string
			change func(*Session)
		}{
			{"no user", func(s *Session) { s.User = "" }},
			{"huge user", func(s *Session) { s.User = strings.Repeat("u", MaxUser+1) }},
			{"no idle timeout", func(s *Session) { s.Idle = 0 }},
			{"negative idle timeout", func(s *Session) { s.Idle = -time.Second }},
			{"no expiry", func(s *Session) { s.Expires = time.Time{} }},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				sess := newTestSession("alice", base)
				tt.change(&sess)
				k := testKey(fmt.Sprint("bad", i))
				err := s.Create(ctx, k, sess)
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("Create: got %v, want ErrInvalid", err)
				}
				if _, ok := mustGet(t, s, k); ok {
					t.Fatal("rejected session: got found, want not found")
				}
			})
		}
	})

	t.Run("ip and user agent are capped", func(t *testing.T) {
		s := open(t)
		sess := newTestSession("alice", suiteBase())
		sess.IP = strings.Repeat("1", 200)
		sess.UserAgent = strings.Repeat("x", 1000)
		mustCreate(t, s, testKey("a"), sess)
		got, _ := mustGet(t, s, testKey("a"))
		if len(got.IP) != MaxIP || len(got.UserAgent) != MaxUserAgent {
			t.Fatalf("lengths of ip, user agent: got %d, %d, want %d, %d", len(got.IP), len(got.UserAgent), MaxIP, MaxUserAgent)
		}
	})

	t.Run("touch raises last seen and never moves expiry", func(t *testing.T) {
		s := open(t)
		base := suiteBase()
		sess := newTestSession("alice", base)
		mustCreate(t, s, testKey("a"), sess)
		steps := []struct {
			touch time.Time
			want  time.Time
		}{
			{base.Add(10 * time.Minute), base.Add(10 * time.Minute)},
			{base.Add(5 * time.Minute), base.Add(10 * time.Minute)}, // never lowered
			{base.Add(50 * time.Minute), base.Add(50 * time.Minute)},
			{base.Add(50 * time.Minute), base.Add(50 * time.Minute)},
		}
		for _, st := range steps {
			if err := s.Touch(ctx, testKey("a"), st.touch); err != nil {
				t.Fatalf("Touch: %v", err)
			}
			got, _ := mustGet(t, s, testKey("a"))
			if !got.LastSeen.Equal(st.want) {
				t.Fatalf("LastSeen after Touch(%v): got %v, want %v", st.touch, got.LastSeen, st.want)
			}
			if !got.Expires.Equal(sess.Expires) {
				t.Fatalf("Expires after Touch: got %v, want %v", got.Expires, sess.Expires)
			}
		}
	})

	t.Run("touch does not revive an idle-expired session", func(t *testing.T) {
		s := open(t)
		base := suiteBase()
		sess := newTestSession("alice", base.Add(-90*time.Minute))
		mustCreate(t, s, testKey("a"), sess)
		if err := s.Touch(ctx, testKey("a"), base); err != nil {
			t.Fatalf("Touch: %v", err)
		}
		if got, ok := mustGet(t, s, testKey("a")); ok && got.Valid(base) {
			t.Fatalf("after Touch of an idle-expired session: got valid, LastSeen %v", got.LastSeen)
		}
	})

	t.Run("touch of an unknown key creates nothing", func(t *testing.T) {
		s := open(t)
		if err := s.Touch(ctx, testKey("ghost"), suiteBase()); err != nil {
			t.Fatalf("Touch(unknown): got %v, want nil", err)
		}
		if _, ok := mustGet(t, s, testKey("ghost")); ok {
			t.Fatal("Get after Touch(unknown): got found, want not found")
		}
	})

	t.Run("delete removes one session", func(t *testing.T) {
		s := open(t)
		base := suiteBase()
		mustCreate(t, s, testKey("a"), newTestSession("alice", base))
		mustCreate(t, s, testKey("b"), newTestSession("alice", base))
		if err := s.Delete(ctx, testKey("a")); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, ok := mustGet(t, s, testKey("a")); ok {
			t.Fatal("deleted session: got found, want not found")
		}
		if _, ok := mustGet(t, s, testKey("b")); !ok {
			t.Fatal("other session: got not found, want found")
		}
		if err := s.Delete(ctx, testKey("a")); err != nil {
			t.Fatalf("Delete of a missing session: got %v, want nil", err)
		}
	})

	t.Run("delete user removes exactly that user's sessions", func(t *testing.T) {
		s := open(t)
		base := suiteBase()
		for i, u := range []string{"alice", "bob", "alice", "carol", "alice", "alice2"} {
			mustCreate(t, s, testKey(fmt.Sprint(i)), newTestSession(u, base.Add(time.Duration(i)*time.Second)))
		}
		tests := []struct {
			user string
			want int
			left int
		}{
			{"alice", 3, 3},
			{"alice", 0, 3},
			{"nobody", 0, 3},
			{"ALICE2", 0, 3}, // names are compared exactly; canonical forms are the caller's job
			{"bob", 1, 2},
		}
		for _, tt := range tests {
			n, err := s.DeleteUser(ctx, tt.user)
			if err != nil {
				t.Fatalf("DeleteUser(%q): %v", tt.user, err)
			}
			if n != tt.want {
				t.Fatalf("DeleteUser(%q): got %d, want %d", tt.user, n, tt.want)
			}
			if got := len(listKeys(t, s, "")); got != tt.left {
				t.Fatalf("sessions left after DeleteUser(%q): got %d, want %d", tt.user, got, tt.left)
			}
		}
		for _, i := range []int{0, 1, 2, 4} {
			if _, ok := mustGet(t, s, testKey(fmt.Sprint(i))); ok {
				t.Fatalf("session %d of a deleted user: got found, want not found", i)
			}
		}
		if _, ok := mustGet(t, s, testKey("5")); !ok {
			t.Fatal("alice2's session: got not found, want found")
		}
	})

	t.Run("delete all", func(t *testing.T) {
		s := open(t)
		base := suiteBase()
		for i := range 5 {
			mustCreate(t, s, testKey(fmt.Sprint(i)), newTestSession(fmt.Sprint("u", i%2), base))
		}
		n, err := s.DeleteAll(ctx)
		if err != nil || n != 5 {
			t.Fatalf("DeleteAll: got %d, %v, want 5, nil", n, err)
		}
		if got := listKeys(t, s, ""); len(got) != 0 {
			t.Fatalf("List after DeleteAll: got %d sessions, want 0", len(got))
		}
		if n, err = s.DeleteAll(ctx); err != nil || n != 0 {
			t.Fatalf("second DeleteAll: got %d, %v, want 0, nil", n, err)
		}
		mustCreate(t, s, testKey("new"), newTestSession("alice", base))
		if _, ok := mustGet(t, s, testKey("new")); !ok {
			t.Fatal("Create after DeleteAll: got not found, want found")
		}
	})

	t.Run("list filters by user and sorts by creation", func(t *testing.T) {
		s := open(t)
		base := suiteBase()
		// Created out of order on purpose.
		order := []struct {
			label, user string
			age         time.Duration
		}{
			{"k3", "alice", 1 * time.Minute},
			{"k1", "alice", 3 * time.Minute},
			{"k2", "bob", 2 * time.Minute},
			{"k4", "alice", 0},
		}
		for _, o := range order {
			mustCreate(t, s, testKey(o.label), newTestSession(o.user, base.Add(-o.age)))
		}
		tests := []struct {
			user string
			want []string
		}{
			{"", []string{"k1", "k2", "k3", "k4"}},
			{"alice", []string{"k1", "k3", "k4"}},
			{"bob", []string{"k2"}},
			{"nobody", nil},
		}
		for _, tt := range tests {
			t.Run("user "+tt.user, func(t *testing.T) {
				es, err := s.List(ctx, tt.user)
				if err != nil {
					t.Fatal(err)
				}
				if len(es) != len(tt.want) {
					t.Fatalf("List(%q): got %d entries, want %d", tt.user, len(es), len(tt.want))
				}
				for i, e := range es {
					if e.Key != testKey(tt.want[i]) {
						t.Fatalf("List(%q)[%d]: got key %s, want %s", tt.user, i, e.Key.Short(), testKey(tt.want[i]).Short())
					}
					if tt.user != "" && e.Session.User != tt.user {
						t.Fatalf("List(%q)[%d].User: got %q", tt.user, i, e.Session.User)
					}
				}
			})
		}
	})
}
