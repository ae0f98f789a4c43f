package machine

import (
	"context"
	"strings"
	"testing"
	"time"
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
