package account

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authd/authd/authd/internal/redistest"
)

var redisSrv redistest.Server

func TestMain(m *testing.M) { os.Exit(redistest.Run(m, &redisSrv)) }

// clock is a settable test clock.
type clock struct{ t atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.t.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) now() time.Time          { return time.Unix(0, c.t.Load()).UTC() }
func (c *clock) advance(d time.Duration) { c.t.Add(int64(d)) }

type backendCase struct {
	name string
	open func(tb testing.TB, now func() time.Time) (Backend, func() []byte)
}

// backends are the implementations every behaviour test runs against; the
// second function returns everything the backend stored, for greps.
func backends() []backendCase {
	return []backendCase{
		{"file", func(tb testing.TB, now func() time.Time) (Backend, func() []byte) {
			path := filepath.Join(tb.TempDir(), FileName)
			return NewFile(path, now), func() []byte { b, _ := os.ReadFile(path); return b }
		}},
		{"redis", func(tb testing.TB, now func() time.Time) (Backend, func() []byte) {
			c, prefix := redisSrv.OpenDeclared(tb)
			r := NewRedis(c, prefix, now)
			return r, func() []byte {
				var out []byte
				ctx := context.Background()
				keys, err := c.Keys(ctx, prefix+"*").Result()
				if err != nil {
					tb.Fatal(err)
				}
				for _, k := range keys {
					out = append(out, k...)
					m, err := c.HGetAll(ctx, k).Result()
					if err != nil {
						tb.Fatal(err)
					}
					for f, v := range m {
						out = append(out, f+"="+v+"\n"...)
					}
				}
				return out
			}
		}},
	}
}

func eachBackend(t *testing.T, fn func(t *testing.T, s *Store, clk *clock, dump func() []byte)) {
	for _, bc := range backends() {
		t.Run(bc.name, func(t *testing.T) {
			clk := newClock()
			b, dump := bc.open(t, clk.now)
			fn(t, New(b, clk.now), clk, dump)
		})
	}
}

func TestInviteSingleUse(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store, clk *clock, dump func() []byte) {
		ctx := context.Background()
		token, inv, err := s.CreateInvite(ctx, Invite{User: "bob", Groups: []string{"staff"}, Email: "bob@example.com", By: "unix:root"}, 72*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if len(token) != 43 || len(inv.ID) != 12 || strings.Contains(token, inv.ID) {
			t.Fatalf("got token %q id %q, want a 43-character token and a 12-character ID not taken from it", token, inv.ID)
		}
		if got := dump(); len(got) == 0 || strings.Contains(string(got), token) {
			t.Fatalf("stored data holds the token (or nothing): %s", got)
		}
		if !strings.Contains(string(dump()), Key(token)) {
			t.Fatalf("stored data lacks the token's hash")
		}
		peek, err := s.Invite(ctx, token)
		if err != nil || peek.User != "bob" || peek.Groups[0] != "staff" {
			t.Fatalf("peek: got %+v, %v", peek, err)
		}
		got, err := s.TakeInvite(ctx, token)
		if err != nil || got.ID != inv.ID || got.Email != "bob@example.com" {
			t.Fatalf("take: got %+v, %v", got, err)
		}
		if _, err := s.TakeInvite(ctx, token); !errors.Is(err, ErrInvalid) {
			t.Fatalf("second take: got %v, want ErrInvalid", err)
		}
		if _, err := s.Invite(ctx, token); !errors.Is(err, ErrInvalid) {
			t.Fatalf("peek after take: got %v, want ErrInvalid", err)
		}
		for _, bad := range []string{"", "x", Key(token), token + "A", strings.Repeat("A", 43)} {
			if _, err := s.TakeInvite(ctx, bad); !errors.Is(err, ErrInvalid) {
				t.Errorf("take %q: got %v, want ErrInvalid", bad, err)
			}
		}
	})
}

func TestInviteConcurrentTakeOnce(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store, clk *clock, dump func() []byte) {
		ctx := context.Background()
		token, _, err := s.CreateInvite(ctx, Invite{}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		rtoken, _, err := s.CreateReset(ctx, "alice", "admin", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		var wins, rwins atomic.Int32
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				if _, err := s.TakeInvite(ctx, token); err == nil {
					wins.Add(1)
				} else if !errors.Is(err, ErrInvalid) {
					t.Error(err)
				}
				if _, err := s.TakeReset(ctx, rtoken); err == nil {
					rwins.Add(1)
				} else if !errors.Is(err, ErrInvalid) {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 || rwins.Load() != 1 {
			t.Fatalf("got %d invite and %d reset winners of 16 concurrent takes, want 1 and 1", wins.Load(), rwins.Load())
		}
	})
}

func TestExpiry(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store, clk *clock, dump func() []byte) {
		ctx := context.Background()
		token, _, err := s.CreateInvite(ctx, Invite{}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		rtoken, _, err := s.CreateReset(ctx, "alice", "", 10*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		clk.advance(10 * time.Minute)
		if _, err := s.Reset(ctx, rtoken); !errors.Is(err, ErrInvalid) {
			t.Fatalf("reset at its expiry: got %v, want ErrInvalid", err)
		}
		if _, err := s.TakeReset(ctx, rtoken); !errors.Is(err, ErrInvalid) {
			t.Fatalf("take reset at its expiry: got %v, want ErrInvalid", err)
		}
		if _, err := s.Invite(ctx, token); err != nil {
			t.Fatalf("invite before its expiry: %v", err)
		}
		clk.advance(50*time.Minute + time.Second)
		if _, err := s.TakeInvite(ctx, token); !errors.Is(err, ErrInvalid) {
			t.Fatalf("invite after expiry: got %v, want ErrInvalid", err)
		}
		if l, err := s.Invites(ctx); err != nil || len(l) != 0 {
			t.Fatalf("list after expiry: got %v, %v; want none", l, err)
		}
		if _, _, err := s.CreateInvite(ctx, Invite{}, 0); err == nil {
			t.Fatal("an invite without expiry was accepted")
		}
	})
}

func TestListRevoke(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store, clk *clock, dump func() []byte) {
		ctx := context.Background()
		t1, a, _ := s.CreateInvite(ctx, Invite{Email: "a@example.com"}, time.Hour)
		clk.advance(time.Second)
		t2, b, _ := s.CreateInvite(ctx, Invite{Email: "b@example.com"}, time.Hour)
		l, err := s.Invites(ctx)
		if err != nil || len(l) != 2 || l[0].ID != a.ID || l[1].ID != b.ID {
			t.Fatalf("got %+v, %v; want a then b", l, err)
		}
		if err := s.RevokeInvite(ctx, strings.ToUpper(a.ID)); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeInvite(ctx, a.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second revoke: got %v, want ErrNotFound", err)
		}
		if err := s.RevokeInvite(ctx, ""); !errors.Is(err, ErrNotFound) {
			t.Fatalf("revoke of empty ID: got %v, want ErrNotFound", err)
		}
		if _, err := s.TakeInvite(ctx, t1); !errors.Is(err, ErrInvalid) {
			t.Fatalf("revoked invite: got %v, want ErrInvalid", err)
		}
		if _, err := s.TakeInvite(ctx, t2); err != nil {
			t.Fatalf("other invite: %v", err)
		}
	})
}

func TestNewResetEndsOlder(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store, clk *clock, dump func() []byte) {
		ctx := context.Background()
		old, _, _ := s.CreateReset(ctx, "alice", "", time.Hour)
		other, _, _ := s.CreateReset(ctx, "bob", "", time.Hour)
		fresh, r, err := s.CreateReset(ctx, "alice", "admin", time.Hour)
		if err != nil || r.User != "alice" || r.By != "admin" {
			t.Fatalf("got %+v, %v", r, err)
		}
		if strings.Contains(string(dump()), fresh) {
			t.Fatal("stored data holds the reset token")
		}
		if _, err := s.TakeReset(ctx, old); !errors.Is(err, ErrInvalid) {
			t.Fatalf("older reset: got %v, want ErrInvalid", err)
		}
		for _, tok := range []string{fresh, other} {
			if _, err := s.TakeReset(ctx, tok); err != nil {
				t.Fatalf("reset: %v", err)
			}
		}
	})
}

func TestRequests(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store, clk *clock, dump func() []byte) {
		ctx := context.Background()
		a, err := s.AddRequest(ctx, Request{User: "carol", Email: "c@example.com", Hash: "$argon2id$x"}, 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.AddRequest(ctx, Request{User: "carol"}, time.Hour); !errors.Is(err, ErrPending) {
			t.Fatalf("second request for carol: got %v, want ErrPending", err)
		}
		clk.advance(time.Second)
		b, _ := s.AddRequest(ctx, Request{User: "dave"}, 24*time.Hour)
		l, err := s.Requests(ctx)
		if err != nil || len(l) != 2 || l[0].User != "carol" || l[1].User != "dave" {
			t.Fatalf("got %+v, %v", l, err)
		}
		fail := errors.New("name taken")
		if _, err := s.Approve(ctx, a.ID, func(Request) error { return fail }); !errors.Is(err, fail) {
			t.Fatalf("failed approval: got %v", err)
		}
		var made []string
		var wg sync.WaitGroup
		var mu sync.Mutex
		for range 8 {
			wg.Go(func() {
				_, err := s.Approve(ctx, a.ID, func(r Request) error {
					mu.Lock()
					made = append(made, r.User+" "+r.Hash)
					mu.Unlock()
					return nil
				})
				if err != nil && !errors.Is(err, ErrNotFound) {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if len(made) != 1 || made[0] != "carol $argon2id$x" {
			t.Fatalf("concurrent approvals made %q, want carol once", made)
		}
		if r, err := s.Reject(ctx, b.ID); err != nil || r.User != "dave" {
			t.Fatalf("reject: got %+v, %v", r, err)
		}
		if _, err := s.Reject(ctx, b.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second reject: got %v, want ErrNotFound", err)
		}
		clk.advance(25 * time.Hour)
		if l, _ := s.Requests(ctx); len(l) != 0 {
			t.Fatalf("expired requests listed: %+v", l)
		}
	})
}

// TestFileSharedByTwoStores is the CLI and the daemon: two Stores on one
// file, each taking and creating, see each other's changes and never take
// one link twice.
func TestFileSharedByTwoStores(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	a, b := New(NewFile(path, nil), nil), New(NewFile(path, nil), nil)
	ctx := context.Background()
	var tokens []string
	for range 20 {
		tok, _, err := a.CreateInvite(ctx, Invite{}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, tok)
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for _, tok := range tokens {
		for _, s := range []*Store{a, b} {
			wg.Go(func() {
				if _, err := s.TakeInvite(ctx, tok); err == nil {
					wins.Add(1)
				}
			})
		}
		wg.Go(func() {
			if _, _, err := b.CreateInvite(ctx, Invite{}, time.Hour); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 20 {
		t.Fatalf("got %d successful takes of 20 invites taken twice each, want 20", wins.Load())
	}
	if l, _ := a.Invites(ctx); len(l) != 20 {
		t.Fatalf("got %d invites left, want the 20 made concurrently", len(l))
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode: got %v, %v; want 0600", fi.Mode(), err)
	}
}

func TestEmailAllowed(t *testing.T) {
	domains := []string{"example.com"}
	for addr, want := range map[string]bool{
		"a@example.com": true, "A@Example.COM": true, "a@sub.example.com": false, "a@example.com.evil": false,
		"a@evil.com": false, "Bob <a@example.com>": false, "a@evil.com, b@example.com": false, "": false,
		"a@example.com\r\nBcc: x@evil.com": false, "a@evil.com@example.com": false,
	} {
		if got := EmailAllowed(addr, domains); got != want {
			t.Errorf("EmailAllowed(%q): got %v, want %v", addr, got, want)
		}
	}
}

func TestFormatMessage(t *testing.T) {
	m := InviteMessage("bob@example.com", "Example\r\nBcc: evil@example.net", "https://app.example.com/authd/invite/TOKEN", time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC))
	out := string(format("Example <authd@example.com>", "bob@example.com", m, time.Unix(0, 0)))
	head, body, ok := strings.Cut(out, "\r\n\r\n")
	if !ok {
		t.Fatalf("no header/body split: %q", out)
	}
	if strings.Contains(head, "\r\nBcc:") {
		t.Fatalf("a subject added a header: %q", head)
	}
	if !regexp.MustCompile(`\r\nMessage-ID: <[0-9a-f]{24}@example\.com>\r\n`).MatchString(head) {
		t.Errorf("bad Message-ID: %q", head)
	}
	for _, want := range []string{"From: Example <authd@example.com>\r\n", "To: bob@example.com\r\n", "Content-Type: text/plain; charset=utf-8\r\n"} {
		if !strings.Contains(head, want) {
			t.Errorf("header lacks %q: %q", want, head)
		}
	}
	if !strings.Contains(body, "https://app.example.com/authd/invite/TOKEN\r\n") || !strings.Contains(body, "2026-01-05 10:00 UTC") {
		t.Errorf("body lacks the link or the expiry: %q", body)
	}
	if strings.Contains(strings.ReplaceAll(body, "\r\n", ""), "\n") {
		t.Errorf("body has bare LF: %q", body)
	}
}
