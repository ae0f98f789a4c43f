package server

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/authd/authd/authd/internal/users"
)

// Padding of failed logins. A failed password login is answered no sooner
// than a floor above the slowest verification any stored hash (or the dummy
// hash for unknown users) needs, so the reply time tells neither whether the
// account exists nor which hash type or cost it has, nor whether it is
// disabled or throttled. The dummy hash alone cannot do that: an imported
// bcrypt cost-12 hash takes several times as long as argon2id at the default
// parameters.
const (
	// paceMargin is how far above the slowest estimate the floor sits, so
	// that ordinary jitter in one hash stays under it.
	paceMargin = 1.25
	// paceSlack is added to the floor for the same reason when hashes are
	// so cheap that a proportional margin is a few microseconds.
	paceSlack = 3 * time.Millisecond
	// maxPadded bounds the failed logins waiting out the floor at once. A
	// padded reply holds no hashing slot, only its goroutine; beyond this
	// many a flood gets a fast 503 instead of piling up goroutines.
	maxPadded = 1024
)

// pacer estimates the slowest hash verification in use and pads failed logins
// to it. Each cost's estimate starts from one timed run (users.Burn) when the
// cost first appears (at start for the users loaded then, in the background
// after a reload) and then follows the verifications logins actually run, so
// the floor rises with machine load instead of being overtaken by it.
type pacer struct {
	burn  func(users.Cost)
	dummy users.Cost // what an unknown user's dummy hash costs

	mu        sync.Mutex
	est       map[users.Cost]time.Duration
	fastest   map[users.Cost]time.Duration // the quickest run seen of each cost
	inUse     []users.Cost
	seen      *users.DB
	measuring bool

	floor  atomic.Int64 // ns
	padded chan struct{}
}

func newPacer(dummy users.Params, db *users.DB, burn func(users.Cost)) *pacer {
	if burn == nil {
		burn = users.Burn
	}
	p := &pacer{burn: burn, dummy: users.Cost{Argon2id: dummyParams(dummy)}, est: map[users.Cost]time.Duration{}, fastest: map[users.Cost]time.Duration{},
		padded: make(chan struct{}, maxPadded)}
	p.mu.Lock()
	p.seen = db
	p.inUse = append(db.Costs(), p.dummy)
	missing := p.missingLocked()
	p.mu.Unlock()
	// At start, measuring before serving keeps the first logins honest.
	p.measure(missing)
	return p
}

// track takes in the users a login is about to be checked against: a cost
// that has not been seen before is measured in the background, and until
// then the floor stays what it was (a reload that adds a slower hash leaves
// a window of one hash's duration).
func (p *pacer) track(db *users.DB) {
	p.mu.Lock()
	if db == p.seen {
		p.mu.Unlock()
		return
	}
	p.seen = db
	p.refreshLocked()
}

// setDummy follows a reload that changed [hash]: unknown users' dummy hash
// now costs what new hashes cost. Until the new cost is measured, the floor
// stays what it was.
func (p *pacer) setDummy(params users.Params) {
	c := users.Cost{Argon2id: dummyParams(params)}
	p.mu.Lock()
	if c == p.dummy {
		p.mu.Unlock()
		return
	}
	p.dummy = c
	p.refreshLocked()
}

// refreshLocked recomputes the costs in use from the users last seen and the
// dummy, measures new ones in the background, and unlocks p.mu.
func (p *pacer) refreshLocked() {
	p.inUse = append(p.seen.Costs(), p.dummy)
	missing := p.missingLocked()
	if len(missing) == 0 || p.measuring {
		p.updateLocked()
		p.mu.Unlock()
		return
	}
	p.measuring = true
	p.mu.Unlock()
	go func() {
		for len(missing) > 0 {
			p.measure(missing)
			p.mu.Lock()
			missing = p.missingLocked() // costs that appeared meanwhile
			p.measuring = len(missing) > 0
			p.mu.Unlock()
		}
	}()
}

func (p *pacer) missingLocked() []users.Cost {
	var out []users.Cost
	for _, c := range p.inUse {
		if _, ok := p.est[c]; !ok {
			out = append(out, c)
		}
	}
	return out
}

func (p *pacer) measure(cs []users.Cost) {
	for _, c := range cs {
		start := time.Now()
		p.burn(c)
		took := time.Since(start)
		p.mu.Lock()
		if _, ok := p.est[c]; !ok {
			p.est[c] = took
		}
		p.noteLocked(c, took)
		p.mu.Unlock()
	}
	p.mu.Lock()
	p.updateLocked()
	p.mu.Unlock()
}

// observe folds one verification's duration into its cost's estimate.
func (p *pacer) observe(c users.Cost, took time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old, ok := p.est[c]
	if !ok {
		p.est[c] = took
	} else {
		p.est[c] = old + (took-old)/8
	}
	p.noteLocked(c, took)
	p.updateLocked()
}

func (p *pacer) noteLocked(c users.Cost, took time.Duration) {
	if f, ok := p.fastest[c]; !ok || took < f {
		p.fastest[c] = took
	}
}

// maxRest bounds how long a hashing slot rests after a slow hash.
const maxRest = time.Second

// rest is how long the hashing slot a verification of c used should stay
// closed after it took took. A hash that took more than twice the quickest
// seen for its cost ran on a machine busy with other work (the hashing child
// runs at the lowest priority): the slot then rests for as long as the hash
// ran beyond that quickest time, at most maxRest, so that under contention
// hashing takes about half of what the cores leave it, and logins beyond it
// get the cheap "busy" answer. On an idle machine the slot never rests.
func (p *pacer) rest(c users.Cost, took time.Duration) time.Duration {
	p.mu.Lock()
	f, ok := p.fastest[c]
	p.mu.Unlock()
	if !ok || took <= 2*f {
		return 0
	}
	return min(took-f, maxRest)
}

// updateLocked sets the floor from the costs in use; estimates of costs no
// longer in use are kept (a user may come back) but do not count.
func (p *pacer) updateLocked() {
	var slowest time.Duration
	for _, c := range p.inUse {
		slowest = max(slowest, p.est[c])
	}
	p.floor.Store(int64(time.Duration(float64(slowest)*paceMargin) + paceSlack))
}

// dummyParams are the parameters users.Dummy hashes with when given p.
func dummyParams(p users.Params) users.Params {
	if p.Validate() != nil {
		return users.DefaultParams()
	}
	return p
}

// value is the current floor.
func (p *pacer) value() time.Duration { return time.Duration(p.floor.Load()) }

// pad waits until the floor has passed since start, or ctx ends. false means
// too many replies are already waiting: answer busy rather than early.
func (p *pacer) pad(ctx context.Context, start time.Time) bool {
	d := time.Until(start.Add(p.value()))
	if d <= 0 {
		return true
	}
	select {
	case p.padded <- struct{}{}:
	default:
		return false
	}
	defer func() { <-p.padded }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	return true
}
