package session

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Tracking timing: the tracker pings Redis on its connection every
// trackPing, and a local copy is used only while the last answer is younger
// than trackFresh (see tracker.fresh).
const (
	trackPing  = 50 * time.Millisecond
	trackFresh = 200 * time.Millisecond
	// trackMax bounds the local copies; at the bound they are all dropped.
	trackMax = 100_000
)

// tracker keeps local copies of the sessions Get read from Redis, and drops
// a copy the moment Redis reports its key changed: Redis's client-side
// caching protocol (RESP3, CLIENT TRACKING ON BCAST PREFIX <prefix>s:) on a
// connection of the tracker's own, which receives an invalidation for every
// write to any session key, by any instance (a login, touch, logout,
// revocation, user change or expiry).
//
// A copy is used only when nothing is pending on that connection: no byte
// waiting in the kernel (a peek), none read but not yet applied (busy), and
// an answer to a PING sent at most trackFresh ago. Redis puts a write's
// invalidation on the connection before it answers the writer, so a logout
// on another instance is on its way here before that instance can even reply
// to the browser; the browser's next request reaches this instance later
// than that. If the connection breaks, stalls or cannot be set up (an
// older Redis, an ACL without CLIENT), every copy is dropped and Get asks
// Redis each time, as without the tracker, until it is back.
type tracker struct {
	dial   func(ctx context.Context) (net.Conn, error)
	hello  []string // HELLO 3 [AUTH user password]
	prefix string   // of the session keys: "<key_prefix>s:"
	onErr  func(error)

	mu sync.RWMutex
	m  map[Key]tracked

	// seq changes with every invalidation applied, flush, and connection
	// change: a Get that read Redis keeps its result only if seq did not
	// move meanwhile.
	seq    atomic.Uint64
	live   atomic.Bool
	busy   atomic.Int32
	pongAt atomic.Int64 // when the PING last answered was sent (since base)
	fd     atomic.Int64 // the connection's descriptor while live, else -1
	hits   atomic.Uint64
	misses atomic.Uint64

	base time.Time // pongAt counts from here, on the monotonic clock
	stop chan struct{}
	done chan struct{}
}

type tracked struct {
	sess Session
	ver  int64
}

func newTracker(dial func(context.Context) (net.Conn, error), username, password, name, keyPrefix string, onErr func(error)) *tracker {
	t := &tracker{dial: dial, prefix: keyPrefix + "s:", onErr: onErr, m: map[Key]tracked{},
		base: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	t.hello = []string{"HELLO", "3"}
	if password != "" {
		if username == "" {
			username = "default"
		}
		t.hello = append(t.hello, "AUTH", username, password)
	}
	if name != "" {
		t.hello = append(t.hello, "SETNAME", name)
	}
	t.fd.Store(-1)
	go t.run()
	return t
}

func (t *tracker) close() {
	close(t.stop)
	<-t.done
}

// get returns the local copy of k, if there is one and it is still current.
func (t *tracker) get(k *Key) (tracked, bool) {
	// Fresh first, then the copy: an invalidation that reached this host
	// before the check has been applied by the time of the lookup. (The
	// other way round, a copy looked up just before the reader applied an
	// invalidation could pass a check made just after.)
	if !t.live.Load() || !t.fresh() {
		t.misses.Add(1)
		return tracked{}, false
	}
	t.mu.RLock()
	c, ok := t.m[*k]
	t.mu.RUnlock()
	if ok {
		t.hits.Add(1)
	} else {
		t.misses.Add(1)
	}
	return c, ok
}

// fresh reports whether every invalidation Redis sent before the last
// answered PING, and every byte that has reached this host since, has been
// applied. The order matters: the kernel first (a byte the reader takes
// after that check made busy non-zero before it took it), then busy.
func (t *tracker) fresh() bool {
	if time.Since(t.base)-time.Duration(t.pongAt.Load()) > trackFresh {
		return false
	}
	fd := t.fd.Load()
	if fd < 0 {
		return false
	}
	// Anything waiting in the kernel, a byte or the end of the connection: a
	// non-blocking peek answers EAGAIN only when there is neither. (SIOCINQ
	// is cheaper but blind to a FIN, which a killed connection sends; a poll
	// costs half as much again on a VM.) It cannot block, so it goes raw,
	// without telling the Go scheduler.
	var b [1]byte
	_, _, errno := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), 1,
		unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
	if errno != unix.EAGAIN {
		return false
	}
	return t.busy.Load() == 0 && t.live.Load()
}

// begin is called before Get reads Redis; put keeps what it read only if
// nothing was invalidated in between.
func (t *tracker) begin() (uint64, bool) { return t.seq.Load(), t.live.Load() }

func (t *tracker) put(k *Key, seq uint64, c tracked) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.live.Load() || t.seq.Load() != seq {
		return
	}
	if len(t.m) >= trackMax {
		clear(t.m)
	}
	t.m[*k] = c
}

func (t *tracker) invalidate(redisKey []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seq.Add(1)
	if !bytes.HasPrefix(redisKey, []byte(t.prefix)) {
		return
	}
	var k Key
	if h := redisKey[len(t.prefix):]; len(h) == 2*len(k) {
		if _, err := hex.Decode(k[:], h); err == nil {
			delete(t.m, k)
		}
	}
}

func (t *tracker) flush() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seq.Add(1)
	clear(t.m)
}

// run keeps a tracking connection up until close.
func (t *tracker) run() {
	defer close(t.done)
	backoff := 100 * time.Millisecond
	quiet := false // an error was reported and tracking has not worked since
	for {
		start := time.Now()
		err := t.session()
		wasLive := t.live.Swap(false)
		t.fd.Store(-1)
		t.flush()
		if wasLive {
			quiet = false
		}
		if err != nil && t.onErr != nil && !quiet {
			t.onErr(err)
			quiet = true
		}
		if time.Since(start) > 10*time.Second {
			backoff = 100 * time.Millisecond
		}
		select {
		case <-t.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

var errTrackStalled = errors.New("redis tracking connection: no answer to PING in time")

// session runs one tracking connection until it fails or close.
func (t *tracker) session() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	conn, err := t.dial(ctx)
	cancel()
	if err != nil {
		return fmt.Errorf("redis tracking connection: %w", err)
	}
	defer conn.Close()
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return errors.New("redis tracking connection: not a socket (TLS is not supported)")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	if _, err := conn.Write(command(nil, t.hello...)); err != nil {
		return err
	}
	if _, err := conn.Write(command(nil, "CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", t.prefix)); err != nil {
		return err
	}
	_ = rc.Control(func(fd uintptr) { t.fd.Store(int64(fd)) })

	// Pings, each answered in order; sent holds their send times.
	var smu sync.Mutex
	var sent []time.Duration // since base
	pingErr := make(chan error, 1)
	pingStop := make(chan struct{})
	defer close(pingStop)
	go func() {
		tk := time.NewTicker(trackPing)
		defer tk.Stop()
		ping := command(nil, "PING")
		for {
			smu.Lock()
			if len(sent) > 0 && time.Since(t.base)-sent[0] > 2*time.Second {
				smu.Unlock()
				pingErr <- errTrackStalled
				_ = conn.Close()
				return
			}
			sent = append(sent, time.Since(t.base))
			smu.Unlock()
			if _, err := conn.Write(ping); err != nil {
				pingErr <- err
				return
			}
			select {
			case <-tk.C:
			case <-pingStop:
				return
			case <-t.stop:
				_ = conn.Close()
				return
			}
		}
	}()

	store := make([]byte, 0, 4096)
	buf := store
	tmp := make([]byte, 4096)
	state := 0 // 0: HELLO's answer due, 1: TRACKING's, 2: tracking
	for {
		var n int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			t.busy.Store(1)
			n, rerr = unix.Read(int(fd), tmp)
			if rerr == unix.EAGAIN {
				t.busy.Store(0)
				return false
			}
			return true
		})
		if err == nil {
			err = rerr
		}
		if err == nil && n == 0 {
			err = errors.New("redis closed the tracking connection")
		}
		if err != nil {
			t.busy.Store(0)
			select {
			case perr := <-pingErr:
				return perr
			default:
			}
			select {
			case <-t.stop:
				return nil
			default:
			}
			return fmt.Errorf("redis tracking connection: %w", err)
		}
		buf = append(buf, tmp[:n]...)
		for {
			v, rest, ok, perr := parseRESP(buf)
			if perr != nil {
				t.busy.Store(0)
				return fmt.Errorf("redis tracking connection: %w", perr)
			}
			if !ok {
				break
			}
			buf = rest
			switch {
			case v.kind == '-':
				t.busy.Store(0)
				return fmt.Errorf("redis tracking connection: %s", v.s)
			case v.kind == '>':
				if len(v.a) == 2 && v.a[0].s == "invalidate" {
					if v.a[1].null {
						t.flush()
					} else {
						for _, k := range v.a[1].a {
							t.invalidate([]byte(k.s))
						}
					}
				}
			case state == 0:
				state = 1
			case state == 1:
				if v.s != "OK" {
					t.busy.Store(0)
					return fmt.Errorf("redis tracking connection: CLIENT TRACKING answered %q", v.s)
				}
				state = 2
			case v.s == "PONG":
				smu.Lock()
				if len(sent) > 0 {
					t.pongAt.Store(int64(sent[0]))
					sent = sent[1:]
				}
				smu.Unlock()
				if state == 2 && !t.live.Load() {
					t.flush()
					t.live.Store(true)
				}
			}
		}
		if len(buf) == 0 {
			buf = store[:0]
		} else {
			buf = append([]byte(nil), buf...) // a reply cut in two: rare
		}
		t.busy.Store(0)
	}
}

func command(b []byte, args ...string) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, "\r\n"...)
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, "\r\n"...)
		b = append(b, a...)
		b = append(b, "\r\n"...)
	}
	return b
}

// respValue is one RESP2/RESP3 reply: kind is its type byte; s a simple or
// bulk string (or a number's text); a the elements of an aggregate.
type respValue struct {
	kind byte
	s    string
	a    []respValue
	null bool
}

var errRESP = errors.New("malformed RESP reply")

// parseRESP parses one reply from the start of b: ok false means b holds
// only part of one.
func parseRESP(b []byte) (v respValue, rest []byte, ok bool, err error) {
	i := bytes.Index(b, []byte("\r\n"))
	if i < 0 {
		return v, b, false, nil
	}
	if i == 0 {
		return v, b, false, errRESP
	}
	v.kind = b[0]
	line, rest := string(b[1:i]), b[i+2:]
	switch v.kind {
	case '+', '-', ':', ',', '(', '#':
		v.s = line
		return v, rest, true, nil
	case '_':
		v.null = true
		return v, rest, true, nil
	case '$', '=', '!':
		n, err := strconv.Atoi(line)
		if err != nil {
			return v, b, false, errRESP
		}
		if n < 0 {
			v.null = true
			return v, rest, true, nil
		}
		if len(rest) < n+2 {
			return v, b, false, nil
		}
		v.s = string(rest[:n])
		return v, rest[n+2:], true, nil
	case '*', '>', '~', '%', '|':
		n, err := strconv.Atoi(line)
		if err != nil {
			return v, b, false, errRESP
		}
		if n < 0 {
			v.null = true
			return v, rest, true, nil
		}
		if v.kind == '%' || v.kind == '|' {
			n *= 2
		}
		for range n {
			var e respValue
			e, rest, ok, err = parseRESP(rest)
			if err != nil || !ok {
				return v, b, false, err
			}
			v.a = append(v.a, e)
		}
		if v.kind == '|' {
			// An attribute precedes the reply it annotates.
			return parseRESP(rest)
		}
		return v, rest, true, nil
	}
	return v, b, false, errRESP
}
