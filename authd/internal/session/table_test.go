package session

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// TestTableAgainstMap runs random puts and deletes against a map. Keys draw
// their probe hash from a small range, so probe runs collide, wrap around the
// end of the slots and get shifted back on delete.
func TestTableAgainstMap(t *testing.T) {
	tests := []struct {
		name     string
		hashes   uint64 // distinct probe hashes
		keys     int
		ops      int
		deleteIn int // one op in deleteIn is a delete
	}{
		{"few keys, heavy collisions", 3, 20, 5000, 3},
		{"wraparound", 1 << 20, 300, 20000, 2},
		{"grow and shrink", 1 << 30, 5000, 60000, 2},
		{"mostly inserts", 64, 3000, 10000, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(tt.keys)))
			keyOf := func(i int) Key {
				var k Key
				binary.LittleEndian.PutUint64(k[:8], uint64(i))
				// Place every key near the end of a 2^n table, to wrap.
				binary.LittleEndian.PutUint64(k[8:16], ^uint64(0)-uint64(i)%tt.hashes)
				return k
			}
			var tab table
			model := map[Key]int64{}
			for op := range tt.ops {
				k := keyOf(rng.IntN(tt.keys))
				if rng.IntN(tt.deleteIn) == 0 {
					_, want := model[k]
					if got := tab.del(&k); got != want {
						t.Fatalf("op %d: del: got %v, want %v", op, got, want)
					}
					delete(model, k)
				} else {
					_, had := model[k]
					if got := tab.put(record{key: k, created: int64(op)}); got == had {
						t.Fatalf("op %d: put reported new %v, want %v", op, got, !had)
					}
					model[k] = int64(op)
				}
				if op%499 == 0 || op == tt.ops-1 {
					checkTable(t, &tab, model, tt.keys, keyOf)
				}
			}
			n := tab.deleteIf(func(r *record) bool { return r.created%2 == 0 })
			want := 0
			for k, v := range model {
				if v%2 == 0 {
					delete(model, k)
					want++
				}
			}
			if n != want {
				t.Fatalf("deleteIf: got %d, want %d", n, want)
			}
			checkTable(t, &tab, model, tt.keys, keyOf)
		})
	}
}

func checkTable(tb testing.TB, tab *table, model map[Key]int64, keys int, keyOf func(int) Key) {
	tb.Helper()
	if tab.n != len(model) {
		tb.Fatalf("n: got %d, want %d", tab.n, len(model))
	}
	for i := range keys {
		k := keyOf(i)
		r := tab.get(&k)
		v, ok := model[k]
		if (r != nil) != ok {
			tb.Fatalf("get key %d: got found %v, want %v", i, r != nil, ok)
		}
		if ok && r.created != v {
			tb.Fatalf("get key %d: got %d, want %d", i, r.created, v)
		}
	}
	used := 0
	for _, v := range tab.slots {
		if v != 0 {
			used++
		}
	}
	if used != tab.n {
		tb.Fatalf("used slots: got %d, want %d", used, tab.n)
	}
	if tab.n > 0 && tab.n*4 > len(tab.slots)*3 {
		tb.Fatalf("load: %d in %d slots, want at most 3/4", tab.n, len(tab.slots))
	}
}

func TestTableReset(t *testing.T) {
	var tab table
	for i := range 1000 {
		tab.put(record{key: benchKey(i)})
	}
	tab.reset()
	k := benchKey(1)
	if tab.get(&k) != nil || tab.n != 0 || len(tab.slots) != 0 || len(tab.chunks) != 0 {
		t.Fatalf("after reset: got n=%d slots=%d chunks=%d, want an empty table", tab.n, len(tab.slots), len(tab.chunks))
	}
	tab.put(record{key: k})
	if tab.get(&k) == nil {
		t.Fatal("put after reset: got not found")
	}
}
