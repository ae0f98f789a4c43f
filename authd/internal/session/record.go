package session

import (
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

// maxUnixNano bounds stored times so that every stored time round-trips
// through int64 nanoseconds (which end in 2262).
const maxUnixNano = int64(1) << 62

// ErrInvalid is returned by Create for a session a store cannot keep.
var ErrInvalid = errors.New("invalid session")

// record is a session as kept in memory: 96 bytes plus one small string.
// Times are Unix nanoseconds, the user name is interned (a deployment has few
// users and up to millions of sessions), and IP and user agent share one
// allocation with the flags.
type record struct {
	key      Key
	user     unique.Handle[string]
	meta     string // flags (ipLen<<1 | remember), then IP, then user agent
	created  int64
	lastSeen int64
	expires  int64
	idle     int64
	fp       uint64
}

// makeMeta packs the informational fields into one string.
func makeMeta(ip, ua string, remember bool) string {
	var b strings.Builder
	b.Grow(1 + len(ip) + len(ua))
	flags := byte(len(ip)) << 1
	if remember {
		flags |= 1
	}
	b.WriteByte(flags)
	b.WriteString(ip)
	b.WriteString(ua)
	return b.String()
}

// validMeta reports whether m is a string makeMeta could have made.
func validMeta(m string) bool {
	return len(m) >= 1 && int(m[0]>>1) <= MaxIP && int(m[0]>>1) <= len(m)-1 && len(m)-1-int(m[0]>>1) <= MaxUserAgent
}

func (r *record) ipLen() int        { return int(r.meta[0] >> 1) }
func (r *record) ip() string        { return r.meta[1 : 1+r.ipLen()] }
func (r *record) userAgent() string { return r.meta[1+r.ipLen():] }
func (r *record) remember() bool    { return r.meta[0]&1 != 0 }

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
	return record{
		key:      k,
		user:     unique.Make(sess.User),
		meta:     makeMeta(capString(sess.IP, MaxIP), capString(sess.UserAgent, MaxUserAgent), sess.Remember),
		created:  times[0],
		lastSeen: times[1],
		expires:  times[2],
		idle:     int64(sess.Idle),
		fp:       sess.Fingerprint,
	}, nil
}

// session converts a record back, with times in UTC. It does not allocate.
func (r *record) session() Session {
	return Session{
		User:        r.user.Value(),
		Created:     time.Unix(0, r.created).UTC(),
		LastSeen:    time.Unix(0, r.lastSeen).UTC(),
		Expires:     time.Unix(0, r.expires).UTC(),
		Idle:        time.Duration(r.idle),
		Remember:    r.remember(),
		IP:          r.ip(),
		UserAgent:   r.userAgent(),
		Fingerprint: r.fp,
	}
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
