package audit

import (
	"context"
	"fmt"
	"testing"
)

func TestMemoryRecentNewestFirstAndBounded(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(3)
	for i := 0; i < 5; i++ {
		_ = m.Record(ctx, Event{Event: "login_failed", Target: fmt.Sprint("u", i)})
	}
	got, _ := m.Recent(ctx, Filter{})
	if len(got) != 3 || got[0].Target != "u4" || got[2].Target != "u2" {
		t.Fatalf("got %+v, want u4, u3, u2", got)
	}
}

func TestFilter(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(10)
	_ = m.Record(ctx, Event{Event: "user_locked", Actor: "admin", Target: "bob"})
	_ = m.Record(ctx, Event{Event: "login_succeeded", Actor: "bob"})
	_ = m.Record(ctx, Event{Event: "login_succeeded", Actor: "carol"})
	for _, tc := range []struct {
		name string
		f    Filter
		want int
	}{
		{"all", Filter{}, 3},
		{"user as actor or target", Filter{User: "bob"}, 2},
		{"event", Filter{Event: "login_succeeded"}, 2},
		{"both", Filter{User: "bob", Event: "user_locked"}, 1},
		{"limit", Filter{Limit: 1}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := m.Recent(ctx, tc.f)
			if len(got) != tc.want {
				t.Fatalf("got %d events, want %d", len(got), tc.want)
			}
		})
	}
}
