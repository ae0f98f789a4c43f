package mfa

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authd/authd/authd/internal/redistest"
)

var testRedis redistest.Server

func TestMain(m *testing.M) { os.Exit(redistest.Run(m, &testRedis)) }

func TestMatchStepWindow(t *testing.T) {
	secret, uri, err := NewSecret("authd test", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(uri, "otpauth://totp/") || !strings.Contains(uri, "secret="+secret) {
		t.Fatalf("uri: got %q", uri)
	}
	now := time.Unix(1_800_000_015, 0)
	step := now.Unix() / Period
	for _, tt := range []struct {
		name  string
		at    time.Time
		match bool
	}{
		{"this step", now, true},
		{"one step before", now.Add(-Period * time.Second), true},
		{"one step after", now.Add(Period * time.Second), true},
		{"two steps before", now.Add(-2 * Period * time.Second), false},
		{"two steps after", now.Add(2 * Period * time.Second), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, err := Code(secret, tt.at)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := MatchStep(secret, code, now)
			if ok != tt.match {
				t.Fatalf("MatchStep: got %v, want %v", ok, tt.match)
			}
			if ok && got != tt.at.Unix()/Period {
				t.Fatalf("step: got %d, want %d (now %d)", got, tt.at.Unix()/Period, step)
			}
		})
	}
	for _, bad := range []string{"", "12345", "1234567", "12345a", "１２３４５６"} {
		if _, ok := MatchStep(secret, bad, now); ok {
			t.Fatalf("MatchStep(%q): got match, want none", bad)
		}
	}
}

// testReplay is the behaviour of every Replay.
func testReplay(t *testing.T, a, b Replay) {
	ctx := context.Background()
	secret, _, _ := NewSecret("authd", "alice")
	f := &Factors{TOTP: &TOTP{Secret: secret}}
	now := time.Now()
	code, _ := Code(secret, now)
	ok, err := CheckTOTP(ctx, a, "alice", f, code, now)
	if err != nil || !ok {
		t.Fatalf("first use: got %v, %v; want true", ok, err)
	}
	ok, err = CheckTOTP(ctx, b, "alice", f, code, now)
	if err != nil || ok {
		t.Fatalf("reuse (other instance): got %v, %v; want false", ok, err)
	}
	ok, _ = CheckTOTP(ctx, a, "bob", &Factors{TOTP: &TOTP{Secret: secret}}, code, now)
	if !ok {
		t.Fatal("same code for another user: got refused, want accepted")
	}
	wrong := "000000"
	if wrong == code {
		wrong = "111111"
	}
	if ok, _ := CheckTOTP(ctx, a, "carol", f, wrong, now); ok {
		t.Fatal("wrong code: got accepted")
	}
	// Concurrent uses of one code: exactly one wins.
	next, _ := Code(secret, now.Add(Period*time.Second))
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rp := a
			if i%2 == 1 {
				rp = b
			}
			if ok, _ := CheckTOTP(ctx, rp, "dave", f, next, now); ok {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("concurrent uses of one code: got %d accepted, want 1", wins)
	}
}

func TestReplayFile(t *testing.T) {
	dir := t.TempDir()
	a, err := OpenReplayFile(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	testReplay(t, a, a)
	// A restart keeps the record.
	b, err := OpenReplayFile(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := b.Claim(context.Background(), "x", time.Minute); !ok {
		t.Fatal("new key after reopen: got used")
	}
	c, _ := OpenReplayFile(dir, nil)
	if ok, _ := c.Claim(context.Background(), "x", time.Minute); ok {
		t.Fatal("key claimed before the restart: got fresh, want used")
	}
	if fi, err := os.Stat(filepath.Join(dir, ReplayFileName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("replay file: %v, %v; want mode 0600", fi, err)
	}
}

func TestReplayRedisTwoNodes(t *testing.T) {
	c, prefix := testRedis.Open(t)
	c2, _ := testRedis.Open(t)
	testReplay(t, NewRedisReplay(c, prefix), NewRedisReplay(c2, prefix))
}

func TestRecoveryCodes(t *testing.T) {
	codes, hashes, err := NewRecoveryCodes()
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) != RecoveryCount || len(hashes) != RecoveryCount {
		t.Fatalf("got %d codes, %d hashes; want %d", len(codes), len(hashes), RecoveryCount)
	}
	f := &Factors{Recovery: hashes}
	for _, h := range hashes {
		for _, c := range codes {
			if strings.Contains(h, c) {
				t.Fatal("a stored hash contains its code")
			}
		}
	}
	if !UseRecovery(f, strings.ToUpper(codes[3])) {
		t.Fatal("first use (upper case): got refused")
	}
	if UseRecovery(f, codes[3]) {
		t.Fatal("second use: got accepted")
	}
	if len(f.Recovery) != RecoveryCount-1 {
		t.Fatalf("left: got %d, want %d", len(f.Recovery), RecoveryCount-1)
	}
	if UseRecovery(f, "aaaa-aaaa-aaaa") || UseRecovery(f, "") {
		t.Fatal("unknown code: got accepted")
	}
	if !UseRecovery(f, strings.ReplaceAll(codes[0], "-", " ")) {
		t.Fatal("code typed with spaces: got refused")
	}
}

func testStore(t *testing.T, st Store) {
	ctx := context.Background()
	if f, err := st.Get(ctx, "alice"); err != nil || f.Enrolled() {
		t.Fatalf("Get(unknown): %+v, %v", f, err)
	}
	err := st.Update(ctx, "alice", func(f *Factors) error {
		f.TOTP = &TOTP{Secret: "JBSWY3DPEHPK3PXP", Added: time.Now().UTC()}
		f.Recovery = []string{"h1", "h2"}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := st.Get(ctx, "alice")
	if err != nil || f.TOTP == nil || f.TOTP.Secret != "JBSWY3DPEHPK3PXP" || len(f.Recovery) != 2 {
		t.Fatalf("Get after Update: %+v, %v", f, err)
	}
	boom := errors.New("boom")
	if err := st.Update(ctx, "alice", func(f *Factors) error { f.TOTP = nil; return boom }); !errors.Is(err, boom) {
		t.Fatalf("Update with failing fn: got %v, want boom", err)
	}
	if f, _ := st.Get(ctx, "alice"); f.TOTP == nil {
		t.Fatal("a failed Update changed the store")
	}
	all, err := st.Users(ctx)
	if err != nil || len(all) != 1 || all["alice"].TOTP == nil {
		t.Fatalf("Users: %v, %v", all, err)
	}
	had, err := Reset(ctx, st, "alice")
	if err != nil || !had {
		t.Fatalf("Reset: %v, %v", had, err)
	}
	if f, _ := st.Get(ctx, "alice"); f.Enrolled() || len(f.Recovery) > 0 {
		t.Fatalf("after Reset: %+v", f)
	}
	if all, _ := st.Users(ctx); len(all) != 0 {
		t.Fatalf("Users after Reset: %v", all)
	}
	// Concurrent updates lose nothing.
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := st.Update(ctx, "bob", func(f *Factors) error {
				f.Recovery = append(f.Recovery, string(rune('a'+i)))
				return nil
			}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if f, _ := st.Get(ctx, "bob"); len(f.Recovery) != 10 {
		t.Fatalf("concurrent updates: got %d entries, want 10", len(f.Recovery))
	}
}

func TestFileStore(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	testStore(t, st)
	fi, err := os.Stat(st.Path())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("factor file: %v, %v; want mode 0600", fi, err)
	}
	if err := os.WriteFile(st.Path(), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(context.Background(), "bob"); err == nil {
		t.Fatal("Get on a broken file: got no error")
	}
}

func TestRedisStore(t *testing.T) {
	c, prefix := testRedis.Open(t)
	testStore(t, NewRedis(c, prefix))
}

func TestQR(t *testing.T) {
	_, uri, _ := NewSecret("authd", "alice")
	png, err := QRPNG(uri, 4)
	if err != nil || len(png) < 100 || string(png[1:4]) != "PNG" {
		t.Fatalf("QRPNG: %d bytes, %v", len(png), err)
	}
	svg, err := QRSVG(uri, "QR <code>")
	if err != nil || !strings.HasPrefix(svg, "<svg") || !strings.Contains(svg, "QR &lt;code&gt;") || strings.Count(svg, "h1v1") < 100 {
		t.Fatalf("QRSVG: %v, %.200s", err, svg)
	}
}

func TestFileStoreWritesOnlyChanges(t *testing.T) {
	dir := t.TempDir()
	st, _ := OpenFile(dir)
	if had, err := Reset(context.Background(), st, "nobody"); err != nil || had {
		t.Fatalf("reset of a user without factors: %v, %v", had, err)
	}
	if _, err := os.Stat(st.Path()); !os.IsNotExist(err) {
		t.Fatalf("a no-op reset created %s (err %v)", st.Path(), err)
	}
}
