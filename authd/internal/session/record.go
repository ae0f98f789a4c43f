package session

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
	"unique"
)

// Limits on what a store keeps per session. IP and user agent are cut to fit
// (they are informational); a longer user name is an error.
const (
	MaxUser      = 256
	MaxIP        = 64
	MaxUserAgent = 128
)

// Limits on a header-only identity (Session.External), so that a provider
// cannot bloat records: a longer field or more groups is an error.
const (
	MaxSource = 64
	MaxText   = 256 // email, display name
	MaxGroups = 32
	MaxGroup  = 64
)

// maxUnixNano bounds stored times so that every stored time round-trips
// through int64 nanoseconds (which end in 2262).
const maxUnixNano = int64(1) << 62

// ErrInvalid is returned by Create for a session a store cannot keep.
var ErrInvalid = errors.New("invalid session")

// record is a session as kept in memory: 120 bytes (8 of them the second
// factor time, 8 the header-only identity pointer) plus a 16-byte string.
// Times are Unix nanoseconds. User names and user agents are interned: a
// deployment has few users and few distinct browsers, and up to millions of
// sessions; unique drops an interned value once no session holds it.
type record struct {
	key      Key
	user     unique.Handle[string]
	ua       unique.Handle[string]
	meta     string // remember flag (0 or 1), then the IP
	created  int64
	lastSeen int64
	expires  int64
	idle     int64
	fp       uint64
	factor   int64     // second factor time, Unix nanoseconds; 0 = none
	ext      *External // header-only identity; nil for a local user; never changed
}

// makeMeta packs the remember flag and the IP into one string.
func makeMeta(ip string, remember bool) string {
	var b strings.Builder
	b.Grow(1 + len(ip))
	if remember {
		b.WriteByte(1)
	} else {
		b.WriteByte(0)
	}
	b.WriteString(ip)
	return b.String()
}

// validMeta reports whether m is a string makeMeta could have made.
func validMeta(m string) bool {
	return len(m) >= 1 && m[0] <= 1 && len(m)-1 <= MaxIP
}

func (r *record) ip() string     { return r.meta[1:] }
func (r *record) remember() bool { return r.meta[0] == 1 }

// userAgent returns the user agent; "" for a record built without one.
func (r *record) userAgent() string {
	if r.ua == (unique.Handle[string]{}) {
		return ""
	}
	return r.ua.Value()
}

// toRecord validates sess and converts it for storage under k, capping IP and
// user agent.
func toRecord(k Key, sess *Session) (record, error) {
	if sess.User == "" || len(sess.User) > MaxUser {
		return record{}, fmt.Errorf("%w: user name must be 1 to %d bytes (got %d)", ErrInvalid, MaxUser, len(sess.User))
	}
	if sess.Idle <= 0 || int64(sess.Idle) > maxUnixNano {
		return record{}, fmt.Errorf("%w: idle timeout must be positive (got %v)", ErrInvalid, sess.Idle)
	}
	var times [3]int64
	for i, t := range [3]time.Time{sess.Created, sess.LastSeen, sess.Expires} {
		if t.IsZero() || t.Unix() < 0 || t.Unix() > maxUnixNano/1e9 {
			return record{}, fmt.Errorf("%w: time out of range (got %v)", ErrInvalid, t)
		}
		times[i] = t.UnixNano()
	}
	var factor int64
	if t := sess.SecondFactor; !t.IsZero() {
		if t.Unix() < 0 || t.Unix() > maxUnixNano/1e9 {
			return record{}, fmt.Errorf("%w: second factor time out of range (got %v)", ErrInvalid, t)
		}
		factor = t.UnixNano()
	}
	ext, err := checkExternal(sess.External)
	if err != nil {
		return record{}, err
	}
	return record{
		ext:      ext,
		key:      k,
		user:     unique.Make(sess.User),
		ua:       unique.Make(capString(sess.UserAgent, MaxUserAgent)),
		meta:     makeMeta(capString(sess.IP, MaxIP), sess.Remember),
		created:  times[0],
		lastSeen: times[1],
		expires:  times[2],
		idle:     int64(sess.Idle),
		fp:       sess.Fingerprint,
		factor:   factor,
	}, nil
}

// session converts a record back, with times in UTC. It does not allocate.
func (r *record) session() Session {
	return Session{
		User:         r.user.Value(),
		Created:      time.Unix(0, r.created).UTC(),
		LastSeen:     time.Unix(0, r.lastSeen).UTC(),
		Expires:      time.Unix(0, r.expires).UTC(),
		Idle:         time.Duration(r.idle),
		Remember:     r.remember(),
		IP:           r.ip(),
		UserAgent:    r.userAgent(),
		Fingerprint:  r.fp,
		SecondFactor: factorTime(r.factor),
		External:     r.ext,
	}
}

// checkExternal validates a header-only identity against the limits and
// returns a copy the store may share with every reader.
func checkExternal(e *External) (*External, error) {
	if e == nil {
		return nil, nil
	}
	if e.Source == "" || len(e.Source) > MaxSource {
		return nil, fmt.Errorf("%w: identity source must be 1 to %d bytes (got %d)", ErrInvalid, MaxSource, len(e.Source))
	}
	if len(e.Email) > MaxText || len(e.DisplayName) > MaxText {
		return nil, fmt.Errorf("%w: identity email and display name must be at most %d bytes", ErrInvalid, MaxText)
	}
	if len(e.Groups) > MaxGroups {
		return nil, fmt.Errorf("%w: identity may have at most %d groups (got %d)", ErrInvalid, MaxGroups, len(e.Groups))
	}
	for _, g := range e.Groups {
		if g == "" || len(g) > MaxGroup {
			return nil, fmt.Errorf("%w: identity group names must be 1 to %d bytes (got %d)", ErrInvalid, MaxGroup, len(g))
		}
	}
	c := *e
	if len(e.Groups) > 0 {
		c.Groups = append([]string(nil), e.Groups...)
	} else {
		c.Groups = nil
	}
	return &c, nil
}

// appendExternal encodes a header-only identity: source, email and display
// name as length-prefixed strings, then the group count and the groups.
func appendExternal(b []byte, e *External) []byte {
	b = appendString(b, e.Source)
	b = appendString(b, e.Email)
	b = appendString(b, e.DisplayName)
	b = binary.AppendUvarint(b, uint64(len(e.Groups)))
	for _, g := range e.Groups {
		b = appendString(b, g)
	}
	return b
}

// external decodes what appendExternal wrote, holding it to the limits.
func (d *decoder) external() *External {
	e := &External{Source: d.str(MaxSource), Email: d.str(MaxText), DisplayName: d.str(MaxText)}
	n, w := binary.Uvarint(d.b)
	if d.bad || w <= 0 || n > MaxGroups || e.Source == "" {
		d.bad = true
		return nil
	}
	d.b = d.b[w:]
	if n > 0 {
		e.Groups = make([]string, n)
	}
	for i := range e.Groups {
		if e.Groups[i] = d.str(MaxGroup); e.Groups[i] == "" {
			d.bad = true
		}
	}
	if d.bad {
		return nil
	}
	return e
}

// factorTime converts a stored second factor time; 0 is the zero Time.
func factorTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// valid is Session.Valid on a record.
func (r *record) valid(now int64) bool {
	return now < r.expires && now < r.lastSeen+r.idle
}

// capString cuts s to at most n bytes without splitting a UTF-8 sequence.
func capString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for i := 0; i < utf8.UTFMax && len(s) > 0; i++ {
		if r, size := utf8.DecodeLastRuneInString(s); r != utf8.RuneError || size > 1 {
			break
		}
		s = s[:len(s)-1]
	}
	return s
}
