package session

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unique"
)

func TestCodecRoundTrip(t *testing.T) {
	k := testKey("a")
	rec := record{
		key: k, user: unique.Make("alice"), ua: unique.Make("curl/8"), meta: makeMeta("192.0.2.1", true),
		created: 1, lastSeen: 2, expires: 3, idle: 4, fp: 5,
	}
	ext := rec
	ext.ext = &External{Source: "oidc:corp", Email: "dora@example.com", DisplayName: "Dora", Groups: []string{"staff", "eng"}}
	extFactor := ext
	extFactor.factor = 6
	extFactor.ext = &External{Source: "oidc:corp"}
	tests := []struct {
		name string
		enc  []byte
		want op
	}{
		{"create", appendCreate(nil, &rec), op{kind: opCreate, key: k, rec: rec}},
		{"create header-only", appendCreate(nil, &ext), op{kind: opCreate, key: k, rec: ext}},
		{"create header-only with factor", appendCreate(nil, &extFactor), op{kind: opCreate, key: k, rec: extFactor}},
		{"touch", appendTouch(nil, &k, 42), op{kind: opTouch, key: k, t: 42}},
		{"delete", appendDelete(nil, &k), op{kind: opDelete, key: k}},
		{"delete user", appendDeleteUser(nil, "bob"), op{kind: opDeleteUsr, user: "bob"}},
		{"delete all", appendDeleteAll(nil), op{kind: opDeleteAll}},
		{"end", appendEnd(nil, 7), op{kind: opEnd, n: 7}},
	}
	var all []byte
	for _, tt := range tests {
		all = append(all, tt.enc...)
	}
	fr := frameReader{r: bufio.NewReader(bytes.NewReader(all))}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := fr.next()
			if err != nil {
				t.Fatalf("next: %v", err)
			}
			got, err := decodeOp(p)
			if err != nil {
				t.Fatalf("decodeOp: %v", err)
			}
			if !sameOp(got, tt.want) {
				t.Fatalf("op: got %+v (identity %+v), want %+v (identity %+v)", got, got.rec.ext, tt.want, tt.want.rec.ext)
			}
		})
	}
	if _, err := fr.next(); err != io.EOF {
		t.Fatalf("after the last frame: got %v, want io.EOF", err)
	}
	if fr.off != int64(len(all)) {
		t.Fatalf("offset: got %d, want %d", fr.off, len(all))
	}
}

// sameOp compares decoded operations, the header-only identity by value.
func sameOp(a, b op) bool {
	ea, eb := a.rec.ext, b.rec.ext
	a.rec.ext, b.rec.ext = nil, nil
	ka, kb := a.keys, b.keys
	a.keys, b.keys = nil, nil
	return reflect.DeepEqual(a, b) && reflect.DeepEqual(ea, eb) && slices.Equal(ka, kb)
}

// TestDecodeOldCreate checks that create frames written before second
// factors and header-only identities existed still decode, as a local
// user's session without either.
func TestDecodeOldCreate(t *testing.T) {
	// A create frame as authd wrote it before either trailer existed.
	k := testKey("a")
	var p []byte
	p = append(p, opCreate)
	p = append(p, k[:]...)
	for _, v := range []uint64{1, 2, 3, 4, 5} {
		p = binary.LittleEndian.AppendUint64(p, v)
	}
	p = appendString(p, "alice")
	p = appendString(p, "\x01192.0.2.1")
	p = appendString(p, "curl/8")
	o, err := decodeOp(p)
	if err != nil {
		t.Fatalf("decodeOp(old create): %v", err)
	}
	r := o.rec.session()
	if r.User != "alice" || r.IP != "192.0.2.1" || !r.Remember || r.Fingerprint != 5 || r.External != nil || !r.SecondFactor.IsZero() {
		t.Fatalf("old create: got %+v, want alice's local session with no second factor", r)
	}
}

func TestDecodeRejects(t *testing.T) {
	k := testKey("a")
	extRec := record{key: k, user: unique.Make("alice"), meta: makeMeta("ip", false), ext: &External{Source: "oidc:a", Groups: []string{"g"}}}
	ext := appendCreate(nil, &extRec)[frameHeader:]
	extRec.ext = &External{Source: "oidc:a", Groups: []string{""}}
	emptyGroup := appendCreate(nil, &extRec)[frameHeader:]
	extRec.ext = &External{}
	noSource := appendCreate(nil, &extRec)[frameHeader:]
	badTag := append([]byte(nil), ext...)
	badTag[len(badTag)-len("oidc:a")-1-1-1-1-2-1] = 2 // the tag byte before the identity
	good := appendCreate(nil, &record{key: k, user: unique.Make("alice"), meta: makeMeta("ip", false)})[frameHeader:]
	badFlags := appendCreate(nil, &record{key: k, user: unique.Make("alice"), meta: "\x07ip"})[frameHeader:]
	tests := []struct {
		name    string
		payload []byte
	}{
		{"empty", nil},
		{"unknown op", []byte{99}},
		{"short create", good[:len(good)-1]},
		{"trailing bytes", append(append([]byte(nil), good...), 0)},
		{"short touch", appendTouch(nil, &k, 1)[frameHeader : frameHeader+10]},
		{"bad flags", badFlags},
		{"short identity", ext[:len(ext)-1]},
		{"identity group empty", emptyGroup},
		{"identity without source", noSource},
		{"unknown trailer tag", badTag},
		{"too many groups", append(append(append([]byte(nil), good...), make([]byte, 8)...), tagExternal, 1, 'a', 0, 0, MaxGroups+1)},
		{"huge user length", append([]byte{opDeleteUsr}, 0xff, 0xff, 0xff, 0xff, 0x0f)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := decodeOp(tt.payload); !errors.Is(err, errCorrupt) {
				t.Fatalf("decodeOp: got %v, want errCorrupt", err)
			}
		})
	}
}

// TestEmbeddedRefusesUnknownRecords checks that an intact record this version
// cannot read (from a newer authd, say) stops the open instead of being
// skipped.
func TestEmbeddedRefusesUnknownRecords(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenEmbedded(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, testKey("a"), newTestSession("alice", suiteBase()))
	name := logPath(dir, s.gen)
	crash(s)
	b, start := beginFrame(nil)
	b = append(b, 99, 1, 2, 3)
	appendFile(t, name, endFrame(b, start))
	_, err = OpenEmbedded(dir, nil)
	if err == nil || !strings.Contains(err.Error(), "undecodable record") {
		t.Fatalf("OpenEmbedded: got %v, want an undecodable record error", err)
	}
}
