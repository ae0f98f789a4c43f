package session

import (
	"bufio"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"unique"
)

// On disk, the log and the snapshot are sequences of frames:
//
//	uint32 payload length | uint32 CRC-32 (IEEE) of payload | payload
//
// all little-endian. The payload's first byte is the operation. A frame that
// is short or fails its CRC is either the torn tail of the newest log (a crash
// mid-write; nothing intact follows it, and it is cut off) or damage, after
// which reading resumes at the next frame whose CRC verifies (see scanFrames).
const (
	frameHeader = 8
	// maxPayload bounds a frame so a corrupt length cannot make us allocate
	// much; the largest real payload (a create) is well under 1 KiB, or
	// about 3.2 KiB with a header-only identity at every limit.
	maxPayload = 4096
)

// Operations in a frame.
const (
	opCreate    byte = 1
	opTouch     byte = 2
	opDelete    byte = 3
	opDeleteUsr byte = 4
	opDeleteAll byte = 5
	opEnd       byte = 6 // snapshot trailer: number of sessions
	opTombs     byte = 7 // why some sessions ended: reason, time, keys
)

// tombsPerFrame bounds the keys in one opTombs frame to fit maxPayload.
const tombsPerFrame = 120

// tagExternal starts a create frame's header-only identity trailer.
const tagExternal byte = 1

// errCorrupt marks a frame that cannot be decoded.
var errCorrupt = errors.New("corrupt record")

// beginFrame appends room for a frame header and returns the payload's start.
func beginFrame(b []byte) ([]byte, int) {
	b = append(b, make([]byte, frameHeader)...)
	return b, len(b)
}

// endFrame fills in the header of the frame whose payload starts at start.
func endFrame(b []byte, start int) []byte {
	p := b[start:]
	binary.LittleEndian.PutUint32(b[start-8:], uint32(len(p)))
	binary.LittleEndian.PutUint32(b[start-4:], crc32.ChecksumIEEE(p))
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendCreate(b []byte, r *record) []byte {
	b, start := beginFrame(b)
	b = append(b, opCreate)
	b = append(b, r.key[:]...)
	b = binary.LittleEndian.AppendUint64(b, uint64(r.created))
	b = binary.LittleEndian.AppendUint64(b, uint64(r.lastSeen))
	b = binary.LittleEndian.AppendUint64(b, uint64(r.expires))
	b = binary.LittleEndian.AppendUint64(b, uint64(r.idle))
	b = binary.LittleEndian.AppendUint64(b, r.fp)
	b = appendString(b, r.user.Value())
	b = appendString(b, r.meta)
	b = appendString(b, r.userAgent())
	if r.factor != 0 || r.ext != nil {
		// Optional trailer: frames written before second factors existed
		// end after the user agent and still decode (factor 0).
		b = binary.LittleEndian.AppendUint64(b, uint64(r.factor))
	}
	if r.ext != nil {
		// Second trailer, after the factor time (0 allowed here): a tag
		// byte and the header-only identity.
		b = append(b, tagExternal)
		b = appendExternal(b, r.ext)
	}
	return endFrame(b, start)
}

func appendTouch(b []byte, k *Key, t int64) []byte {
	b, start := beginFrame(b)
	b = append(b, opTouch)
	b = append(b, k[:]...)
	b = binary.LittleEndian.AppendUint64(b, uint64(t))
	return endFrame(b, start)
}

func appendDelete(b []byte, k *Key) []byte {
	b, start := beginFrame(b)
	b = append(b, opDelete)
	b = append(b, k[:]...)
	return endFrame(b, start)
}

func appendDeleteUser(b []byte, user string) []byte {
	b, start := beginFrame(b)
	b = append(b, opDeleteUsr)
	b = appendString(b, user)
	return endFrame(b, start)
}

func appendDeleteAll(b []byte) []byte {
	b, start := beginFrame(b)
	b = append(b, opDeleteAll)
	return endFrame(b, start)
}

// appendTombs appends frames recording that keys ended at t for why, as
// many frames as it takes.
func appendTombs(b []byte, why Reason, t int64, keys []Key) []byte {
	for len(keys) > 0 {
		n := min(len(keys), tombsPerFrame)
		var start int
		b, start = beginFrame(b)
		b = append(b, opTombs, byte(why))
		b = binary.LittleEndian.AppendUint64(b, uint64(t))
		for i := range keys[:n] {
			b = append(b, keys[i][:]...)
		}
		b = endFrame(b, start)
		keys = keys[n:]
	}
	return b
}

func appendEnd(b []byte, n uint64) []byte {
	b, start := beginFrame(b)
	b = append(b, opEnd)
	b = binary.LittleEndian.AppendUint64(b, n)
	return endFrame(b, start)
}

// errTorn marks data that is not a complete, intact frame: the torn tail of a
// log after a crash, or corruption.
var errTorn = errors.New("torn or corrupt frame")

// frameReader reads frames from a stream and tracks the offset of the end of
// the last intact one. It peeks at a frame before consuming it, so that after
// a damaged frame the caller can step forward a byte at a time to find the
// next intact one (see scanFrames); its reader's buffer must hold a whole
// frame.
type frameReader struct {
	r   *bufio.Reader
	off int64
}

// peek returns the payload of the frame at the current offset and the frame's
// size without consuming it; the payload is valid until the next read. It
// returns io.EOF when nothing is left and errTorn when what follows is not an
// intact frame.
func (fr *frameReader) peek() ([]byte, int, error) {
	h, err := fr.r.Peek(frameHeader)
	if err != nil {
		if len(h) == 0 && err == io.EOF {
			return nil, 0, io.EOF
		}
		if err == io.EOF {
			return nil, 0, errTorn
		}
		return nil, 0, err
	}
	n := binary.LittleEndian.Uint32(h)
	if n == 0 || n > maxPayload {
		return nil, 0, errTorn
	}
	sum := binary.LittleEndian.Uint32(h[4:])
	b, err := fr.r.Peek(frameHeader + int(n))
	if err != nil {
		if err == io.EOF {
			return nil, 0, errTorn
		}
		return nil, 0, err
	}
	p := b[frameHeader:]
	if crc32.ChecksumIEEE(p) != sum {
		return nil, 0, errTorn
	}
	return p, len(b), nil
}

// skip consumes n bytes: a frame the caller has used, or one byte of damage.
func (fr *frameReader) skip(n int) error {
	m, err := fr.r.Discard(n)
	fr.off += int64(m)
	return err
}

// next returns the next frame's payload, valid until the following call. It
// returns io.EOF at a clean end and errTorn when what follows is not an intact
// frame.
func (fr *frameReader) next() ([]byte, error) {
	p, n, err := fr.peek()
	if err != nil {
		return nil, err
	}
	return p, fr.skip(n)
}

// op is one decoded frame.
type op struct {
	kind byte
	key  Key    // opCreate, opTouch, opDelete
	rec  record // opCreate
	t    int64  // opTouch
	user string // opDeleteUsr
	n    uint64 // opEnd
	why  Reason // opTombs; may be one this version does not know
	keys []Key  // opTombs
}

// decoder reads fields from a payload, remembering the first failure.
type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) bytes(n int) []byte {
	if d.bad || len(d.b) < n {
		d.bad = true
		return make([]byte, n)
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) u64() uint64 { return binary.LittleEndian.Uint64(d.bytes(8)) }

func (d *decoder) str(max int) string {
	n, w := binary.Uvarint(d.b)
	if w <= 0 || n > uint64(max) {
		d.bad = true
		return ""
	}
	d.b = d.b[w:]
	return string(d.bytes(int(n)))
}

// decodeOp decodes a frame's payload.
func decodeOp(p []byte) (op, error) {
	d := decoder{b: p}
	o := op{kind: d.bytes(1)[0]}
	switch o.kind {
	case opCreate:
		copy(o.key[:], d.bytes(len(o.key)))
		r := &o.rec
		r.key = o.key
		r.created = int64(d.u64())
		r.lastSeen = int64(d.u64())
		r.expires = int64(d.u64())
		r.idle = int64(d.u64())
		r.fp = d.u64()
		user := d.str(MaxUser)
		r.meta = d.str(1 + MaxIP)
		ua := d.str(MaxUserAgent)
		switch {
		case len(d.b) == 8:
			r.factor = int64(d.u64())
			if r.factor <= 0 || r.factor > maxUnixNano {
				d.bad = true
			}
		case len(d.b) > 8:
			r.factor = int64(d.u64())
			if r.factor < 0 || r.factor > maxUnixNano || d.bytes(1)[0] != tagExternal {
				d.bad = true
			}
			r.ext = d.external()
		}
		if !validMeta(r.meta) || user == "" {
			d.bad = true
		} else {
			r.user, r.ua = unique.Make(user), unique.Make(ua)
		}
	case opTouch:
		copy(o.key[:], d.bytes(len(o.key)))
		o.t = int64(d.u64())
	case opDelete:
		copy(o.key[:], d.bytes(len(o.key)))
	case opDeleteUsr:
		o.user = d.str(MaxUser)
	case opDeleteAll:
	case opEnd:
		o.n = d.u64()
	case opTombs:
		o.why = Reason(d.bytes(1)[0])
		o.t = int64(d.u64())
		if d.bad || len(d.b) == 0 || len(d.b)%len(Key{}) != 0 || o.t <= 0 || o.t > maxUnixNano {
			d.bad = true
			break
		}
		o.keys = make([]Key, len(d.b)/len(Key{}))
		for i := range o.keys {
			copy(o.keys[i][:], d.bytes(len(Key{})))
		}
	default:
		d.bad = true
	}
	if d.bad || len(d.b) != 0 {
		return op{}, errCorrupt
	}
	return o, nil
}
