package machine

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Reasons a present credential is refused. Authenticate wraps them with the
// credential's id where it has one; test with errors.Is.
var (
	ErrMalformed    = errors.New("malformed authorization")
	ErrUnknown      = errors.New("unknown or revoked credential")
	ErrMismatch     = errors.New("token does not match")
	ErrBadSignature = errors.New("signature does not match")
	ErrExpired      = errors.New("credential expired")
	ErrTimestamp    = errors.New("timestamp outside window")
	ErrReplay       = errors.New("nonce replayed")
	ErrNonce        = errors.New("nonce cache unavailable")
	// ErrStale: the shared credentials could not be confirmed current within
	// MaxStale, so none is trusted until a refresh succeeds.
	ErrStale = errors.New("machine credentials not confirmed current")
)

// MaxStale bounds how old a shared (Redis) credentials snapshot may be: each
// instance re-reads the credentials' version every second, and one that has
// not succeeded for MaxStale refuses every token and signature until it does.
// So a revocation made on any instance is refused on every instance within
// MaxStale, even when an instance cannot reach Redis and cannot tell.
const MaxStale = 3 * time.Second

// Identity is who a machine credential acts as.
type Identity struct {
	// User is the canonical user name.
	User string
	// Generation is the user's credential generation when the credential was
	// issued; the caller accepts the credential only while the user still has it.
	Generation uint64
}

// DefaultWindow is how far a signed request's timestamp may be from authd's clock.
const DefaultWindow = 300 * time.Second

// Request is what a verify subrequest says about the original request.
type Request struct {
	// Method is the original method ($request_method).
	Method string
	// URI is the raw request URI as sent ($request_uri): path and query, still percent-encoded.
	URI string
	// Host is the request's host ($host); a port, if present, is ignored.
	Host string
	// Authorization is the client's Authorization header; "" when absent.
	Authorization string
}

// Source is where a Verifier finds tokens and keys: a *File or *RedisRecords.
type Source interface {
	// current returns the snapshot and when it was last confirmed to match
	// the shared store; a zero time means a local source, always current.
	current() (*snapshot, time.Time)
}

// Verifier authenticates machine clients against a records source.
type Verifier struct {
	src     Source
	nonces  NonceCache
	window  time.Duration
	now     func() time.Time
	started int64 // unix seconds; earlier signatures are refused
}

// NewVerifier returns a Verifier reading credentials from src (nil: none), with
// nonces remembered in nonces (nil: every signed request is refused), and signed
// timestamps accepted within ±window of now() (≤ 0: DefaultWindow).
//
// Requests signed before NewVerifier ran are refused: an in-memory nonce cache
// starts empty, so a request the previous process accepted could otherwise be
// replayed after a restart. A client whose clock runs d behind gets 401 for the
// first d after a restart. Create one Verifier per process and keep it across
// reloads (the File reloads itself).
func NewVerifier(src Source, nonces NonceCache, window time.Duration, now func() time.Time) *Verifier {
	if window <= 0 {
		window = DefaultWindow
	}
	return &Verifier{src: src, nonces: nonces, window: window, now: now, started: now().Unix()}
}

// Authenticate returns the user a request's Authorization header proves. present
// is false when there is no Authorization header or its scheme is none of
// Bearer, Scheme and RetiredScheme: the caller then tries the session cookie. present with
// a non-nil err means the credential is refused (answer 401); err names the
// reason for the log and never holds a secret. Tokens count only from the
// header, never from the query string. The caller still checks that the user
// exists, is not locked and still has the credential's generation (see Identify).
func (v *Verifier) Authenticate(ctx context.Context, r Request) (user string, present bool, err error) {
	id, present, err := v.Identify(ctx, r)
	return id.User, present, err
}

// Identify is Authenticate returning the user's credential generation the
// credential was issued for, which the caller must compare with the user's
// current one. A shared snapshot older than MaxStale refuses every credential
// with ErrStale.
func (v *Verifier) Identify(ctx context.Context, r Request) (id Identity, present bool, err error) {
	if r.Authorization == "" {
		return id, false, nil
	}
	scheme, params := cutScheme(r.Authorization)
	switch {
	case asciiEqualFold(scheme, "Bearer"):
		id, err = v.bearer(params)
	case asciiEqualFold(scheme, Scheme):
		id, err = v.signed(ctx, r, params)
	case asciiEqualFold(scheme, RetiredScheme):
		err = fmt.Errorf("signature header: %w: retired scheme %s, sign with %s", ErrMalformed, RetiredScheme, Scheme)
	default:
		return id, false, nil
	}
	if err != nil {
		return Identity{}, true, err
	}
	return id, true, nil
}

// snap returns the current snapshot, or ErrStale when a shared one was last
// confirmed more than MaxStale ago.
func (v *Verifier) snap() (*snapshot, error) {
	if v.src == nil {
		return nil, nil
	}
	s, confirmed := v.src.current()
	if !confirmed.IsZero() {
		if age := v.now().Sub(confirmed); age > MaxStale {
			return nil, fmt.Errorf("%w for %s", ErrStale, age.Round(100*time.Millisecond))
		}
	}
	return s, nil
}

// zeroSum stands in for an unknown token's hash so that both paths compare.
var zeroSum [32]byte

func (v *Verifier) bearer(tok string) (Identity, error) {
	var none Identity
	s, err := v.snap()
	if err != nil {
		return none, err
	}
	id, ok := splitToken(tok)
	if !ok {
		return none, fmt.Errorf("bearer token: %w", ErrMalformed)
	}
	sum := sha256.Sum256([]byte(tok))
	var e tokenEntry
	found := false
	if s != nil {
		e, found = s.tokens[id]
	}
	want := e.sum
	if !found {
		want = zeroSum
	}
	match := subtle.ConstantTimeCompare(sum[:], want[:]) == 1
	switch {
	case !found:
		return none, fmt.Errorf("token %s: %w", id, ErrUnknown)
	case !match:
		return none, fmt.Errorf("token %s: %w", id, ErrMismatch)
	case !v.now().Before(e.expires):
		return none, fmt.Errorf("token %s: %w", id, ErrExpired)
	}
	return e.id, nil
}

func (v *Verifier) signed(ctx context.Context, r Request, params string) (Identity, error) {
	var none Identity
	s, err := v.snap()
	if err != nil {
		return none, err
	}
	a, err := parseSigned(params)
	if err != nil {
		return none, fmt.Errorf("signature header: %w: %v", ErrMalformed, err)
	}
	req, err := canonicalRequest(r.Method, r.URI, r.Host)
	if err != nil {
		return none, fmt.Errorf("key %s: request cannot be signed: %w: %v", a.keyID, ErrMalformed, err)
	}
	var k keyEntry
	found := false
	if s != nil {
		k, found = s.keys[a.keyID]
	}
	if !found {
		return none, fmt.Errorf("key %s: %w", a.keyID, ErrUnknown)
	}
	now := v.now()
	ts := time.Unix(a.unix, 0)
	if skew := now.Sub(ts); skew > v.window || skew < -v.window {
		return none, fmt.Errorf("key %s: %w (off by %s)", a.keyID, ErrTimestamp, skew.Round(time.Second))
	}
	if a.unix < v.started {
		return none, fmt.Errorf("key %s: %w (signed before authd started)", a.keyID, ErrTimestamp)
	}
	mac := hmac.New(sha256.New, k.secret)
	mac.Write([]byte(stringToSign(req, a.ts, a.nonce, a.keyID)))
	var got [32]byte
	hex.Decode(got[:], []byte(a.sig)) // parseSigned checked 64 lower-case hex digits
	if !hmac.Equal(mac.Sum(nil), got[:]) {
		return none, fmt.Errorf("key %s: %w", a.keyID, ErrBadSignature)
	}
	if !now.Before(k.expires) {
		return none, fmt.Errorf("key %s: %w", a.keyID, ErrExpired)
	}
	// Only now, with the signature proven, may the request spend cache space.
	if v.nonces == nil {
		return none, fmt.Errorf("key %s: %w: none configured", a.keyID, ErrNonce)
	}
	replayed, err := v.nonces.Seen(ctx, a.keyID, a.nonce, ts.Add(v.window))
	if err != nil {
		return none, fmt.Errorf("key %s: %w: %w", a.keyID, ErrNonce, err)
	}
	if replayed {
		return none, fmt.Errorf("key %s: %w", a.keyID, ErrReplay)
	}
	return k.id, nil
}
