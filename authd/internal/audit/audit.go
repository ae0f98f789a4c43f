// Package audit records who did what to whom, from where: admin changes, CLI
// edits, logins and revocations. A Log keeps the recent events queryable for
// the admin console; Memory, File (the embedded store) and Redis implement it.
package audit

import (
	"context"
	"sync"
	"time"
)

// Event is one audited action.
type Event struct {
	Time time.Time `json:"time"`
	// Event is a stable snake_case name such as "user_locked".
	Event string `json:"event"`
	// Actor is the acting user, or "unix:<name>" for the CLI.
	Actor string `json:"actor,omitempty"`
	// Target is the user (or token, session …) acted on.
	Target string `json:"target,omitempty"`
	// IP is the client address of a web or API action; empty for the CLI.
	IP string `json:"ip,omitempty"`
	// Source is "web", "cli", "api", "oidc:…" or "ldap".
	Source string `json:"source,omitempty"`
	// Detail is free text: what changed, never a secret.
	Detail string `json:"detail,omitempty"`
}

// Filter selects events for Recent. Empty fields match everything; User
// matches the actor or the target; Limit <= 0 means DefaultLimit.
type Filter struct {
	User, Event string
	Limit       int
}

// DefaultLimit is how many events Recent returns when the filter says nothing.
const DefaultLimit = 100

// Log records events and returns the recent ones, newest first.
type Log interface {
	Record(ctx context.Context, e Event) error
	Recent(ctx context.Context, f Filter) ([]Event, error)
}

// Match reports whether e passes f.
func (f Filter) Match(e Event) bool {
	if f.Event != "" && e.Event != f.Event {
		return false
	}
	if f.User != "" && e.Actor != f.User && e.Target != f.User {
		return false
	}
	return true
}

func (f Filter) limit() int {
	if f.Limit <= 0 {
		return DefaultLimit
	}
	return f.Limit
}

// Memory is a bounded in-memory Log: the newest n events.
type Memory struct {
	mu   sync.Mutex
	ring []Event
	next int
	full bool
}

// NewMemory returns a Memory keeping the last n events (n <= 0: 1000).
func NewMemory(n int) *Memory {
	if n <= 0 {
		n = 1000
	}
	return &Memory{ring: make([]Event, n)}
}

// Record keeps e, dropping the oldest event when full.
func (m *Memory) Record(_ context.Context, e Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ring[m.next] = e
	m.next++
	if m.next == len(m.ring) {
		m.next, m.full = 0, true
	}
	return nil
}

// Recent returns the newest events matching f, newest first.
func (m *Memory) Recent(_ context.Context, f Filter) ([]Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.next
	if m.full {
		n = len(m.ring)
	}
	var out []Event
	for i := 0; i < n && len(out) < f.limit(); i++ {
		e := m.ring[(m.next-1-i+len(m.ring))%len(m.ring)]
		if f.Match(e) {
			out = append(out, e)
		}
	}
	return out, nil
}
