package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/authd/authd/authd/internal/users"
)

// sleepBurn stands in for users.Burn: bcrypt cost c "takes" (c-9)² ms (cost 10: 1ms, 14: 25ms,
// 20: 121ms), so floors can be checked without real hashing, far apart enough for a busy machine.
func sleepBurn(c users.Cost) {
	if c.BcryptCost > 0 {
		time.Sleep(time.Duration((c.BcryptCost-9)*(c.BcryptCost-9)) * time.Millisecond)
	}
}

func dbWith(t testing.TB, hashes ...string) *users.DB {
	t.Helper()
	var list []users.User
	for i, h := range hashes {
		list = append(list, users.User{Name: "u" + strings.Repeat("x", i), Hash: h})
	}
	db, err := users.NewDB(list, users.Limits{MaxBcryptCost: 31})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func fakeBcrypt(cost int) string {
	return "$2b$" + string(rune('0'+cost/10)) + string(rune('0'+cost%10)) + "$" + strings.Repeat("a", 53)
}

func TestPacerFloorIsAboveTheSlowestCostInUse(t *testing.T) {
	tests := []struct {
		name   string
		hashes []string
		want   time.Duration // the slowest cost's sleep
	}{
		{"dummy only", nil, 0},
		{"one user", []string{fakeBcrypt(10)}, time.Millisecond},
		{"the slowest of several", []string{fakeBcrypt(10), fakeBcrypt(14), fakeBcrypt(12)}, 25 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPacer(testParams, dbWith(t, tt.hashes...), sleepBurn)
			if got, min := p.value(), time.Duration(float64(tt.want)*paceMargin)+paceSlack; got < min {
				t.Errorf("floor: got %v, want at least %v", got, min)
			}
		})
	}
}

func TestPacerFollowsTheUsersInUse(t *testing.T) {
	p := newPacer(testParams, dbWith(t, fakeBcrypt(10)), sleepBurn)
	slow := dbWith(t, fakeBcrypt(10), fakeBcrypt(20))
	p.track(slow)
	deadline := time.Now().Add(5 * time.Second)
	for p.value() < 121*time.Millisecond {
		if time.Now().After(deadline) {
			t.Fatalf("a slower hash after a reload: floor stayed %v, want above 121ms", p.value())
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The slow user is gone again: the floor falls back to the costs still in use.
	p.track(dbWith(t, fakeBcrypt(10)))
	if got := p.value(); got >= 100*time.Millisecond {
		t.Errorf("after the slow user left: floor %v, want below 100ms", got)
	}
}

func TestPacerObserveRaisesTheFloor(t *testing.T) {
	db := dbWith(t, fakeBcrypt(10))
	p := newPacer(testParams, db, sleepBurn)
	e, _ := db.Lookup("u")
	before := p.value()
	for range 40 {
		p.observe(e.Cost(), 100*time.Millisecond) // the machine got slower
	}
	if got := p.value(); got < 100*time.Millisecond || got <= before {
		t.Errorf("after slow verifications: floor %v (was %v), want above 100ms", got, before)
	}
}

func TestPacerPadWaitsAndIsBounded(t *testing.T) {
	p := newPacer(testParams, dbWith(t, fakeBcrypt(14)), sleepBurn)
	start := time.Now()
	if !p.pad(context.Background(), start) {
		t.Fatal("pad refused with nobody waiting")
	}
	if got := time.Since(start); got < p.value() {
		t.Errorf("pad returned after %v, want at least the floor %v", got, p.value())
	}
	for range maxPadded {
		p.padded <- struct{}{}
	}
	if p.pad(context.Background(), time.Now()) {
		t.Error("pad with every waiting place taken: got true, want false (answer busy)")
	}
}

// TestReloadedHashParamsMoveTheFloor: a reload that makes new hashes (and so
// the dummy hash an unknown user costs) heavier raises the failed-login floor
// above the new dummy once it is measured, and a reload back lowers it again;
// otherwise an unknown user would be told apart from the users by time.
func TestReloadedHashParamsMoveTheFloor(t *testing.T) {
	heavy := users.Params{MemoryKiB: 4096, Time: 3, Threads: 1}
	const heavyTakes = 40 * time.Millisecond
	h := newHarness(t, nil, nil)
	h.srv.pace.mu.Lock()
	h.srv.pace.burn = func(c users.Cost) {
		if c.Argon2id == heavy {
			time.Sleep(heavyTakes)
		}
	}
	h.srv.pace.mu.Unlock()
	light := h.srv.pace.value()
	if light >= heavyTakes {
		t.Fatalf("floor before: %v, want below %v for the test to mean anything", light, heavyTakes)
	}
	o := testOptions()
	o.HashParams = heavy
	if err := h.srv.SetOptions(o); err != nil {
		t.Fatal(err)
	}
	want := time.Duration(float64(heavyTakes)*paceMargin) + paceSlack
	deadline := time.Now().Add(5 * time.Second)
	for h.srv.pace.value() < want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := h.srv.pace.value(); got < want {
		t.Fatalf("floor after heavier [hash]: got %v, want at least %v", got, want)
	}
	if err := h.srv.SetOptions(testOptions()); err != nil {
		t.Fatal(err)
	}
	if got := h.srv.pace.value(); got >= heavyTakes {
		t.Errorf("floor after [hash] back: got %v, want below %v (the heavy dummy is no longer in use)", got, heavyTakes)
	}
}

// TestPacerRest: a hashing slot rests only after a hash that took more than
// twice the quickest seen for its cost, for the time beyond that quickest,
// at most maxRest.
func TestPacerRest(t *testing.T) {
	p := newPacer(testParams, dbWith(t), sleepBurn)
	c := users.Cost{BcryptCost: 12}
	if r := p.rest(c, time.Hour); r != 0 {
		t.Fatalf("rest for a cost never seen: %v, want 0", r)
	}
	p.observe(c, 100*time.Millisecond)
	p.observe(c, 40*time.Millisecond) // the quickest
	p.observe(c, 90*time.Millisecond)
	for _, tt := range []struct{ took, want time.Duration }{
		{40 * time.Millisecond, 0},
		{80 * time.Millisecond, 0},
		{100 * time.Millisecond, 60 * time.Millisecond},
		{30 * time.Second, maxRest},
	} {
		if got := p.rest(c, tt.took); got != tt.want {
			t.Errorf("rest after %v: got %v, want %v", tt.took, got, tt.want)
		}
	}
}

// TestGateReleaseAfter: a slot released with a delay stays taken until then,
// so logins beyond it get the cheap "busy" answer meanwhile.
func TestGateReleaseAfter(t *testing.T) {
	g := newGate(1, 0, time.Second)
	if !g.acquire(context.Background()) {
		t.Fatal("acquire on an idle gate failed")
	}
	start := time.Now()
	g.releaseAfter(50 * time.Millisecond)
	if !g.saturated() {
		t.Fatal("the resting slot counts as free")
	}
	for g.saturated() {
		if time.Since(start) > 10*time.Second {
			t.Fatal("the slot was never released")
		}
		time.Sleep(time.Millisecond)
	}
	if took := time.Since(start); took < 50*time.Millisecond {
		t.Fatalf("slot free after %v, want at least 50ms", took)
	}
	if !g.acquire(context.Background()) {
		t.Fatal("acquire after the rest failed")
	}
	g.releaseAfter(0)
	if g.saturated() {
		t.Fatal("releaseAfter(0) did not release at once")
	}
}
