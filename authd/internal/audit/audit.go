// Package audit records who did what to whom, from where: logins, failures,
// throttles, admin and CLI changes, revocations. A Log keeps the recent
// events queryable for the admin console; the zap log keeps them all.
package audit

import (
	"context"
	"sync"
	"time"
)

// Event is one audited action.
type Event struct {
	Time time.Time `json:"time"`
	// Event is a stable snake_case name: "login_succeeded", "user_locked", …
	Event string `json:"event"`
	// Actor is the acting user; "unix:<name>" for the CLI; "" when nobody
	// is signed in (a failed login).
	Actor string `json:"actor,omitempty"`
	// Target is the user or object acted on; "" when it is the actor.
	Target string `json:"target,omitempty"`
	IP     string `json:"client_ip,omitempty"`
	// Source is where the action came from: "web", "cli", "api", "oidc:<id>", "ldap".
	Source string `json:"source,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Filter selects events for Recent. Zero fields match everything; Limit 0
// means DefaultLimit.
type Filter struct {
	// User matches an event whose Actor or Target is this user.
	User  string
	Event string
	Limit int
}

// DefaultLimit is how many events Recent returns when Filter.Limit is 0.
const DefaultLimit = 100

// Match reports whether e passes f (Limit aside).
func (f Filter) Match(e Event) bool {
	if f.User != "" && e.Actor != f.User && e.Target != f.User {
		return false
	}
	return f.Event == "" || e.Event == f.Event
}

func (f Filter) limit() int {
	if f.Limit <= 0 {
		return DefaultLimit
	}
	return f.Limit
}

// Log stores events and returns the most recent ones, newest first.
type Log interface {
	Record(ctx context.Context, e Event) error
	Recent(ctx context.Context, f Filter) ([]Event, error)
}

// Memory is a Log that keeps the last n events in memory.
type Memory struct {
	mu   sync.Mutex
	buf  []Event
	next int
	full bool
}

// NewMemory returns a Memory holding at most n events (n < 1 means 1).
func NewMemory(n int) *Memory {
	if n < 1 {
		n = 1
	}
	return &Memory{buf: make([]Event, n)}
}

// Record keeps e, dropping the oldest event when full.
func (m *Memory) Record(_ context.Context, e Event) error {
	m.mu.Lock()
	m.buf[m.next] = e
	m.next = (m.next + 1) % len(m.buf)
	if m.next == 0 {
		m.full = true
	}
	m.mu.Unlock()
	return nil
}

// Recent returns the newest events matching f, newest first.
func (m *Memory) Recent(_ context.Context, f Filter) ([]Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.next
	if m.full {
		n = len(m.buf)
	}
	var out []Event
	for i := 1; i <= n && len(out) < f.limit(); i++ {
		e := m.buf[(m.next-i+len(m.buf))%len(m.buf)]
		if f.Match(e) {
			out = append(out, e)
		}
	}
	return out, nil
}
