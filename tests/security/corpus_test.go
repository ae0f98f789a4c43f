package security

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Corpus files in testdata/ hold one payload per line. Lines starting with "#" and blank lines are
// ignored; everything else is taken literally except these tokens, so that payloads can carry bytes
// a text file cannot (or an editor would strip):
//
//	{CR} {LF} {TAB} {NUL} {SP} {VT} {FF} {DEL}  the control byte or space
//	{xHH}                                       the byte 0xHH
//	{R:N:text}                                  text repeated N times (text has no '}' or ':'
//	                                            once the other tokens are replaced)
//	{ORIGIN} {HOST} {PORT}                      the stack's public origin, host:port and port
//	{SESSION} {NAME}                            a valid session cookie value and the cookie name
//
// A file may give an expectation before the payload, separated by one tab ("admin<TAB>/admin/x");
// the test that reads it says which expectations it knows.
type entry struct {
	file   string
	line   int
	expect string
	text   string // raw, before expansion
}

func (e entry) String() string { return fmt.Sprintf("%s:%d %q", e.file, e.line, e.text) }

func loadCorpus(t testing.TB, name string, withExpect bool) []entry {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []entry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		e := entry{file: name, line: n, text: line}
		if withExpect {
			exp, payload, ok := strings.Cut(line, "\t")
			if !ok {
				t.Fatalf("%s:%d: want <expectation><TAB><payload>", name, n)
			}
			e.expect, e.text = exp, payload
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("%s: empty corpus", name)
	}
	return out
}

var (
	tokenRE  = regexp.MustCompile(`\{(CR|LF|TAB|NUL|SP|VT|FF|DEL|x[0-9A-Fa-f]{2}|ORIGIN|HOST|PORT|SESSION|NAME)\}`)
	repeatRE = regexp.MustCompile(`\{R:(\d+):([^}:]*)\}`)
)

// expand replaces the tokens in a payload; vars supplies ORIGIN, HOST, PORT, SESSION and NAME.
func expand(t testing.TB, s string, vars map[string]string) string {
	t.Helper()
	s = tokenRE.ReplaceAllStringFunc(s, func(m string) string {
		tok := m[1 : len(m)-1]
		switch tok {
		case "CR":
			return "\r"
		case "LF":
			return "\n"
		case "TAB":
			return "\t"
		case "NUL":
			return "\x00"
		case "SP":
			return " "
		case "VT":
			return "\v"
		case "FF":
			return "\f"
		case "DEL":
			return "\x7f"
		}
		if tok[0] == 'x' {
			b, _ := strconv.ParseUint(tok[1:], 16, 8)
			return string([]byte{byte(b)})
		}
		v, ok := vars[tok]
		if !ok {
			t.Fatalf("token %s has no value in this test", m)
		}
		return v
	})
	// Repeats last, innermost first, so they can hold tokens and other repeats.
	for repeatRE.MatchString(s) {
		s = repeatRE.ReplaceAllStringFunc(s, func(m string) string {
			sub := repeatRE.FindStringSubmatch(m)
			n, _ := strconv.Atoi(sub[1])
			if n > 1<<20 || len(sub[2])*n > 1<<22 {
				t.Fatalf("repeat %s too large", m)
			}
			return strings.Repeat(sub[2], n)
		})
	}
	return s
}

func (s *stack) vars() map[string]string {
	return map[string]string{
		"ORIGIN": s.origin(),
		"HOST":   "localhost:" + strconv.Itoa(s.httpsPort),
		"PORT":   strconv.Itoa(s.httpsPort),
		"NAME":   cookieName,
	}
}
