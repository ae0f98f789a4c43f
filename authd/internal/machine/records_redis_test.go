package machine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestRedisRecordsShared: tokens and keys written through one instance's view
// authenticate on another's after its reload, and a revocation there is
// refused after the next reload.
func TestRedisRecordsShared(t *testing.T) {
	c, prefix := openRedis(t)
	ctx := context.Background()
	a, err := OpenRedisRecords(ctx, c, prefix)
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenRedisRecords(ctx, c, prefix)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var token, id string
	err = EditRedis(ctx, c, prefix, func(r *Records) error {
		tok, rec, err := NewToken("alice", "ci", now, time.Hour)
		token, id = tok, rec.ID
		r.Tokens = append(r.Tokens, rec)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	vb := NewVerifier(b, NewMemoryNonces(0, 0, time.Now), 0, time.Now)
	auth := func() (string, error) {
		u, _, err := vb.Authenticate(ctx, Request{Method: "GET", URI: "/", Host: "h", Authorization: "Bearer " + token})
		return u, err
	}
	if _, err := auth(); err == nil {
		t.Fatal("b knew the token before reloading")
	}
	if changed, err := b.Reload(ctx); !changed || err != nil {
		t.Fatalf("reload: changed %v, %v", changed, err)
	}
	if u, err := auth(); u != "alice" || err != nil {
		t.Fatalf("after reload: %q, %v", u, err)
	}
	if changed, _ := b.Reload(ctx); changed {
		t.Error("a reload without an edit reported a change")
	}
	if len(a.Records().Tokens) != 0 {
		t.Error("a changed without a reload")
	}
	err = EditRedis(ctx, c, prefix, func(r *Records) error { r.Tokens = r.Tokens[:0]; return nil })
	if err != nil {
		t.Fatal(err)
	}
	b.Reload(ctx)
	if _, err := auth(); err == nil {
		t.Errorf("revoked token %s still accepted", id)
	}
}

func TestRedisRecordsRefuseBadEdits(t *testing.T) {
	c, prefix := openRedis(t)
	ctx := context.Background()
	if err := EditRedis(ctx, c, prefix, func(r *Records) error {
		r.Tokens = append(r.Tokens, Token{ID: "not hex", User: "alice"})
		return nil
	}); err == nil {
		t.Fatal("an invalid record was written")
	}
	if n, _ := c.Exists(ctx, prefix+"machine").Result(); n != 0 {
		t.Error("a refused edit left data behind")
	}
	c.Set(ctx, prefix+"machine", `{"tokens":[],"keys":[],"extra":1}`, 0)
	c.Incr(ctx, prefix+"machine:v")
	_, err := OpenRedisRecords(ctx, c, prefix)
	if err == nil || !strings.Contains(err.Error(), "extra") {
		t.Errorf("broken document: got %v, want an error naming the unknown key", err)
	}
}

func TestRedisRecordsConcurrentEdits(t *testing.T) {
	c, prefix := openRedis(t)
	ctx := context.Background()
	done := make(chan error, 10)
	for i := 0; i < 10; i++ {
		go func() {
			done <- EditRedis(ctx, c, prefix, func(r *Records) error {
				_, rec, err := NewToken("alice", "t", time.Now(), time.Hour)
				r.Tokens = append(r.Tokens, rec)
				return err
			})
		}()
	}
	for i := 0; i < 10; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	r, err := OpenRedisRecords(ctx, c, prefix)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(r.Records().Tokens); n != 10 {
		t.Errorf("tokens = %d, want 10", n)
	}
}

// TestRedisRecordsBoundedStaleness: an instance whose Redis connection
// silently drops packets (a listener that accepts and never answers) cannot
// confirm its credentials. Each Reload gives up within its timeout, the
// snapshot stays unconfirmed, and once it is older than MaxStale every token
// and signature is refused with ErrStale — a revocation it cannot see is
// refused within the bound. A successful Reload ends the refusal.
func TestRedisRecordsBoundedStaleness(t *testing.T) {
	c, prefix := openRedis(t)
	ctx := context.Background()
	clock := time.Unix(1800000000, 0)
	now := func() time.Time { return clock }
	var token string
	var key Key
	var secret string
	err := EditRedis(ctx, c, prefix, func(r *Records) error {
		tok, rec, err := NewToken("alice", "ci", clock, time.Hour)
		token = tok
		r.Tokens = append(r.Tokens, rec)
		if err != nil {
			return err
		}
		secret, key, err = NewKey("alice", "cron", clock, time.Hour)
		r.Keys = append(r.Keys, key)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := OpenRedisRecords(ctx, c, prefix)
	if err != nil {
		t.Fatal(err)
	}
	recs.now = now
	if _, err := recs.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	v := NewVerifier(recs, NewMemoryNonces(0, 0, now), 0, now)
	clock = clock.Add(time.Second) // signatures from before the verifier started are refused
	n := 0
	try := func() []error {
		n++
		sig, err := Sign("GET", "https://h/x", key.ID, []byte(secret), clock, fmt.Sprintf("nonce-%012d", n))
		if err != nil {
			t.Fatal(err)
		}
		_, _, e1 := v.Authenticate(ctx, Request{Method: "GET", URI: "/x", Host: "h", Authorization: "Bearer " + token})
		_, _, e2 := v.Authenticate(ctx, Request{Method: "GET", URI: "/x", Host: "h", Authorization: sig})
		return []error{e1, e2}
	}
	for _, err := range try() {
		if err != nil {
			t.Fatalf("fresh: %v", err)
		}
	}

	// A black hole: connections are accepted and never answered.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	// authd's own client options: deadlines come from the context.
	dead := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), Protocol: 2, DisableIdentity: true,
		ContextTimeoutEnabled: true, MaxRetries: 1})
	defer dead.Close()
	live := recs.c
	recs.c = dead
	clock = clock.Add(MaxStale - time.Second)
	start := time.Now()
	if _, err := recs.Reload(ctx); err == nil {
		t.Fatal("reload through a black hole succeeded")
	}
	if d := time.Since(start); d > 2*reloadTimeout {
		t.Errorf("reload through a black hole took %v, want at most %v", d, 2*reloadTimeout)
	}
	for _, err := range try() {
		if err != nil {
			t.Errorf("within MaxStale of the last confirmation: %v, want accepted", err)
		}
	}
	clock = clock.Add(time.Second + time.Millisecond)
	for _, err := range try() {
		if !errors.Is(err, ErrStale) {
			t.Errorf("past MaxStale: got %v, want %v", err, ErrStale)
		}
	}
	recs.c = live
	if _, err := recs.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	for _, err := range try() {
		if err != nil {
			t.Errorf("after a successful reload: %v, want accepted", err)
		}
	}
}

// TestFileNeverStale: the records file is local; however long since its
// last reload, it is not refused as stale.
func TestFileNeverStale(t *testing.T) {
	fx := newFixture(t)
	fx.now = fx.now.Add(time.Hour)
	if _, _, err := fx.v.Authenticate(t.Context(), Request{Authorization: "Bearer " + fx.token}); err != nil {
		t.Errorf("got %v, want accepted", err)
	}
}
