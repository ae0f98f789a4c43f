package session

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// frameStarts returns the offsets of the frames in a log or snapshot file
// whose frames begin at off.
func frameStarts(tb testing.TB, b []byte, off int) []int {
	tb.Helper()
	var out []int
	for off+frameHeader <= len(b) {
		out = append(out, off)
		off += frameHeader + int(binary.LittleEndian.Uint32(b[off:]))
	}
	if off != len(b) {
		tb.Fatalf("frames end at %d, file at %d", off, len(b))
	}
	return out
}

// present returns the indexes i < n for which session testKey(i) is in s.
func present(tb testing.TB, s *Embedded, n int) []int {
	tb.Helper()
	var got []int
	for i := range n {
		if _, ok := mustGet(tb, s, testKey(fmt.Sprint(i))); ok {
			got = append(got, i)
		}
	}
	return got
}

func without(n int, drop ...int) []int {
	var out []int
	for i := range n {
		if !slices.Contains(drop, i) {
			out = append(out, i)
		}
	}
	return out
}

// checkAside checks that exactly one copy of base is kept aside in dir and
// that it holds want.
func checkAside(tb testing.TB, dir, base string, want []byte, d Damage) {
	tb.Helper()
	if len(d.Files) != 1 || !strings.HasPrefix(d.Files[0], base+asideInfix) {
		tb.Fatalf("Damage.Files: got %v, want one copy of %s", d.Files, base)
	}
	got, err := os.ReadFile(filepath.Join(dir, d.Files[0]))
	if err != nil {
		tb.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		tb.Fatalf("copy kept aside differs from the damaged file (%d bytes, want %d)", len(got), len(want))
	}
}

// TestEmbeddedRecoversDamagedLog checks that a damaged record with intact
// ones after it loses only itself: every intact session is recovered, the
// damaged file is kept aside, Damage counts it, and the store keeps working
// and stays recovered across restarts.
func TestEmbeddedRecoversDamagedLog(t *testing.T) {
	const n = 10
	tests := []struct {
		name string
		// older puts sessions 0..n-1 in an older log and one more session
		// (n) in the newest, so the damage is not in the newest log.
		older  bool
		damage func(b []byte, frames []int) []byte
		lost   []int
	}{
		{"flipped payload byte", false, func(b []byte, f []int) []byte { b[f[3]+20] ^= 0x40; return b }, []int{3}},
		{"flipped length", false, func(b []byte, f []int) []byte { b[f[3]+1] ^= 0x01; return b }, []int{3}},
		{"zeroed records", false, func(b []byte, f []int) []byte { clear(b[f[2]:f[5]]); return b }, []int{2, 3, 4}},
		{"garbage inserted", false, func(b []byte, f []int) []byte {
			return slices.Insert(b, f[6], []byte("\xff\x00\x00\x00garbage")...)
		}, nil},
		{"older log, flipped byte", true, func(b []byte, f []int) []byte { b[f[4]+30] ^= 0x01; return b }, []int{4}},
		{"older log, torn last record", true, func(b []byte, f []int) []byte { return b[:len(b)-5] }, []int{n - 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			base := suiteBase()
			s, err := OpenEmbedded(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				mustCreate(t, s, testKey(fmt.Sprint(i)), newTestSession("alice", base))
			}
			name := logPath(dir, s.gen)
			total := n
			if tt.older {
				// A compaction that crashed before its snapshot leaves the
				// older log in the replay path.
				next, err := createLog(dir, s.gen+1)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := s.wal.rotate(next, magicLen); err != nil {
					t.Fatal(err)
				}
				mustCreate(t, s, testKey(fmt.Sprint(n)), newTestSession("bob", base))
				total++
			}
			crash(s)
			b, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			b = tt.damage(b, frameStarts(t, b, magicLen))
			if err := os.WriteFile(name, b, 0o600); err != nil {
				t.Fatal(err)
			}

			s, err = OpenEmbedded(dir, nil)
			if err != nil {
				t.Fatalf("OpenEmbedded with a damaged log: %v", err)
			}
			want := without(total, tt.lost...)
			if got := present(t, s, total); !slices.Equal(got, want) {
				t.Fatalf("sessions after recovery: got %v, want %v", got, want)
			}
			d := s.Damage()
			if d.Records != 1 || d.Bytes <= 0 || d.Recovered != int64(n-len(tt.lost)) {
				t.Fatalf("Damage: got %+v, want 1 damaged stretch, some bytes, %d recovered", d, n-len(tt.lost))
			}
			checkAside(t, dir, filepath.Base(name), b, d)
			// The store works: a session created now survives a crash.
			mustCreate(t, s, testKey("after"), newTestSession("carol", base))
			crash(s)

			s = openTestStore(t, dir, nil)
			if got := present(t, s, total); !slices.Equal(got, want) {
				t.Fatalf("sessions after a second open: got %v, want %v", got, want)
			}
			if _, ok := mustGet(t, s, testKey("after")); !ok {
				t.Fatal("session created after recovery is lost")
			}
			// Nothing new is damaged; the copy stays reported until an operator
			// moves it away.
			d2 := s.Damage()
			if d2.Records != 0 || d2.Bytes != 0 || !slices.Equal(d2.Files, d.Files) {
				t.Fatalf("Damage on the next open: got %+v, want only the files %v", d2, d.Files)
			}
		})
	}
}

// TestEmbeddedRecoversDamagedSnapshot checks that damage inside a snapshot
// loses only the damaged sessions; only an unreadable header stops the open.
func TestEmbeddedRecoversDamagedSnapshot(t *testing.T) {
	const n = 20
	tests := []struct {
		name   string
		damage func(b []byte, frames []int) []byte
		lost   int   // sessions lost
		stops  bool  // the open fails
		bytes  int64 // bytes skipped, when known; 0: any
	}{
		{"flipped byte", func(b []byte, f []int) []byte { b[f[7]+25] ^= 0x40; return b }, 1, false, 0},
		{"truncated", func(b []byte, f []int) []byte { return b[:len(b)-10] }, 0, false, 0},
		{"no end record", func(b []byte, f []int) []byte { return b[:f[n]] }, 0, false, 0},
		{"trailing data", func(b []byte, f []int) []byte { return append(b, 0) }, 0, false, 1},
		{"bad magic", func(b []byte, f []int) []byte { b[0] = 'X'; return b }, 0, true, 0},
		{"empty", func(b []byte, f []int) []byte { return nil }, 0, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := OpenEmbedded(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				mustCreate(t, s, testKey(fmt.Sprint(i)), newTestSession("alice", suiteBase()))
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			name := filepath.Join(dir, snapName)
			b, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			b = tt.damage(b, frameStarts(t, b, snapHeader))
			if err := os.WriteFile(name, b, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err = OpenEmbedded(dir, nil)
			if tt.stops {
				if err == nil {
					s.Close()
					t.Fatal("OpenEmbedded with an unreadable snapshot: got nil error")
				}
				if !strings.Contains(err.Error(), "snapshot") || !strings.Contains(err.Error(), "corrupt") {
					t.Fatalf("error: got %q, want it to name the corrupt snapshot", err)
				}
				checkUnlocked(t, dir) // the failed open released the lock
				return
			}
			if err != nil {
				t.Fatalf("OpenEmbedded with a damaged snapshot: %v", err)
			}
			defer s.Close()
			if got := s.Len(); got != n-tt.lost {
				t.Fatalf("sessions recovered: got %d, want %d", got, n-tt.lost)
			}
			d := s.Damage()
			if d.Records < 1 || d.Recovered != int64(n-tt.lost) || (tt.bytes != 0 && d.Bytes != tt.bytes) {
				t.Fatalf("Damage: got %+v, want >= 1 record lost, %d recovered", d, n-tt.lost)
			}
			checkAside(t, dir, snapName, b, d)
		})
	}
}

// FuzzScanFrames checks that no bytes make scanFrames fail or panic, and that
// intact records after a damaged stretch are all recovered.
func FuzzScanFrames(f *testing.F) {
	f.Add([]byte("\xff\xff\xff\xff garbage"))
	f.Add([]byte{8, 0, 0, 0, 1, 2, 3, 4, 5})
	f.Add(appendTouch(nil, new(testKey("x")), 7)[:10])
	f.Fuzz(func(t *testing.T, garbage []byte) {
		var before, after []byte
		for i := range 3 {
			before = appendDelete(before, new(testKey(fmt.Sprint("b", i))))
			after = appendDelete(after, new(testKey(fmt.Sprint("a", i))))
		}
		scan := func(b []byte) (frameScan, []Key) {
			var keys []Key
			fr := frameReader{r: bufio.NewReaderSize(bytes.NewReader(b), 64<<10)}
			sc, err := scanFrames(&fr, func(o *op) bool { keys = append(keys, o.key); return true })
			if err != nil && !strings.Contains(err.Error(), "undecodable") {
				t.Fatalf("scanFrames: %v", err)
			}
			if err == nil && sc.end != int64(len(b)) {
				t.Fatalf("scan ended at %d of %d bytes", sc.end, len(b))
			}
			return sc, keys
		}
		if sc, _ := scan(garbage); sc.records > 0 || sc.tail < 0 && len(garbage) > 0 {
			return // the garbage holds intact frames: not damage
		}
		_, keys := scan(slices.Concat(before, garbage, after))
		for i := range 3 {
			if k := testKey(fmt.Sprint("a", i)); !slices.Contains(keys, k) {
				t.Fatalf("record %d after %d damaged bytes was not recovered", i, len(garbage))
			}
		}
	})
}
