package users

import (
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// testParams are cheap argon2id parameters for tests where cost is irrelevant.
var testParams = Params{MemoryKiB: 64, Time: 1, Threads: 1}

const (
	bcryptPassword = "correct horse battery"
	bcrypt10       = "$2a$10$gL.IlTjMHT.2rFniuBLaWOo4VwW8HXUaHlR/lZ48XLzZUM4xNeeHy" // bcryptPassword at cost 10
	bcrypt04       = "$2a$04$4oltSN6aAT7lRUv1vtuaNehJqqZGiZf7QiM0reox6zebzNxhoEkTK" // bcryptPassword at cost 4
)

func mustHash(tb testing.TB, password string, p Params) string {
	tb.Helper()
	h, err := Hash(password, p)
	if err != nil {
		tb.Fatalf("Hash: %v", err)
	}
	return h
}

func TestHashFormat(t *testing.T) {
	h := mustHash(t, "passphrase here", testParams)
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Errorf("got %q, want prefix $argon2id$v=19$m=64,t=1,p=1$", h)
	}
	a, err := parseArgon2id(h)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.salt) != 16 || len(a.key) != 32 {
		t.Errorf("got salt %d bytes, key %d bytes, want 16 and 32", len(a.salt), len(a.key))
	}
	if h2 := mustHash(t, "passphrase here", testParams); h2 == h {
		t.Errorf("two hashes of one password are equal: salt is not random")
	}
}

func TestHashRefuses(t *testing.T) {
	tests := []struct {
		name     string
		password string
		p        Params
	}{
		{"too long", strings.Repeat("x", MaxPasswordBytes+1), testParams},
		{"zero time", "password", Params{MemoryKiB: 64, Time: 0, Threads: 1}},
		{"zero threads", "password", Params{MemoryKiB: 64, Time: 1, Threads: 0}},
		{"memory below 8 KiB per thread", "password", Params{MemoryKiB: 15, Time: 1, Threads: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if h, err := Hash(tt.password, tt.p); err == nil {
				t.Errorf("got %q, nil; want an error", h)
			}
		})
	}
}

func TestVerifyArgon2id(t *testing.T) {
	const pw = "correct horse battery staple"
	h := mustHash(t, pw, testParams)
	lower := mustHash(t, pw, Params{MemoryKiB: 32, Time: 1, Threads: 1})
	tests := []struct {
		name        string
		hash, pw    string
		p           Params
		ok, upgrade bool
	}{
		{"match", h, pw, testParams, true, false},
		{"wrong password", h, pw + "!", testParams, false, false},
		{"empty password", h, "", testParams, false, false},
		{"case differs", h, strings.ToUpper(pw), testParams, false, false},
		{"match, policy wants more memory", h, pw, Params{MemoryKiB: 128, Time: 1, Threads: 1}, true, true},
		{"match, policy wants more time", h, pw, Params{MemoryKiB: 64, Time: 2, Threads: 1}, true, true},
		{"match, stored is stronger than policy", h, pw, Params{MemoryKiB: 32, Time: 1, Threads: 1}, true, false},
		{"weaker stored hash", lower, pw, testParams, true, true},
		{"wrong password never asks for upgrade", lower, "nope", testParams, false, false},
		{"over MaxPasswordBytes", mustHash(t, strings.Repeat("a", MaxPasswordBytes), testParams), strings.Repeat("a", MaxPasswordBytes+1), testParams, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, upgrade, err := Verify(tt.hash, tt.pw, tt.p, DefaultLimits())
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if ok != tt.ok || upgrade != tt.upgrade {
				t.Errorf("got ok=%v upgrade=%v, want ok=%v upgrade=%v", ok, upgrade, tt.ok, tt.upgrade)
			}
		})
	}
}

func TestVerifyArgon2idKnownVector(t *testing.T) {
	// Made by argon2-cffi (the reference C implementation):
	// PasswordHasher(time_cost=1, memory_cost=64, parallelism=1).hash("correct horse battery staple")
	const h = "$argon2id$v=19$m=64,t=1,p=1$zdjpRPRqrdo3kwkC65ImZQ$J0AYA4uVIFUkJ9fdOPpdXyqkkPAR8278/QPXJqGONs0"
	ok, _, err := Verify(h, "correct horse battery staple", testParams, DefaultLimits())
	if err != nil || !ok {
		t.Errorf("got ok=%v err=%v, want ok=true err=nil", ok, err)
	}
}

func TestVerifyBcrypt(t *testing.T) {
	long72 := strings.Repeat("b", 72)
	h72, err := bcrypt.GenerateFromPassword([]byte(long72), MinBcryptCost)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		hash, pw    string
		ok, upgrade bool
	}{
		{"match asks for upgrade", bcrypt10, bcryptPassword, true, true},
		{"wrong password", bcrypt10, bcryptPassword + "x", false, false},
		{"72-byte password matches", string(h72), long72, true, true},
		{"73 bytes with the right 72-byte prefix", string(h72), long72 + "c", false, false},
		{"much longer with the right prefix", string(h72), long72 + strings.Repeat("z", 200), false, false},
		{"$2b$ prefix", "$2b$" + bcrypt10[4:], bcryptPassword, true, true},
		{"$2y$ prefix", "$2y$" + bcrypt10[4:], bcryptPassword, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, upgrade, err := Verify(tt.hash, tt.pw, testParams, DefaultLimits())
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if ok != tt.ok || upgrade != tt.upgrade {
				t.Errorf("got ok=%v upgrade=%v, want ok=%v upgrade=%v", ok, upgrade, tt.ok, tt.upgrade)
			}
		})
	}
}

func TestVerifyRefusesHash(t *testing.T) {
	valid := mustHash(t, "x", testParams)
	parts := strings.Split(valid, "$")
	salt, key := parts[4], parts[5]
	tests := []struct {
		name string
		hash string
		want error
	}{
		{"argon2id memory 4 GiB", "$argon2id$v=19$m=4194304,t=1,p=1$" + salt + "$" + key, ErrHashLimits},
		{"argon2id time 1000", "$argon2id$v=19$m=64,t=1000,p=1$" + salt + "$" + key, ErrHashLimits},
		{"argon2id threads 255", "$argon2id$v=19$m=4096,t=1,p=255$" + salt + "$" + key, ErrHashLimits},
		{"bcrypt cost 31", "$2b$31$" + bcrypt10[7:], ErrHashLimits},
		{"bcrypt cost 15", "$2b$15$" + bcrypt10[7:], ErrHashLimits},
		{"bcrypt cost 4", bcrypt04, ErrHashLimits},
		{"bcrypt cost 99", "$2b$99$" + bcrypt10[7:], ErrMalformedHash},
		{"bcrypt too short", bcrypt10[:59], ErrMalformedHash},
		{"bcrypt bad alphabet", bcrypt10[:59] + "!", ErrMalformedHash},
		{"bcrypt one-digit cost", "$2b$9$" + bcrypt10[7:] + "x", ErrMalformedHash},
		{"argon2id missing part", "$argon2id$v=19$m=64,t=1,p=1$" + salt, ErrMalformedHash},
		{"argon2id extra part", valid + "$x", ErrMalformedHash},
		{"argon2id no version", "$argon2id$m=64,t=1,p=1$" + salt + "$" + key, ErrMalformedHash},
		{"argon2id version 16", "$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key, ErrMalformedHash},
		{"argon2id params reordered", "$argon2id$v=19$t=1,m=64,p=1$" + salt + "$" + key, ErrMalformedHash},
		{"argon2id leading zero", "$argon2id$v=19$m=064,t=1,p=1$" + salt + "$" + key, ErrMalformedHash},
		{"argon2id sign", "$argon2id$v=19$m=+64,t=1,p=1$" + salt + "$" + key, ErrMalformedHash},
		{"argon2id not a number", "$argon2id$v=19$m=6x4,t=1,p=1$" + salt + "$" + key, ErrMalformedHash},
		{"argon2id overflow", "$argon2id$v=19$m=4294967296,t=1,p=1$" + salt + "$" + key, ErrMalformedHash},
		{"argon2id threads 256", "$argon2id$v=19$m=4096,t=1,p=256$" + salt + "$" + key, ErrMalformedHash},
		{"argon2id time 0", "$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key, ErrMalformedHash},
		{"argon2id threads 0", "$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + key, ErrMalformedHash},
		{"argon2id memory below 8 per thread", "$argon2id$v=19$m=8,t=1,p=2$" + salt + "$" + key, ErrMalformedHash},
		{"argon2id empty salt", "$argon2id$v=19$m=64,t=1,p=1$$" + key, ErrMalformedHash},
		{"argon2id short salt", "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$" + key, ErrMalformedHash},
		{"argon2id padded salt", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "==$" + key, ErrMalformedHash},
		{"argon2id bad base64 key", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key[:10] + "!" + key[11:], ErrMalformedHash},
		{"argon2id short key", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key[:8], ErrMalformedHash},
		{"argon2i", "$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key, ErrUnsupportedHash},
		{"argon2d", "$argon2d$v=19$m=64,t=1,p=1$" + salt + "$" + key, ErrUnsupportedHash},
		{"md5-crypt", "$1$saltsalt$qjXMvbEw8oaL.CzflDugX/", ErrUnsupportedHash},
		{"apr1", "$apr1$saltsalt$qjXMvbEw8oaL.CzflDugX/", ErrUnsupportedHash},
		{"sha512-crypt", "$6$saltsalt$qjXMvbEw8oaL.CzflDugX", ErrUnsupportedHash},
		{"ldap sha", "{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=", ErrUnsupportedHash},
		{"plaintext", "hunter2hunter2", ErrUnsupportedHash},
		{"empty", "", ErrUnsupportedHash},
		{"bcrypt $2x$", "$2x$" + bcrypt10[4:], ErrUnsupportedHash},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			ok, upgrade, err := Verify(tt.hash, "x", testParams, DefaultLimits())
			if !errors.Is(err, tt.want) {
				t.Fatalf("got err %v, want %v", err, tt.want)
			}
			if ok || upgrade {
				t.Errorf("got ok=%v upgrade=%v, want false, false", ok, upgrade)
			}
			if d := time.Since(start); d > 200*time.Millisecond {
				t.Errorf("refusal took %v: the hash ran", d)
			}
			if secretInText(err.Error(), tt.hash) {
				t.Errorf("error %q quotes the hash", err)
			}
		})
	}
}

// secretInText reports whether text contains hash, or any of its $-separated parts of at
// least 6 bytes (salt, key).
func secretInText(text, hash string) bool {
	if hash != "" && strings.Contains(text, hash) {
		return true
	}
	for _, part := range strings.Split(hash, "$") {
		if len(part) >= 6 && !strings.HasPrefix(part, "argon2") && !strings.HasPrefix(part, "m=") && strings.Contains(text, part) {
			return true
		}
	}
	return false
}

func TestLimitsZeroMeansDefault(t *testing.T) {
	h := mustHash(t, "x", Params{MemoryKiB: 64, Time: 21, Threads: 1})
	_, _, err := Verify(h, "x", testParams, Limits{})
	if !errors.Is(err, ErrHashLimits) {
		t.Errorf("got %v, want %v (zero MaxTime is the default 20)", err, ErrHashLimits)
	}
	ok, _, err := Verify(h, "x", testParams, Limits{MaxTime: 21})
	if err != nil || !ok {
		t.Errorf("got ok=%v err=%v, want ok=true err=nil", ok, err)
	}
}

// allocated returns the bytes fn allocates on the heap.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestDummyRunsArgon2WithParams(t *testing.T) {
	p := Params{MemoryKiB: 8 * 1024, Time: 1, Threads: 1}
	h := mustHash(t, "the password", p)
	verifyBytes := allocated(func() { Verify(h, "wrong password", p, DefaultLimits()) })
	dummyBytes := allocated(func() { Dummy("wrong password", p) })
	small := allocated(func() { Dummy("wrong password", testParams) })
	want := uint64(p.MemoryKiB) * 1024
	if verifyBytes < want || dummyBytes < want {
		t.Errorf("got Verify %d bytes, Dummy %d bytes, want both ≥ %d (argon2 memory)", verifyBytes, dummyBytes, want)
	}
	if small >= want/4 {
		t.Errorf("got Dummy with %d KiB allocating %d bytes, want far less than %d: Dummy ignores p", testParams.MemoryKiB, small, want)
	}

	// Rough timing, the minimum of a few runs so a busy machine does not make it flake.
	minOf := func(fn func()) time.Duration {
		best := time.Duration(1 << 62)
		for range 3 {
			start := time.Now()
			fn()
			best = min(best, time.Since(start))
		}
		return best
	}
	v := minOf(func() { Verify(h, "wrong password", p, DefaultLimits()) })
	d := minOf(func() { Dummy("wrong password", p) })
	if d*10 < v*3 {
		t.Errorf("got Dummy %v, Verify %v, want Dummy ≥ 0.3× Verify", d, v)
	}
}

func TestDummyInvalidParamsDoesNotPanic(t *testing.T) {
	Dummy("x", Params{}) // falls back to DefaultParams rather than panicking inside argon2
}
