package session

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// benchKey is the key of the i-th benchmark session.
func benchKey(i int) Key {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(i))
	return Key(sha256.Sum256(b[:]))
}

// fillStore puts n realistic sessions straight into memory (no log, so a
// million take a second, not a million fsyncs): 100 users with short names,
// IPv4 addresses, and 1000 distinct user agents of about 55 bytes.
func fillStore(tb testing.TB, s *Embedded, n int) { fillStoreUA(tb, s, n, 1000) }

// fillStoreUA is fillStore with uas distinct user agents.
func fillStoreUA(tb testing.TB, s *Embedded, n, uas int) {
	tb.Helper()
	base := time.Now()
	for i := range n {
		sess := Session{
			User:        fmt.Sprintf("user%03d", i%100),
			Created:     base,
			LastSeen:    base,
			Expires:     base.Add(12 * time.Hour),
			Idle:        time.Hour,
			IP:          fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255),
			UserAgent:   fmt.Sprintf("Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Firefox/140.%d", i%uas),
			Fingerprint: uint64(i),
		}
		r, err := toRecord(benchKey(i), &sess)
		if err != nil {
			tb.Fatal(err)
		}
		s.insert(r)
	}
}

func BenchmarkParse(b *testing.B) {
	cookie, _, err := New()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		Parse(cookie)
	}
}

func BenchmarkNew(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_, _, _ = New()
	}
}

// BenchmarkGet shows verify's store cost against the number of sessions.
// "hot" asks for the same 64 sessions over and over (the users active right
// now); "spread" walks all of them, so at a million nearly every Get misses
// the CPU cache.
func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{1_000, 1_000_000} {
		s := openTestStore(b, b.TempDir(), nil)
		fillStore(b, s, n)
		keys := make([]Key, n)
		for i := range keys {
			keys[i] = benchKey(i)
		}
		missing := make([]Key, n)
		for i := range missing {
			missing[i] = benchKey(n + i)
		}
		for _, pattern := range []string{"hot", "spread"} {
			for _, hit := range []bool{true, false} {
				ks := keys
				if !hit {
					ks = missing
				}
				span := n
				if pattern == "hot" {
					span = 64
				}
				b.Run(fmt.Sprintf("sessions=%d/%s/hit=%v", n, pattern, hit), func(b *testing.B) {
					b.ReportAllocs()
					i := 0
					for b.Loop() {
						_, ok, _ := s.Get(ctx, ks[i%span])
						if ok != hit {
							b.Fatalf("Get: got found %v, want %v", ok, hit)
						}
						i += 7919 // a prime stride: not one cache-hot key
					}
				})
			}
		}
		b.Run(fmt.Sprintf("sessions=%d/spread/hit=true/parallel", n), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					_, _, _ = s.Get(ctx, keys[i%n])
					i += 7919
				}
			})
		})
	}
}

// BenchmarkVerifyPath is what a verify costs the store: Parse plus Get plus
// Valid for one cookie, in a store of 1k and of 1M sessions.
func BenchmarkVerifyPath(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{1_000, 1_000_000} {
		s := openTestStore(b, b.TempDir(), nil)
		fillStore(b, s, n)
		cookie, k, err := New()
		if err != nil {
			b.Fatal(err)
		}
		mustCreate(b, s, k, newTestSession("alice", time.Now()))
		now := time.Now()
		b.Run(fmt.Sprint("sessions=", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				k, ok := Parse(cookie)
				if !ok {
					b.Fatal("Parse failed")
				}
				sess, ok, err := s.Get(ctx, k)
				if err != nil || !ok || !sess.Valid(now) {
					b.Fatal("session not valid")
				}
			}
		})
	}
}

// BenchmarkCompact writes a snapshot of a million sessions, as compaction and
// Close do; Get keeps running meanwhile (see TestEmbeddedConcurrent).
func BenchmarkCompact(b *testing.B) {
	s := openTestStore(b, b.TempDir(), nil)
	fillStore(b, s, 1_000_000)
	for b.Loop() {
		if err := s.compact(); err != nil {
			b.Fatal(err)
		}
	}
	st, err := os.Stat(filepath.Join(s.dir, snapName))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(st.Size())/(1<<20), "MiB-snapshot")
}

// BenchmarkMemory reports the heap a million sessions take (HeapInuse after
// GC, minus the empty store's), with 1000 distinct user agents (a realistic
// mix) and with every one distinct (the worst case for interning).
func BenchmarkMemory(b *testing.B) {
	const n = 1_000_000
	for _, uas := range []int{1000, n} {
		b.Run(fmt.Sprint("user-agents=", uas), func(b *testing.B) {
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				s := openTestStore(b, b.TempDir(), nil)
				fillStoreUA(b, s, n, uas)
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/(1<<20), "MiB/1M-sessions")
				b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/n, "B/session")
				runtime.KeepAlive(s)
			}
		})
	}
}

func BenchmarkCreate(b *testing.B) {
	s := openTestStore(b, b.TempDir(), nil)
	sess := newTestSession("alice", time.Now())
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := s.Create(context.Background(), benchKey(i), sess); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkCreateParallel(b *testing.B) {
	s := openTestStore(b, b.TempDir(), nil)
	sess := newTestSession("alice", time.Now())
	var next atomicCounter
	b.SetParallelism(16) // logins wait on fsync, not CPU
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Create(context.Background(), benchKey(next.add()), sess); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkTouch(b *testing.B) {
	s := openTestStore(b, b.TempDir(), nil)
	base := time.Now()
	mustCreate(b, s, benchKey(0), newTestSession("alice", base))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if err := s.Touch(context.Background(), benchKey(0), base.Add(time.Duration(i))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen measures a start with a million sessions in the snapshot.
func BenchmarkOpen(b *testing.B) {
	dir := b.TempDir()
	s, err := OpenEmbedded(dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	fillStore(b, s, 1_000_000)
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		s, err := OpenEmbedded(dir, nil)
		if err != nil {
			b.Fatal(err)
		}
		if s.Len() != 1_000_000 {
			b.Fatalf("Len: got %d, want 1000000", s.Len())
		}
		crash(s) // Close would rewrite the snapshot
	}
}

type atomicCounter struct{ n atomic.Int64 }

func (c *atomicCounter) add() int { return int(c.n.Add(1)) }

// BenchmarkOpenRSS starts a process on a data directory holding a million
// sessions and reports its resident memory once they are loaded.
func BenchmarkOpenRSS(b *testing.B) {
	const n = 1_000_000
	dir := b.TempDir()
	s, err := OpenEmbedded(dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	fillStore(b, s, n)
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		cmd, line := startChild(b, "rss", dir, "rss ")
		killChild(b, cmd)
		var got, rss, heap int64
		if _, err := fmt.Sscanf(line, "rss %d %d %d", &got, &rss, &heap); err != nil || got != n {
			b.Fatalf("child said %q (%v), want an rss line for %d sessions", line, err, n)
		}
		b.ReportMetric(float64(rss)/(1<<20), "MiB-RSS")
		b.ReportMetric(float64(heap)/(1<<20), "MiB-heap")
	}
}
