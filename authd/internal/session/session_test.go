package session

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

func TestNewParse(t *testing.T) {
	seen := make(map[string]bool)
	for range 100 {
		cookie, key, err := New()
		if err != nil {
			t.Fatal(err)
		}
		if len(cookie) != CookieLen {
			t.Fatalf("len(cookie): got %d, want %d", len(cookie), CookieLen)
		}
		if seen[cookie] {
			t.Fatalf("New returned %q twice", cookie)
		}
		seen[cookie] = true
		got, ok := Parse(cookie)
		if !ok || got != key {
			t.Fatalf("Parse(New()): got %x, %v, want %x, true", got, ok, key)
		}
		raw, err := base64.RawURLEncoding.DecodeString(cookie)
		if err != nil {
			t.Fatal(err)
		}
		if want := Key(sha256.Sum256(raw)); key != want {
			t.Fatalf("key: got %x, want sha256 of the raw bytes %x", key, want)
		}
	}
}

func TestParse(t *testing.T) {
	raw := make([]byte, 32)
	for i := range raw {
		raw[i] = byte(i*37 + 11)
	}
	valid := base64.RawURLEncoding.EncodeToString(raw)
	// The last character of valid carries 4 data bits and 2 zero bits; its
	// neighbour in the alphabet has the same data bits and a non-zero spare.
	last := strings.IndexByte(alphabet, valid[42])
	nonCanonical := valid[:42] + string(alphabet[last+1])
	tests := []struct {
		name   string
		cookie string
		ok     bool
	}{
		{"valid", valid, true},
		{"all A", strings.Repeat("A", 43), true},
		{"all underscores canonical", strings.Repeat("_", 42) + "w", true},
		{"empty", "", false},
		{"one short", valid[:42], false},
		{"one long", valid + "A", false},
		{"padded", valid + "=", false},
		{"padding inside", valid[:42] + "=", false},
		{"std alphabet plus", "+" + valid[1:], false},
		{"std alphabet slash", valid[:10] + "/" + valid[11:], false},
		{"space", valid[:20] + " " + valid[21:], false},
		{"dot", valid[:5] + "." + valid[6:], false},
		{"nul", valid[:30] + "\x00" + valid[31:], false},
		{"non-ascii", valid[:41] + "\xc3\xa9", false},
		{"non-canonical trailing bits", nonCanonical, false},
		{"std base64 of 32 bytes", base64.StdEncoding.EncodeToString(raw), false},
		{"hex of 32 bytes is too long", strings.Repeat("ab", 32), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, ok := Parse(tt.cookie)
			if ok != tt.ok {
				t.Fatalf("Parse(%q): got ok %v, want %v", tt.cookie, ok, tt.ok)
			}
			if !ok {
				if key != (Key{}) {
					t.Errorf("Parse(%q) rejected but returned key %x", tt.cookie, key)
				}
				return
			}
			raw, err := base64.RawURLEncoding.Strict().DecodeString(tt.cookie)
			if err != nil {
				t.Fatalf("stdlib strict decoder rejects %q: %v", tt.cookie, err)
			}
			if want := Key(sha256.Sum256(raw)); key != want {
				t.Errorf("Parse(%q): got %x, want %x", tt.cookie, key, want)
			}
		})
	}
}

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// TestParseMatchesStrictDecoder checks Parse against the standard library on
// every value of the last character and every alphabet position.
func TestParseMatchesStrictDecoder(t *testing.T) {
	base := []byte(strings.Repeat("Q", 43))
	enc := base64.RawURLEncoding.Strict()
	for pos := range 43 {
		for c := range 256 {
			b := append([]byte(nil), base...)
			b[pos] = byte(c)
			_, ok := Parse(string(b))
			_, err := enc.DecodeString(string(b))
			want := err == nil && !strings.ContainsAny(string(b), "\r\n")
			if ok != want {
				t.Fatalf("Parse with byte %#x at %d: got ok %v, want %v", c, pos, ok, want)
			}
		}
	}
}

func TestParseDoesNotAllocate(t *testing.T) {
	cookie, _, err := New()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{cookie, "short", strings.Repeat("!", 43)} {
		if got := testing.AllocsPerRun(100, func() { Parse(c) }); got != 0 {
			t.Errorf("Parse(%q) allocations: got %v, want 0", c, got)
		}
	}
}

func TestShort(t *testing.T) {
	k := Key{0xde, 0xad, 0xbe, 0xef, 0x01}
	if got, want := k.Short(), "deadbeef"; got != want {
		t.Errorf("Short: got %q, want %q", got, want)
	}
}

func TestValid(t *testing.T) {
	base := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	s := Session{LastSeen: base, Idle: time.Hour, Expires: base.Add(3 * time.Hour)}
	tests := []struct {
		name string
		now  time.Time
		want bool
	}{
		{"just seen", base, true},
		{"within idle", base.Add(59 * time.Minute), true},
		{"idle timeout reached", base.Add(time.Hour), false},
		{"past idle", base.Add(2 * time.Hour), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.Valid(tt.now); got != tt.want {
				t.Errorf("Valid(%v): got %v, want %v", tt.now, got, tt.want)
			}
		})
	}
	t.Run("absolute deadline beats recent activity", func(t *testing.T) {
		s := Session{LastSeen: base.Add(3 * time.Hour), Idle: time.Hour, Expires: base.Add(3 * time.Hour)}
		if s.Valid(base.Add(3*time.Hour + time.Minute)) {
			t.Error("Valid after Expires: got true, want false")
		}
		if s.Valid(base.Add(3 * time.Hour)) {
			t.Error("Valid at Expires: got true, want false")
		}
	})
}

func TestCapString(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly", 7, "exactly"},
		{"abcdef", 3, "abc"},
		{"ab\u00e9", 3, "ab"}, // é is 2 bytes; do not keep half of it
		{"a\u20acb", 3, "a"},  // € is 3 bytes
		{"\u20ac\u20ac", 6, "\u20ac\u20ac"},
	}
	for _, tt := range tests {
		if got := capString(tt.in, tt.n); got != tt.want {
			t.Errorf("capString(%q, %d): got %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}
