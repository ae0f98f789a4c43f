package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// heavyHash is a stored hash at the bound authd's default [hash] allows:
// argon2id at 4x the memory and passes of new hashes (threads are not
// multiplied: see users.LimitsFor), or bcrypt at max_bcrypt_cost.
type heavyHash struct {
	name, user, hash string
}

func heavyHashes() ([]heavyHash, error) {
	salt := []byte("bench-heavy-salt")
	key := argon2.IDKey([]byte("heavy password"), salt, 8, 4*19456, 1, 32)
	bc, err := bcrypt.GenerateFromPassword([]byte("heavy password"), 12)
	if err != nil {
		return nil, err
	}
	return []heavyHash{
		{"argon2id m=77824 KiB, t=8, p=1 (4x the default [hash])", "heavyargon",
			fmt.Sprintf("$argon2id$v=19$m=%d,t=8,p=1$%s$%s", 4*19456,
				base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))},
		{"bcrypt cost 12 (max_bcrypt_cost)", "heavybcrypt", string(bc)},
	}, nil
}

// runHeavyMode measures verify for an existing session alone, then while
// one client logs in again and again as a user whose stored hash is at the
// bound (a wrong password, so every attempt runs the hash), one attempt at a
// time from fresh addresses: what one bound-maximal hash costs verify while
// it runs. The two runs alternate, b.o.runs times, side by side.
func (b *bench) runHeavyMode(ctx context.Context, v *verifySetup) error {
	var t *target
	for _, x := range v.targets {
		if x.name == "authd" {
			t = x
		}
	}
	hs, err := heavyHashes()
	if err != nil {
		return err
	}
	users := filepath.Join(v.authd.dir, "users.toml")
	cur, err := os.ReadFile(users)
	if err != nil {
		return err
	}
	for _, h := range hs {
		cur = fmt.Appendf(cur, "\n[[users]]\nname = %q\nhash = %q\ngeneration = %d\n", h.user, h.hash, time.Now().UnixNano()%1e9)
	}
	if err := os.WriteFile(users, cur, 0o600); err != nil {
		return err
	}
	_ = v.authd.proc.cmd.Process.Signal(syscall.SIGHUP)
	lc := newLoginClient(v.authdSite.url(""), 2)
	seq := 0
	xff := func() string { seq++; return fmt.Sprintf("10.88.%d.%d", seq/250%250, seq%250+1) }
	deadline := time.Now().Add(30 * time.Second)
	for _, h := range hs {
		for {
			code, _, err := lc.login(h.user, "heavy password", xff())
			if err == nil && code == http.StatusSeeOther {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("heavy mode: %s never logged in (last status %d, %v)", h.user, code, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	b.reportf("## One bound-maximal hash")
	b.reportf("")
	b.reportf("Verify (the `authd` wrk load) alone, then while one client logs in with a wrong password as a user")
	b.reportf("whose stored hash is at the bound authd's default [hash] allows, one attempt after another from fresh")
	b.reportf("addresses (so the throttle never answers instead). Runs alternate, %d each, %s long; medians.", b.o.runs, b.o.duration)
	b.reportf("")
	b.reportf("| stored hash | verify p99 alone | p99 during | ratio (target ≤ 2) | req/s during ÷ alone | login p50 |")
	b.reportf("|---|---:|---:|---:|---:|---:|")
	for _, h := range hs {
		var alone, during []wrkResult
		var logins []time.Duration
		for range b.o.runs {
			r, err := b.wrkOnce(ctx, t, b.o.duration)
			if err != nil {
				return err
			}
			alone = append(alone, r)
			lctx, cancel := context.WithCancel(ctx)
			var wg sync.WaitGroup
			var mu sync.Mutex
			wg.Go(func() {
				for lctx.Err() == nil {
					start := time.Now()
					if code, _, err := lc.login(h.user, "wrong password", xff()); err == nil && code == http.StatusUnauthorized {
						mu.Lock()
						logins = append(logins, time.Since(start))
						mu.Unlock()
					}
				}
			})
			time.Sleep(300 * time.Millisecond) // the first hash is running
			r, err = b.wrkOnce(ctx, t, b.o.duration)
			cancel()
			wg.Wait()
			if err != nil {
				return err
			}
			during = append(during, r)
		}
		p99 := func(rs []wrkResult) time.Duration {
			v := make([]time.Duration, len(rs))
			for i, r := range rs {
				v[i] = r.P99
			}
			return median(v)
		}
		rps := func(rs []wrkResult) float64 {
			v := make([]float64, len(rs))
			for i, r := range rs {
				v[i] = r.RPS
			}
			return median(v)
		}
		slices.Sort(logins)
		lp50 := time.Duration(0)
		if len(logins) > 0 {
			lp50 = logins[len(logins)/2]
		}
		a, d := p99(alone), p99(during)
		b.logf("heavy %s: verify p99 alone %s, during %s (%.2fx); login p50 %s", h.user, fmtDur(a), fmtDur(d), float64(d)/float64(a), fmtDur(lp50))
		b.reportf("| %s | %s | %s | %.2f | %.2f | %s |", h.name, fmtDur(a), fmtDur(d), float64(d)/float64(a), rps(during)/rps(alone), fmtDur(lp50))
	}
	b.reportf("")
	return nil
}
