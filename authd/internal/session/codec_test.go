package session

import (
	"bufio"
	"bytes"
	"errors"
	"io"
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
	tests := []struct {
		name string
		enc  []byte
		want op
	}{
		{"create", appendCreate(nil, &rec), op{kind: opCreate, key: k, rec: rec}},
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
			if got != tt.want {
				t.Fatalf("op: got %+v, want %+v", got, tt.want)
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

func TestDecodeRejects(t *testing.T) {
	k := testKey("a")
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
