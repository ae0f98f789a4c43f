package security

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// throttleTables is a throttle small enough to trip in a test.
const throttleTables = `
[throttle]
account_failures = 3
ip_failures = 8
base_delay = "1s"
max_delay = "3s"
window = "15m"
`

// loginAs posts the login form from a source address and returns the response.
func (s *stack) loginAs(t testing.TB, user, password, from string) *resp {
	t.Helper()
	pre, csrf, _ := s.loginForm(t, "")
	return s.do(t, req{method: "POST", target: "/authd/login", from: from, cookie: preName + "=" + pre,
		header: http.Header{"Origin": {s.origin()}}, form: url.Values{"username": {user}, "password": {password}, "csrf": {csrf}}})
}

var (
	valueRE = regexp.MustCompile(`(name="(?:csrf|username)"[^>]*value=")[^"]*(")|(id="username"[^>]*value=")[^"]*(")`)
)

// shape is a failed login's response with what legitimately varies (the CSRF token, the echoed
// username, the date) blanked out.
func shape(r *resp) string {
	var hs []string
	for k, vs := range r.Header {
		switch k {
		case "Date":
			continue
		case "Set-Cookie":
			for _, v := range vs {
				name, _, _ := strings.Cut(v, "=")
				hs = append(hs, k+": "+name)
			}
			continue
		}
		hs = append(hs, k+": "+strings.Join(vs, ","))
	}
	sort.Strings(hs)
	body := valueRE.ReplaceAllString(r.Body, "$1$3…$2$4")
	return fmt.Sprintf("%d\n%s\n%s", r.Status, strings.Join(hs, "\n"), body)
}

// TestLoginFailuresLookTheSame covers "Failure for unknown user, wrong password, disabled or
// throttled user: identical status, body shape" (timing: TestLoginTimingDoesNotRevealUsers), and
// "Oversized passwords … are refused before hashing" with the same answer.
func TestLoginFailuresLookTheSame(t *testing.T) {
	s := newStack(t, stackOptions{tables: throttleTables})
	// Throttle ada's account from one address (3 free failures).
	for range 3 {
		s.loginAs(t, "ada", "wrong password", "127.0.0.41")
	}
	cases := map[string]*resp{
		"unknown user":       s.loginAs(t, "zed", "wrong password", "127.0.0.42"),
		"wrong password":     s.loginAs(t, "ada", "wrong password", "127.0.0.43"),
		"disabled user":      s.loginAs(t, "dis", disPassword, "127.0.0.44"),
		"throttled account":  s.loginAs(t, "ada", adaPassword, "127.0.0.41"),
		"oversized password": s.loginAs(t, "ada", strings.Repeat("x", 1025), "127.0.0.45"),
		"invalid username":   s.loginAs(t, "a d", "wrong password", "127.0.0.46"),
	}
	want := shape(cases["wrong password"])
	if cases["wrong password"].Status != http.StatusUnauthorized {
		t.Fatalf("wrong password: got %s, want 401", cases["wrong password"])
	}
	for name, r := range cases {
		if got := shape(r); got != want {
			t.Errorf("%s: response differs from a wrong password's:\n--- got\n%s\n--- want\n%s", name, got, want)
		}
	}
}

// TestThrottling covers "Failures are counted per account and per client IP, with growing delays
// and a cap", "An attacker hammering one account from one IP does not lock the real user out from
// another IP" and "Spraying many usernames from one IP trips the per-IP limit".
func TestThrottling(t *testing.T) {
	s := newStack(t, stackOptions{tables: throttleTables})
	// One account from one address: after 3 failures even the right password fails there…
	for range 3 {
		s.loginAs(t, "ada", "wrong password", "127.0.0.51")
	}
	if r := s.loginAs(t, "ada", adaPassword, "127.0.0.51"); r.Status != http.StatusUnauthorized {
		t.Errorf("throttled account: got %s, want 401", r)
	}
	// …but the real user elsewhere is not locked out.
	if r := s.loginAs(t, "ada", adaPassword, "127.0.0.52"); r.Status != http.StatusSeeOther {
		t.Errorf("the same account from another address: got %s, want 303", r)
	}
	// Spraying: 8 users from one address trips the IP limit, for every user.
	for i := range 8 {
		s.loginAs(t, fmt.Sprintf("user%d", i), "wrong password", "127.0.0.53")
	}
	r := s.loginAs(t, "root", rootPassword, "127.0.0.53")
	if r.Status != http.StatusTooManyRequests {
		t.Fatalf("after spraying 8 users: got %s, want 429", r)
	}
	first, _ := strconv.Atoi(r.Header.Get("Retry-After"))
	if first < 1 || first > 4 {
		t.Errorf("Retry-After %q, want 1 to 4 seconds (max_delay 3s)", r.Header.Get("Retry-After"))
	}
	// The delay grows with further failures and stops at the cap.
	prev := first
	for round := range 3 {
		time.Sleep(time.Duration(prev) * time.Second)
		s.loginAs(t, "spray", "wrong password", "127.0.0.53")
		r = s.loginAs(t, "spray", "wrong password", "127.0.0.53")
		got, _ := strconv.Atoi(r.Header.Get("Retry-After"))
		if r.Status != http.StatusTooManyRequests || got < prev && prev < 4 || got > 4 {
			t.Errorf("round %d: got %s with Retry-After %d, want 429 with %d ≤ Retry-After ≤ 4", round, r, got, prev)
		}
		prev = got
		if got >= 3 {
			break
		}
	}
	if r := s.loginAs(t, "root", rootPassword, "127.0.0.54"); r.Status != http.StatusSeeOther {
		t.Errorf("root from another address: got %s, want 303", r)
	}
}

// TestUsernamesHaveOneCanonicalForm covers "Usernames have one canonical form (documented);
// spelling variants don't buy extra attempts."
func TestUsernamesHaveOneCanonicalForm(t *testing.T) {
	s := newStack(t, stackOptions{tables: throttleTables})
	for _, v := range []string{"ADA", " ada", "Ada ", "aDa"} {
		r := s.loginAs(t, v, adaPassword, "127.0.0.60")
		if r.Status != http.StatusSeeOther {
			t.Errorf("login as %q: got %s, want 303", v, r)
			continue
		}
		w := s.do(t, req{target: "/authd/whoami", cookie: session(setCookie(r.Header, cookieName))})
		if !strings.Contains(w.Body, `"user":"ada"`) {
			t.Errorf("login as %q: whoami %s, want user ada", v, w.Body)
		}
	}
	for _, v := range []string{"ada", "ADA", " Ada"} {
		s.loginAs(t, v, "wrong password", "127.0.0.61")
	}
	if r := s.loginAs(t, "aDA ", adaPassword, "127.0.0.61"); r.Status != http.StatusUnauthorized {
		t.Errorf("after 3 failures under 3 spellings: got %s, want 401 (one throttled account)", r)
	}
	// Look-alikes are other (unknown) accounts, never ada: the Kelvin sign, full-width letters.
	for _, v := range []string{"\u0430da", "\uff41da", "ada\u200b", "ada\x00"} {
		if r := s.loginAs(t, v, adaPassword, "127.0.0.62"); r.Status == http.StatusSeeOther {
			t.Errorf("login as look-alike %q succeeded", v)
		}
	}
}

// TestLoginFloodKeepsVerifyFast covers "concurrent hashing is bounded, and a flood of logins gets
// fast 429/503 while verify for existing sessions stays fast".
func TestLoginFloodKeepsVerifyFast(t *testing.T) {
	s := newStack(t, stackOptions{tables: "\n[hash]\nmax_concurrent = 1\nmax_queue = 2\nqueue_timeout = \"1s\"\n"})
	ada := session(s.login(t, "ada", adaPassword))
	pre, csrf, _ := s.loginForm(t, "")
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	var slowest time.Duration
	stop := make(chan struct{})
	for i := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			from := fmt.Sprintf("127.0.1.%d", i+1)
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				r, err := s.try(req{method: "POST", target: "/authd/login", from: from, cookie: preName + "=" + pre,
					header: http.Header{"Origin": {s.origin()}}, form: url.Values{"username": {fmt.Sprintf("u%d-%d", i, j)}, "password": {"x"}, "csrf": {csrf}}})
				if err != nil {
					continue
				}
				mu.Lock()
				codes[r.Status]++
				if d := time.Since(start); d > slowest {
					slowest = d
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	var lat []time.Duration
	for range 60 {
		start := time.Now()
		r := s.do(t, req{target: "/app/x", cookie: ada})
		lat = append(lat, time.Since(start))
		if r.App == nil {
			t.Errorf("verify during the flood: got %s, want the app", r)
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	median, p95 := lat[len(lat)/2], lat[len(lat)*95/100]
	t.Logf("login answers %v (slowest %v); verify median %v, p95 %v", codes, slowest, median, p95)
	if codes[http.StatusServiceUnavailable]+codes[http.StatusTooManyRequests] == 0 {
		t.Errorf("no login was turned away (429/503) with 1 hashing slot and a queue of 2")
	}
	// Generous bounds for a shared 2-core machine: hashing may take both cores, yet a verify
	// never waits for a hash.
	if median > 100*time.Millisecond || p95 > 400*time.Millisecond {
		t.Errorf("verify slowed by the login flood: median %v, p95 %v", median, p95)
	}
}

// TestPasswordHashes covers "bcrypt accepted for imported hashes (cost ≥ 10) and upgraded on
// login", "bcrypt reads only 72 bytes: a longer password must never log in as the 72-byte prefix",
// and "Any other scheme (plaintext, {SHA}, MD5-crypt, argon2i) refuses to load, naming the user and
// line, never printing the hash". New hashes are argon2id with m ≥ 19 MiB, t ≥ 2, p ≥ 1 and unique
// salts.
func TestPasswordHashes(t *testing.T) {
	s := newStack(t, stackOptions{})
	prefix := strings.Repeat("seventy-two bytes of passphrase ", 3)[:72]
	h, err := bcrypt.GenerateFromPassword([]byte(prefix), 10)
	if err != nil {
		t.Fatal(err)
	}
	weak, _ := bcrypt.GenerateFromPassword([]byte(prefix), 4)
	ht := s.dir + "/htpasswd"
	must(t, os.WriteFile(ht, []byte("old:"+string(h)+"\n"), 0o600))
	s.mustCLI(t, "", "user", "import-htpasswd", ht)
	must(t, os.WriteFile(ht, []byte("weak:"+string(weak)+"\n"), 0o600))
	if out, err := s.cli("", "user", "import-htpasswd", ht); err == nil {
		t.Errorf("import of a bcrypt cost 4 hash succeeded: %s", out)
	}
	waitFor(t, "users file reload", func() bool { return s.loginAs(t, "zzz", "x", "127.0.0.70") != nil && usersHas(t, s, "old") })
	for _, long := range []string{prefix + "x", prefix + " and then some more words"} {
		if r := s.loginAs(t, "old", long, "127.0.0.71"); r.Status == http.StatusSeeOther {
			t.Errorf("a %d-byte password logged in with the hash of its 72-byte prefix", len(long))
		}
	}
	if r := s.loginAs(t, "old", prefix, "127.0.0.72"); r.Status != http.StatusSeeOther {
		t.Fatalf("control: the imported bcrypt password: got %s, want 303", r)
	}
	b, _ := os.ReadFile(s.usersFile)
	hashes := regexp.MustCompile(`hash = "([^"]*)"`).FindAllStringSubmatch(string(b), -1)
	salts := map[string]bool{}
	for _, m := range hashes {
		p := regexp.MustCompile(`^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$([^$]+)\$`).FindStringSubmatch(m[1])
		if p == nil {
			t.Errorf("stored hash %.20q… is not argon2id (bcrypt must be upgraded at login)", m[1])
			continue
		}
		mem, _ := strconv.Atoi(p[1])
		tm, _ := strconv.Atoi(p[2])
		if mem < 19456 || tm < 2 {
			t.Errorf("argon2id parameters m=%d t=%d below m=19456 t=2", mem, tm)
		}
		if salts[p[4]] {
			t.Errorf("salt %s used twice", p[4])
		}
		salts[p[4]] = true
	}

	// Other schemes refuse to load, naming user and line, never the hash.
	for _, bad := range []string{"hunter2hunter2", "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=", "$apr1$salt1234$Rs3ljKgzRa/SqtwMMOQsN.",
		"$1$saltsalt$qjXMvbEw8oaL.CzflDugX/", "$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$wWKIMhR9lyDFvRz9YTZweHKfbftvj+qf+YFY4NeBbtA",
		"$2a$04$" + strings.Repeat("a", 53)} {
		file := s.dir + "/bad-users.toml"
		must(t, os.WriteFile(file, []byte("# users\n\n[[users]]\nname = \"ada\"\ngroups = [\"admins\"]\nhash = \"$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzYWx0$wWKIMhR9lyDFvRz9YTZweHKfbftvj+qf+YFY4NeBbtA\"\ngeneration = 1\n\n[[users]]\nname = \"mallory\"\nhash = \""+bad+"\"\ngeneration = 2\n"), 0o600))
		conf := strings.Replace(readFile(t, s.conf), s.usersFile, file, 1)
		cf := s.dir + "/bad.toml"
		must(t, os.WriteFile(cf, []byte(conf), 0o600))
		out, err := runAuthd(s.bin, "check-config", "-config", cf)
		if err == nil {
			t.Errorf("hash %.12q…: check-config accepted it", bad)
			continue
		}
		if !regexp.MustCompile(`line 9\b.*"mallory"`).MatchString(out) {
			t.Errorf("hash %.12q…: error does not name user mallory at line 9:\n%s", bad, out)
		}
		if strings.Contains(out, bad) || len(bad) > 20 && strings.Contains(out, bad[8:20]) {
			t.Errorf("hash %.12q…: error prints the hash:\n%s", bad, out)
		}
	}
}

func usersHas(t testing.TB, s *stack, name string) bool {
	return strings.Contains(readFile(t, s.usersFile), `name = "`+name+`"`)
}

// TestCLIPasswordPolicy covers "The CLI refuses passwords shorter than 8 characters and very
// common passwords; it sets no composition rules and allows long passphrases."
func TestCLIPasswordPolicy(t *testing.T) {
	s := newStack(t, stackOptions{})
	for _, pw := range []string{"", "short", "1234567", "seven77", "password", "Password1", "123456789", "qwertyuiop", "iloveyou"} {
		if out, err := s.cli(pw+"\n", "user", "add", "u"+strconv.Itoa(len(pw))); err == nil {
			t.Errorf("password %q accepted: %s", pw, out)
		}
	}
	for i, pw := range []string{"zqxjkvbw", "all lower case words only", strings.Repeat("long passphrase ", 60), "ÅÄÖ ünïcödé pässwörd"} {
		if _, err := s.cli(pw+"\n", "user", "add", fmt.Sprintf("ok%d", i)); err != nil {
			t.Errorf("password of %d bytes refused: %v", len(pw), err)
		}
	}
}

func waitFor(t testing.TB, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: timed out", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	return string(b)
}

// TestConcurrentGuessesThroughNginx covers "Throttle budgets are reserved atomically before a
// password is checked": 30 wrong passwords for ada fired at once through nginx from one address,
// with 3 free failures per account, may cost at most 3 password checks (authd's /metrics counts
// every hash it verifies). Every answer is the same 401 (a throttled account looks like a wrong
// password) or a 503 when the hashing queue is full; none is a success. Before reservations all
// 30 passed the throttle check before the first failure was counted.
func TestConcurrentGuessesThroughNginx(t *testing.T) {
	s := newStack(t, stackOptions{tables: throttleTables + "\n[hash]\nmax_queue = 64\nqueue_timeout = \"20s\"\n"})
	checks := func() int {
		t.Helper()
		res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", s.authdPort))
		must(t, err)
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		must(t, err)
		m := regexp.MustCompile(`(?m)^authd_password_checks_total (\d+)$`).FindSubmatch(b)
		if m == nil {
			t.Fatalf("/metrics has no authd_password_checks_total:\n%s", b)
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}
	pre, csrf, _ := s.loginForm(t, "")
	before := checks()
	const n = 30
	codes := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			r, err := s.try(req{method: "POST", target: "/authd/login", from: "127.0.0.61", cookie: preName + "=" + pre,
				header: http.Header{"Origin": {s.origin()}}, form: url.Values{"username": {"ada"}, "password": {fmt.Sprint("guess ", i)}, "csrf": {csrf}}})
			if err == nil {
				codes[i] = r.Status
			}
		})
	}
	close(start)
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusUnauthorized && c != http.StatusServiceUnavailable {
			t.Errorf("guess %d: got status %d, want 401 (or 503 when the queue is full)", i, c)
		}
	}
	if got := checks() - before; got > 3 {
		t.Errorf("%d concurrent guesses for one account: %d password checks, want at most 3 (account_failures)", n, got)
	}
}
