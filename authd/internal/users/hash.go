package users

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

const (
	// MaxPasswordBytes is the longest password authd hashes or verifies; longer ones never
	// verify, so an attacker cannot make the server hash megabytes.
	MaxPasswordBytes = 1024
	// MinBcryptCost is the lowest bcrypt cost a stored hash may have.
	MinBcryptCost = 10
	// bcryptMaxPasswordBytes is how much of a password bcrypt reads; the rest is ignored.
	bcryptMaxPasswordBytes = 72

	saltBytes = 16
	keyBytes  = 32
	// dummySalt salts the work Dummy burns; its value is irrelevant.
	dummySalt = "authd-dummy-salt"
)

var (
	// ErrUnsupportedHash is returned for a stored hash of a scheme authd refuses.
	ErrUnsupportedHash = errors.New("unsupported hash scheme")
	// ErrMalformedHash is returned for an argon2id or bcrypt hash that does not parse.
	ErrMalformedHash = errors.New("malformed hash")
	// ErrHashLimits is returned for a stored hash whose parameters exceed the Limits.
	ErrHashLimits = errors.New("hash parameters exceed the limits")
)

// Params are argon2id cost parameters.
type Params struct {
	MemoryKiB uint32
	Time      uint32
	Threads   uint8
}

// DefaultParams returns the OWASP baseline for argon2id: 19 MiB, 2 passes, 1 thread.
func DefaultParams() Params { return Params{MemoryKiB: 19 * 1024, Time: 2, Threads: 1} }

// Validate reports whether argon2id can run with p at all; it does not judge strength.
func (p Params) Validate() error {
	switch {
	case p.Time < 1:
		return errors.New("argon2id time must be at least 1")
	case p.Threads < 1:
		return errors.New("argon2id threads must be at least 1")
	case p.MemoryKiB < 8*uint32(p.Threads):
		return fmt.Errorf("argon2id memory must be at least 8 KiB per thread (got %d KiB)", p.MemoryKiB)
	}
	return nil
}

// Limits bound the parameters a stored hash may demand, so a hostile or mistyped hash cannot
// make a login allocate gigabytes or run for minutes. A zero field takes its DefaultLimits value.
type Limits struct {
	MaxMemoryKiB  uint32
	MaxTime       uint32
	MaxThreads    uint8
	MaxBcryptCost int
}

// DefaultLimits returns generous bounds: 1 GiB, 20 passes, 16 threads, bcrypt cost 14.
func DefaultLimits() Limits {
	return Limits{MaxMemoryKiB: 1 << 20, MaxTime: 20, MaxThreads: 16, MaxBcryptCost: 14}
}

// Limits relative to the configured parameters: stored argon2id hashes may demand at most
// limitFactor times the memory and passes of new ones.
const limitFactor = 4

// LimitsFor returns the bounds for stored hashes when new hashes use p: argon2id at most 4 times
// p's memory and time and no more threads than p (never above DefaultLimits), and bcrypt cost at
// most maxBcryptCost (0 means DefaultLimits'). A hash within them costs one login at most about 16
// times a new hash's work (memory times passes), or 2^(maxBcryptCost-10) bcrypt-10 checks.
//
// Threads are not multiplied: argon2id runs its lanes in parallel, so one p=4 hash occupies four
// cores. On a 2-core machine, in one run of tests/bench -modes heavy, one such hash at the 4x bound
// pushed verify p99 to 4.6 times its value alone where the same hash at p=1 gave 1.4.
func LimitsFor(p Params, maxBcryptCost int) Limits {
	d := DefaultLimits()
	l := Limits{
		MaxMemoryKiB:  uint32(min(uint64(p.MemoryKiB)*limitFactor, uint64(d.MaxMemoryKiB))),
		MaxTime:       uint32(min(uint64(p.Time)*limitFactor, uint64(d.MaxTime))),
		MaxThreads:    uint8(min(int(p.Threads), int(d.MaxThreads))),
		MaxBcryptCost: min(maxBcryptCost, d.MaxBcryptCost),
	}
	return l.withDefaults()
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxMemoryKiB == 0 {
		l.MaxMemoryKiB = d.MaxMemoryKiB
	}
	if l.MaxTime == 0 {
		l.MaxTime = d.MaxTime
	}
	if l.MaxThreads == 0 {
		l.MaxThreads = d.MaxThreads
	}
	if l.MaxBcryptCost == 0 {
		l.MaxBcryptCost = d.MaxBcryptCost
	}
	return l
}

// Hash returns an argon2id hash of password in PHC form
// ($argon2id$v=19$m=…,t=…,p=…$salt$key) with a fresh 16-byte salt and a 32-byte key.
func Hash(password string, p Params) (string, error) {
	if err := p.Validate(); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	if len(password) > MaxPasswordBytes {
		return "", fmt.Errorf("hash password: password longer than %d bytes", MaxPasswordBytes)
	}
	salt := make([]byte, saltBytes)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: read salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, keyBytes)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version,
		p.MemoryKiB, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// Verify reports whether password matches the stored hash encoded (argon2id, or bcrypt
// $2a$/$2b$/$2y$), comparing in constant time. upgrade is true after a match when the hash
// should be replaced by Hash(password, p): it is bcrypt, or argon2id weaker than p.
// err is set, without any hashing, for a hash that does not parse, is of another scheme, or
// demands more than lim. A password longer than MaxPasswordBytes never matches, and neither
// does one longer than 72 bytes against bcrypt, which would only read its first 72 bytes.
func Verify(encoded, password string, p Params, lim Limits) (ok, upgrade bool, err error) {
	h, err := parseHash(encoded, lim)
	if err != nil {
		return false, false, err
	}
	if len(password) > MaxPasswordBytes {
		return false, false, nil
	}
	if h.bcryptCost > 0 {
		// An over-long password still burns the bcrypt work, so the reply time does not
		// tell that this account exists and has a bcrypt hash.
		pw := []byte(password)
		tooLong := len(pw) > bcryptMaxPasswordBytes
		if tooLong {
			pw = pw[:bcryptMaxPasswordBytes]
		}
		switch err := bcrypt.CompareHashAndPassword([]byte(encoded), pw); {
		case err == nil:
			return !tooLong, !tooLong, nil
		case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
			return false, false, nil
		default:
			return false, false, ErrMalformedHash // bcrypt's error text may quote the hash
		}
	}
	a := h.argon
	key := argon2.IDKey([]byte(password), a.salt, a.p.Time, a.p.MemoryKiB, a.p.Threads, uint32(len(a.key)))
	if subtle.ConstantTimeCompare(key, a.key) != 1 {
		return false, false, nil
	}
	return true, a.weakerThan(p), nil
}

// Dummy burns the work of an argon2id verification with parameters p and discards it. Run it
// for unknown users so that the reply time does not reveal whether an account exists.
// Invalid p falls back to DefaultParams.
func Dummy(password string, p Params) {
	if p.Validate() != nil {
		p = DefaultParams()
	}
	if len(password) > MaxPasswordBytes {
		password = password[:MaxPasswordBytes]
	}
	argon2.IDKey([]byte(password), []byte(dummySalt), p.Time, p.MemoryKiB, p.Threads, keyBytes)
}

// Cost identifies how much work verifying a stored hash takes: a bcrypt cost, or argon2id
// parameters. It is comparable, so it can key a map; the zero Cost is no hash.
type Cost struct {
	BcryptCost int    // > 0 for bcrypt
	Argon2id   Params // set when BcryptCost is 0
}

// CostOf returns the Cost of verifying encoded, or false for a hash Verify would refuse
// under lim.
func CostOf(encoded string, lim Limits) (Cost, bool) {
	h, err := parseHash(encoded, lim)
	if err != nil {
		return Cost{}, false
	}
	if h.bcryptCost > 0 {
		return Cost{BcryptCost: h.bcryptCost}, true
	}
	return Cost{Argon2id: h.argon.p}, true
}

// Burn does the work of verifying one hash of cost c and discards it, so that the time a
// verification takes can be measured before any user logs in. The zero Cost does nothing.
func Burn(c Cost) {
	switch {
	case c.BcryptCost > 0:
		// Hashing at a cost runs the same key schedule as comparing against a hash of it.
		_, _ = bcrypt.GenerateFromPassword([]byte("authd timing probe"), c.BcryptCost)
	case c.Argon2id.Validate() == nil:
		argon2.IDKey([]byte("authd timing probe"), []byte(dummySalt), c.Argon2id.Time, c.Argon2id.MemoryKiB, c.Argon2id.Threads, keyBytes)
	}
}

// parsedHash is a stored hash that passed every check and may be run.
type parsedHash struct {
	bcryptCost int // > 0 for bcrypt
	argon      argonHash
}

type argonHash struct {
	p         Params
	salt, key []byte
}

func (a argonHash) weakerThan(p Params) bool {
	return a.p.MemoryKiB < p.MemoryKiB || a.p.Time < p.Time || len(a.salt) < saltBytes || len(a.key) < keyBytes
}

// parseHash checks a stored hash against the supported schemes and lim. Its errors never
// contain any part of the hash: they end up in logs and on operators' terminals.
func parseHash(s string, lim Limits) (parsedHash, error) {
	lim = lim.withDefaults()
	switch {
	case strings.HasPrefix(s, "$argon2id$"):
		a, err := parseArgon2id(s)
		if err != nil {
			return parsedHash{}, err
		}
		switch {
		case a.p.MemoryKiB > lim.MaxMemoryKiB:
			return parsedHash{}, fmt.Errorf("%w: argon2id memory %d KiB is above the limit %d KiB", ErrHashLimits, a.p.MemoryKiB, lim.MaxMemoryKiB)
		case a.p.Time > lim.MaxTime:
			return parsedHash{}, fmt.Errorf("%w: argon2id time %d is above the limit %d", ErrHashLimits, a.p.Time, lim.MaxTime)
		case a.p.Threads > lim.MaxThreads:
			return parsedHash{}, fmt.Errorf("%w: argon2id threads %d is above the limit %d", ErrHashLimits, a.p.Threads, lim.MaxThreads)
		}
		return parsedHash{argon: a}, nil
	case isBcrypt(s):
		cost, err := parseBcrypt(s)
		if err != nil {
			return parsedHash{}, err
		}
		if cost > lim.MaxBcryptCost {
			return parsedHash{}, fmt.Errorf("%w: bcrypt cost %d is above the limit %d", ErrHashLimits, cost, lim.MaxBcryptCost)
		}
		return parsedHash{bcryptCost: cost}, nil
	}
	return parsedHash{}, fmt.Errorf("%w %s(only argon2id and bcrypt)", ErrUnsupportedHash, schemeName(s))
}

// schemeName names a refused scheme for error messages, from a fixed set of labels.
func schemeName(s string) string {
	prefixes := []struct{ prefix, name string }{
		{"$argon2i$", "argon2i"},
		{"$argon2d$", "argon2d"},
		{"$1$", "MD5-crypt"},
		{"$apr1$", "Apache MD5-crypt"},
		{"$md5", "MD5-crypt"},
		{"$5$", "SHA-256-crypt"},
		{"$6$", "SHA-512-crypt"},
		{"$y$", "yescrypt"},
		{"$7$", "scrypt"},
		{"$scrypt", "scrypt"},
		{"$pbkdf2", "PBKDF2"},
		{"$2", "bcrypt variant"},
		{"{SHA}", "{SHA}"},
		{"{SSHA}", "{SSHA}"},
		{"{", "LDAP-style"},
	}
	for _, p := range prefixes {
		if strings.HasPrefix(s, p.prefix) {
			return p.name + " "
		}
	}
	if s == "" {
		return "(empty) "
	}
	if strings.HasPrefix(s, "$") {
		return ""
	}
	return "(plaintext or DES-crypt) "
}

func isBcrypt(s string) bool {
	return strings.HasPrefix(s, "$2a$") || strings.HasPrefix(s, "$2b$") || strings.HasPrefix(s, "$2y$")
}

// parseBcrypt checks the fixed bcrypt layout $2b$CC$<22 salt + 31 hash chars> and returns
// the cost.
func parseBcrypt(s string) (int, error) {
	const length = 60
	if len(s) != length || s[6] != '$' || !isDigit(s[4]) || !isDigit(s[5]) {
		return 0, fmt.Errorf("%w: bcrypt hash must be %d characters: $2b$, a two-digit cost, $, 53 characters", ErrMalformedHash, length)
	}
	for i := 7; i < len(s); i++ {
		if !bcryptByte(s[i]) {
			return 0, fmt.Errorf("%w: bcrypt hash has a character outside its alphabet", ErrMalformedHash)
		}
	}
	cost := int(s[4]-'0')*10 + int(s[5]-'0')
	if cost > bcrypt.MaxCost {
		return 0, fmt.Errorf("%w: bcrypt cost %d is above bcrypt's maximum %d", ErrMalformedHash, cost, bcrypt.MaxCost)
	}
	if cost < MinBcryptCost {
		return 0, fmt.Errorf("%w: bcrypt cost %d is below the minimum %d", ErrHashLimits, cost, MinBcryptCost)
	}
	return cost, nil
}

func bcryptByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '/'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// parseArgon2id parses $argon2id$v=19$m=M,t=T,p=P$salt$key strictly.
func parseArgon2id(s string) (argonHash, error) {
	bad := func(what string) (argonHash, error) {
		return argonHash{}, fmt.Errorf("%w: argon2id %s", ErrMalformedHash, what)
	}
	parts := strings.Split(s, "$")
	if len(parts) != 6 {
		return bad("hash must have the form $argon2id$v=19$m=…,t=…,p=…$salt$key")
	}
	if parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return bad("version must be v=19")
	}
	ps := strings.Split(parts[3], ",")
	if len(ps) != 3 {
		return bad("parameters must be m=…,t=…,p=…")
	}
	var vals [3]uint32
	for i, name := range []string{"m=", "t=", "p="} {
		v, ok := parseDecimal(ps[i], name)
		if !ok {
			return bad("parameters must be m=…,t=…,p=… in decimal")
		}
		vals[i] = v
	}
	if vals[2] > 255 {
		return bad("threads must be at most 255")
	}
	a := argonHash{p: Params{MemoryKiB: vals[0], Time: vals[1], Threads: uint8(vals[2])}}
	if a.p.Validate() != nil {
		return bad("parameters out of range")
	}
	var err error
	enc := base64.RawStdEncoding.Strict()
	if a.salt, err = enc.DecodeString(parts[4]); err != nil || len(a.salt) < 8 || len(a.salt) > 64 {
		return bad("salt must be 8 to 64 bytes of unpadded base64")
	}
	if a.key, err = enc.DecodeString(parts[5]); err != nil || len(a.key) < 16 || len(a.key) > 64 {
		return bad("key must be 16 to 64 bytes of unpadded base64")
	}
	return a, nil
}

// parseDecimal parses prefix followed by a canonical decimal uint32. It reports no detail,
// unlike strconv, whose errors quote the input.
func parseDecimal(s, prefix string) (uint32, bool) {
	digits, ok := strings.CutPrefix(s, prefix)
	if !ok || digits == "" || len(digits) > 10 || (digits[0] == '0' && len(digits) > 1) {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(digits); i++ {
		if !isDigit(digits[i]) {
			return 0, false
		}
		v = v*10 + uint64(digits[i]-'0')
	}
	if v > 1<<32-1 {
		return 0, false
	}
	return uint32(v), true
}
