package users

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ParseHTPasswd reads an Apache htpasswd file ("name:hash" lines; blank lines and lines
// starting with '#' are skipped) for import. Only bcrypt hashes ($2a$, $2b$, $2y$, cost at
// least 10) are accepted; any other scheme ({SHA}, $apr1$, crypt, plaintext) is an error that
// names the line and user but never prints the hash. Names are canonicalised and duplicates
// are errors. Each user gets a fresh Generation. The error lists every bad line.
func ParseHTPasswd(r io.Reader) ([]User, error) {
	var (
		users []User
		ps    problems
		seen  = make(map[string]int)
		sc    = bufio.NewScanner(r)
		n     = 0
	)
	const name = "htpasswd"
	for sc.Scan() {
		n++
		line := sc.Text()
		if n == 1 {
			line = strings.TrimPrefix(line, "\uFEFF") // byte order mark from Windows editors
		}
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		rawName, hash, ok := strings.Cut(line, ":")
		if !ok {
			ps = append(ps, problem{name: name, line: n, msg: `expected "name:hash"`})
			continue
		}
		canon, err := Canonical(rawName)
		if err != nil {
			ps = append(ps, problem{name: name, line: n, msg: "invalid name: use 1-64 characters of a-z, 0-9, '.', '_', '@', '-', starting with a letter or digit"})
			continue
		}
		at := problem{name: name, line: n, user: canon}
		bad := func(msg string) {
			p := at
			p.msg = msg
			ps = append(ps, p)
		}
		if prev, dup := seen[canon]; dup {
			bad(fmt.Sprintf("duplicate user (first at line %d)", prev))
			continue
		}
		seen[canon] = n
		switch {
		case strings.Contains(hash, ":"):
			bad(`expected "name:hash" with no further fields`)
			continue
		case !isBcrypt(hash):
			bad(fmt.Sprintf("unsupported hash scheme %s(only bcrypt can be imported; set a new password with \"authd user passwd\")", schemeName(hash)))
			continue
		}
		if _, err := parseBcrypt(hash); err != nil {
			bad(err.Error())
			continue
		}
		users = append(users, User{Name: canon, Hash: hash, Generation: NewGeneration()})
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("htpasswd line %d: line too long", n+1)
		}
		return nil, fmt.Errorf("read htpasswd: %w", err)
	}
	if len(ps) > 0 {
		return nil, ps
	}
	return users, nil
}
