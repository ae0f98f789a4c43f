package session

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
)

// FuzzParse checks Parse accepts exactly the strict decoder's 43-character
// unpadded base64url strings and hashes the same bytes.
func FuzzParse(f *testing.F) {
	f.Add(strings.Repeat("A", 43))
	f.Add(strings.Repeat("_", 42) + "w")
	f.Add(strings.Repeat("_", 42) + "x")
	f.Add("")
	f.Add(strings.Repeat("A", 43) + "=")
	f.Fuzz(func(t *testing.T, s string) {
		key, ok := Parse(s)
		raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
		// The stdlib decoder skips CR and LF; a cookie must not contain them.
		want := err == nil && len(s) == CookieLen && !strings.ContainsAny(s, "\r\n")
		if ok != want {
			t.Fatalf("Parse(%q): got ok %v, want %v", s, ok, want)
		}
		if ok && key != Key(sha256.Sum256(raw)) {
			t.Fatalf("Parse(%q): key is not the SHA-256 of the decoded bytes", s)
		}
	})
}

// FuzzDecodeOp checks arbitrary payloads never panic and anything accepted
// survives encoding and decoding again unchanged.
func FuzzDecodeOp(f *testing.F) {
	k := testKey("a")
	r, err := toRecord(k, &Session{User: "alice", Created: suiteBase(), LastSeen: suiteBase(), Expires: suiteBase(), Idle: 1, IP: "ip", UserAgent: "ua"})
	if err != nil {
		f.Fatal(err)
	}
	ext := r
	ext.ext = &External{Source: "oidc:corp", Email: "e@example.com", DisplayName: "E", Groups: []string{"staff", "eng"}}
	extFactor := ext
	extFactor.factor = 7
	for _, b := range [][]byte{
		appendCreate(nil, &r), appendCreate(nil, &ext), appendCreate(nil, &extFactor),
		appendTouch(nil, &k, 1), appendDelete(nil, &k),
		appendDeleteUser(nil, "bob"), appendDeleteAll(nil), appendEnd(nil, 3),
		appendTombs(nil, Locked, 5, []Key{k, testKey("b")}),
	} {
		f.Add(b[frameHeader:])
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		o, err := decodeOp(p)
		if err != nil {
			return
		}
		var b []byte
		switch o.kind {
		case opCreate:
			b = appendCreate(nil, &o.rec)
		case opTouch:
			b = appendTouch(nil, &o.key, o.t)
		case opDelete:
			b = appendDelete(nil, &o.key)
		case opDeleteUsr:
			b = appendDeleteUser(nil, o.user)
		case opDeleteAll:
			b = appendDeleteAll(nil)
		case opEnd:
			b = appendEnd(nil, o.n)
		case opTombs:
			if len(o.keys) > tombsPerFrame {
				return // more than appendTombs puts in one frame
			}
			b = appendTombs(nil, o.why, o.t, o.keys)
		}
		again, err := decodeOp(b[frameHeader:])
		if err != nil || !sameOp(again, o) {
			t.Fatalf("decoded %x as %+v; its encoding decodes as %+v, %v", p, o, again, err)
		}
	})
}
