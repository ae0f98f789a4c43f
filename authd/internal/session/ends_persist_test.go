package session

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// endEach ends sessions in s for every reason and returns the reason each key
// should report: a and b before mid (a compaction, say), the rest after.
func endEach(t *testing.T, s *Embedded, clock *fakeClock, base time.Time, mid func()) map[Key]Reason {
	t.Helper()
	ctx := context.Background()
	for _, l := range []string{"a", "b", "d", "c1", "c2", "live"} {
		user := "alice"
		if l == "c1" || l == "c2" {
			user = "carol"
		}
		mustCreate(t, s, testKey(l), newTestSession(user, base))
	}
	// e ran out (idle for two hours) and is swept.
	mustCreate(t, s, testKey("e"), newTestSession("alice", base.Add(-2*time.Hour)))
	want := map[Key]Reason{testKey("live"): NotEnded, testKey("never"): NotEnded}
	if err := s.End(ctx, testKey("a"), SignedOut); err != nil {
		t.Fatal(err)
	}
	if err := s.End(ctx, testKey("b"), Revoked); err != nil {
		t.Fatal(err)
	}
	want[testKey("a")], want[testKey("b")] = SignedOut, Revoked
	if n := s.sweep(clock.now()); n != 1 {
		t.Fatalf("sweep: got %d, want 1", n)
	}
	want[testKey("e")] = Expired
	mid()
	if err := s.End(ctx, testKey("d"), PasswordChanged); err != nil {
		t.Fatal(err)
	}
	want[testKey("d")] = PasswordChanged
	if n, err := s.EndUser(ctx, "carol", Locked); err != nil || n != 2 {
		t.Fatalf("EndUser: got %d, %v, want 2, nil", n, err)
	}
	want[testKey("c1")], want[testKey("c2")] = Locked, Locked
	return want
}

func checkEnded(t *testing.T, s *Embedded, want map[Key]Reason) {
	t.Helper()
	for k, w := range want {
		if got, err := s.Ended(context.Background(), k); err != nil || got != w {
			t.Errorf("Ended(%s): got %v, %v, want %v", k.Short(), got, err, w)
		}
	}
}

// TestEmbeddedTombstonesSurviveRestart checks that why a session ended is
// still known after a restart, whether it was read back from the snapshot
// (clean close, compaction) or replayed from the log (kill -9), and that
// tombstones past TombstoneTTL are dropped on open.
func TestEmbeddedTombstonesSurviveRestart(t *testing.T) {
	tests := []struct {
		name    string
		compact bool // compact between the first and second endings
		stop    func(*Embedded) error
	}{
		{"close", false, func(s *Embedded) error { return s.Close() }},
		{"crash", false, func(s *Embedded) error { crash(s); return nil }},
		{"compact then crash", true, func(s *Embedded) error { crash(s); return nil }},
		{"compact then close", true, func(s *Embedded) error { return s.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := suiteBase()
			clock := newFakeClock(base)
			dir := t.TempDir()
			s, err := OpenEmbedded(dir, clock.now)
			if err != nil {
				t.Fatal(err)
			}
			want := endEach(t, s, clock, base, func() {
				if tt.compact {
					if err := s.compact(); err != nil {
						t.Fatal(err)
					}
				}
			})
			if err := tt.stop(s); err != nil {
				t.Fatal(err)
			}

			clock.set(base.Add(30 * time.Minute))
			s, err = OpenEmbedded(dir, clock.now)
			if err != nil {
				t.Fatal(err)
			}
			checkEnded(t, s, want)
			if d := s.Damage(); d.Damaged() || d.Tombstones != 0 {
				t.Errorf("Damage: got %+v, want none", d)
			}
			if s.Len() != 1 {
				t.Errorf("Len: got %d, want 1 (live)", s.Len())
			}
			// A second restart reads them from the snapshot Close wrote.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openTestStore(t, dir, clock.now)
			checkEnded(t, s, want)

			crash(s)
			// A crash's replay re-sweeps e at open (base+30m).
			clock.set(base.Add(30*time.Minute + TombstoneTTL))
			s = openTestStore(t, dir, clock.now)
			for k := range want {
				want[k] = NotEnded
			}
			want[testKey("live")] = Expired // swept by this open
			checkEnded(t, s, want)
			if n := len(s.ends.m); n != 1 {
				t.Errorf("tombstones after open past the TTL: got %d kept, want 1 (live's)", n)
			}
		})
	}
}

// TestEmbeddedEndAllTombstonesSurviveRestart checks EndAll's tombstones, more
// than one log frame holds, across a crash and across a snapshot.
func TestEmbeddedEndAllTombstonesSurviveRestart(t *testing.T) {
	const n = 3*tombsPerFrame + 7
	base := suiteBase()
	dir := t.TempDir()
	s, err := OpenEmbedded(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		mustCreate(t, s, testKey(string(rune(i))), newTestSession("alice", base))
	}
	if got, err := s.EndAll(context.Background(), Revoked); err != nil || got != n {
		t.Fatalf("EndAll: got %d, %v, want %d, nil", got, err, n)
	}
	want := map[Key]Reason{}
	for i := range n {
		want[testKey(string(rune(i)))] = Revoked
	}
	crash(s)
	s, err = OpenEmbedded(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkEnded(t, s, want)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTestStore(t, dir, nil)
	checkEnded(t, s, want)
}

// tombFrames returns the offsets of the opTombs frames in b, whose frames
// begin at off.
func tombFrames(t *testing.T, b []byte, off int) []int {
	t.Helper()
	var out []int
	for _, at := range frameStarts(t, b, off) {
		if b[at+frameHeader] == opTombs {
			out = append(out, at)
		}
	}
	if len(out) == 0 {
		t.Fatal("no tombstone frame in the file")
	}
	return out
}

// TestEmbeddedDamagedTombstones checks that a damaged or cut tombstone
// record, in the log or the snapshot, loses no session: the store opens,
// every session is there, and only that record's reasons are forgotten.
func TestEmbeddedDamagedTombstones(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		snap    bool                               // damage the snapshot, not the log
		damaged bool                               // reported as damage (a cut log tail is a torn write)
		hurt    func(b []byte, tombs []int) []byte // returns the damaged file
	}{
		{"log record corrupt", false, true, func(b []byte, tombs []int) []byte {
			b[tombs[0]+frameHeader+5] ^= 0xff
			return b
		}},
		{"log record cut", false, false, func(b []byte, tombs []int) []byte {
			last := tombs[len(tombs)-1]
			return b[:last+frameHeader+20]
		}},
		{"snapshot record corrupt", true, true, func(b []byte, tombs []int) []byte {
			b[tombs[0]+frameHeader+5] ^= 0xff
			return b
		}},
		{"snapshot cut in the tombstones", true, true, func(b []byte, tombs []int) []byte {
			return b[:tombs[0]+frameHeader+20]
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := suiteBase()
			dir := t.TempDir()
			s, err := OpenEmbedded(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			const n = 10
			for i := range n {
				mustCreate(t, s, testKey(fmt.Sprint(i)), newTestSession("alice", base))
			}
			mustCreate(t, s, testKey("gone"), newTestSession("bob", base))
			if err := s.End(ctx, testKey("gone"), Locked); err != nil {
				t.Fatal(err)
			}
			name := logPath(dir, s.gen)
			off := magicLen
			if tt.snap {
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				name, off = filepath.Join(dir, snapName), snapHeader
			} else {
				crash(s)
			}
			b, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			b = tt.hurt(b, tombFrames(t, b, off))
			if err := os.WriteFile(name, b, 0o600); err != nil {
				t.Fatal(err)
			}

			s = openTestStore(t, dir, nil)
			if got := present(t, s, n); len(got) != n {
				t.Fatalf("sessions after open: got %v, want all %d", got, n)
			}
			if d := s.Damage(); d.Damaged() != tt.damaged {
				t.Errorf("Damage: got %+v, want damaged %v", d, tt.damaged)
			}
			if got, _ := s.Ended(ctx, testKey("gone")); got != NotEnded {
				t.Errorf("Ended(damaged tombstone): got %v, want forgotten", got)
			}
			if _, ok := mustGet(t, s, testKey("gone")); ok && tt.snap {
				t.Error("ended session after open: got found, want gone")
			}
		})
	}
}

// TestEmbeddedUnknownReason checks that a tombstone with a reason this
// version does not know (from a newer authd) is dropped and counted, and
// the store opens with every session.
func TestEmbeddedUnknownReason(t *testing.T) {
	base := suiteBase()
	dir := t.TempDir()
	s, err := OpenEmbedded(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, testKey("a"), newTestSession("alice", base))
	name := logPath(dir, s.gen)
	crash(s)
	// numReasons+1 and a known one in one log: only the unknown is dropped.
	now := time.Now().UnixNano()
	b := appendTombs(nil, numReasons+1, now, []Key{testKey("x"), testKey("y")})
	b = appendTombs(b, Locked, now, []Key{testKey("z")})
	appendFile(t, name, b)

	s = openTestStore(t, dir, nil)
	if _, ok := mustGet(t, s, testKey("a")); !ok {
		t.Fatal("session after open: got not found")
	}
	d := s.Damage()
	if d.Tombstones != 2 || d.Damaged() {
		t.Errorf("Damage: got %+v, want 2 tombstones dropped and no damage", d)
	}
	checkEnded(t, s, map[Key]Reason{testKey("x"): NotEnded, testKey("y"): NotEnded, testKey("z"): Locked})
}
