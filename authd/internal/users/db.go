// Package users keeps authd's user records: the canonical username, password hashing and
// verification (argon2id, with bcrypt accepted for imported hashes), and the TOML users file,
// which the CLI edits atomically and the daemon reloads without a restart.
package users

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// maxTextBytes bounds the free-text fields email and display_name.
const maxTextBytes = 256

// maxFileBytes bounds the users file read into memory.
const maxFileBytes = 64 << 20

// User is one record of the users file ([[users]] tables).
type User struct {
	Name        string   `toml:"name"`
	Hash        string   `toml:"hash"`
	Groups      []string `toml:"groups,omitempty"`
	Email       string   `toml:"email,omitempty"`
	DisplayName string   `toml:"display_name,omitempty"`
	Disabled    bool     `toml:"disabled,omitempty"`
	// Generation changes (to a fresh random value, see NewGeneration) at every credential
	// change made by the CLI (add, passwd, lock, unlock, del and re-add), so sessions bound
	// to the old value end. It is at most math.MaxInt64, the largest TOML integer.
	Generation uint64 `toml:"generation"`
	// Created is when the user was added (CLI, admin console, invite); zero
	// for users added before authd recorded it.
	Created time.Time `toml:"created,omitempty"`
	// Source names the external identity provider the user signs in with ("ldap", "oidc");
	// "" is a local account. A user with a Source may have no hash and never signs in with a
	// local password; authd refreshes the record from the provider at each sign-in.
	Source string `toml:"source,omitempty"`
}

// Entry is a loaded user with values precomputed at load time for the hot path.
type Entry struct {
	User
	// Fingerprint is the first 8 bytes (little-endian) of SHA-256(generation little-endian
	// || hash). Sessions store it; a password or generation change alters it.
	Fingerprint uint64
	// GroupsHeader is Groups joined with ",", ready for a response header.
	GroupsHeader string
	// cost is what verifying Hash takes, kept for DB.Costs.
	cost Cost
}

// Cost returns what verifying the entry's hash takes.
func (e *Entry) Cost() Cost { return e.cost }

func newEntry(u User, lim Limits) *Entry {
	u.Groups = slices.Clone(u.Groups)
	c, _ := CostOf(u.Hash, lim)
	return &Entry{User: u, Fingerprint: Fingerprint(u), GroupsHeader: strings.Join(u.Groups, ","), cost: c}
}

// Fingerprint returns the credential fingerprint of u, as stored in Entry.Fingerprint.
func Fingerprint(u User) uint64 {
	h := sha256.New()
	var g [8]byte
	binary.LittleEndian.PutUint64(g[:], u.Generation)
	h.Write(g[:])
	h.Write([]byte(u.Hash))
	return binary.LittleEndian.Uint64(h.Sum(nil)[:8])
}

// DB is an immutable snapshot of the users file, safe for concurrent use. A nil DB has no users.
type DB struct {
	byName map[string]*Entry
	groups map[string]struct{}
}

// Costs returns the distinct costs of verifying the users' hashes, in no particular order.
// The login handler pads failures to the slowest of them, so that the reply time tells
// nothing about which hash an account has.
func (db *DB) Costs() []Cost {
	if db == nil {
		return nil
	}
	seen := make(map[Cost]struct{}, 4)
	var out []Cost
	for _, e := range db.byName {
		if _, dup := seen[e.cost]; !dup && e.cost != (Cost{}) {
			seen[e.cost] = struct{}{}
			out = append(out, e.cost)
		}
	}
	return out
}

// Lookup returns the user with the given canonical name (see Canonical). It does not allocate.
// The Entry must not be modified.
func (db *DB) Lookup(name string) (*Entry, bool) {
	if db == nil {
		return nil, false
	}
	e, ok := db.byName[name]
	return e, ok
}

// Users returns copies of all users sorted by name.
func (db *DB) Users() []User {
	if db == nil {
		return nil
	}
	out := make([]User, 0, len(db.byName))
	for _, e := range db.byName {
		u := e.User
		u.Groups = slices.Clone(u.Groups)
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b User) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// HasUser reports whether a user with the canonical name exists.
func (db *DB) HasUser(name string) bool {
	_, ok := db.Lookup(name)
	return ok
}

// HasGroup reports whether any user is a member of group g.
func (db *DB) HasGroup(g string) bool {
	if db == nil {
		return false
	}
	_, ok := db.groups[g]
	return ok
}

// Len returns the number of users.
func (db *DB) Len() int {
	if db == nil {
		return 0
	}
	return len(db.byName)
}

// fileDoc is the users file's layout.
type fileDoc struct {
	Users []User `toml:"users"`
}

// Parse reads a users file and validates every user (see Edit for the rules). The error lists
// every problem found, each naming the line of the user's [[users]] table where it is known
// and the user, never any part of a hash.
func Parse(r io.Reader, lim Limits) (*DB, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read users: %w", err)
	}
	_, db, err := parse(data, "", lim)
	return db, err
}

// parse decodes and validates data; name prefixes every problem (a file path, or "" for none).
func parse(data []byte, name string, lim Limits) ([]User, *DB, error) {
	users, unknown, err := decode(data, name)
	if err != nil {
		return nil, nil, err
	}
	db, err := build(users, tableLines(data, len(users)), name, lim)
	if len(unknown) > 0 {
		var ps problems
		errors.As(err, &ps)
		ps = append(unknown, ps...)
		slices.SortStableFunc(ps, func(a, b problem) int { return a.line - b.line })
		return nil, nil, ps
	}
	if err != nil {
		return nil, nil, err
	}
	return users, db, nil
}

// decode turns TOML into users. Keys the User type lacks come back as problems, so that they
// are reported together with the other problems of the file.
func decode(data []byte, name string) ([]User, problems, error) {
	if len(data) > maxFileBytes {
		return nil, nil, problems{{name: name, msg: fmt.Sprintf("file is larger than %d MiB", maxFileBytes>>20)}}
	}
	var doc fileDoc
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&doc)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			// Message only: ErrorWithPosition would quote the offending line, which may hold a hash.
			return nil, nil, problems{{name: name, line: pe.Position.Line, msg: "syntax: " + redactQuoted(pe.Message)}}
		}
		return nil, nil, problems{{name: name, msg: err.Error()}}
	}
	if und := md.Undecoded(); len(und) > 0 {
		return doc.Users, unknownKeys(data, name, und), nil
	}
	return doc.Users, nil, nil
}

// unknownKeys reports keys the User type does not have, attributed to users where possible.
func unknownKeys(data []byte, name string, und []toml.Key) problems {
	var ps problems
	var raw struct {
		Users []map[string]any `toml:"users"`
	}
	_, rawErr := toml.Decode(string(data), &raw)
	known := map[string]bool{"name": true, "hash": true, "groups": true, "email": true, "display_name": true, "disabled": true, "generation": true, "source": true}
	if rawErr == nil {
		lines := tableLines(data, len(raw.Users))
		for i, u := range raw.Users {
			keys := make([]string, 0, len(u))
			for k := range u {
				if !known[k] {
					keys = append(keys, k)
				}
			}
			slices.Sort(keys)
			uname, _ := u["name"].(string)
			uname = printableName(uname)
			for _, k := range keys {
				ps = append(ps, problem{name: name, line: lineOf(lines, i), user: uname, index: i + 1, msg: fmt.Sprintf("unknown key %q", k)})
			}
		}
	}
	for _, k := range und {
		if len(k) == 0 || k[0] != "users" || rawErr != nil {
			ps = append(ps, problem{name: name, msg: fmt.Sprintf("unknown key %q", k.String())})
		}
	}
	if len(ps) == 0 {
		ps = append(ps, problem{name: name, msg: "unknown keys in [[users]] tables"})
	}
	return ps
}

// build validates users and indexes them. lines[i] is the line of users[i]'s table, or nil.
func build(users []User, lines []int, name string, lim Limits) (*DB, error) {
	db := &DB{byName: make(map[string]*Entry, len(users)), groups: make(map[string]struct{})}
	var ps problems
	seenAt := make(map[string]int, len(users))
	for i, u := range users {
		at := problem{name: name, line: lineOf(lines, i), user: printableName(u.Name), index: i + 1}
		bad := func(format string, args ...any) {
			p := at
			p.msg = fmt.Sprintf(format, args...)
			ps = append(ps, p)
		}
		for _, msg := range checkUser(u, lim) {
			bad("%s", msg)
		}
		if prev, dup := seenAt[u.Name]; dup && u.Name != "" {
			if l := lineOf(lines, prev); l > 0 {
				bad("duplicate user (first at line %d)", l)
			} else {
				bad("duplicate user (first is user #%d)", prev+1)
			}
			continue
		}
		seenAt[u.Name] = i
		db.byName[u.Name] = newEntry(u, lim)
		for _, g := range u.Groups {
			db.groups[g] = struct{}{}
		}
	}
	if len(ps) > 0 {
		return nil, ps
	}
	return db, nil
}

// checkUser returns what is wrong with u, without any part of its hash.
func checkUser(u User, lim Limits) []string {
	var msgs []string
	if u.Name == "" {
		msgs = append(msgs, "name is missing")
	} else if c, err := Canonical(u.Name); err != nil {
		// Not echoed: a value this wrong may be a hash or password typed into the wrong field.
		msgs = append(msgs, "invalid name: use 1-64 characters of a-z, 0-9, '.', '_', '@', '-', starting with a letter or digit")
	} else if c != u.Name {
		msgs = append(msgs, fmt.Sprintf("name is not in canonical form (write %q)", c))
	}
	if err := checkSource(u.Source); err != nil {
		msgs = append(msgs, err.Error())
	}
	if u.Hash == "" {
		if u.Source == "" {
			msgs = append(msgs, "hash is missing")
		}
	} else if _, err := parseHash(u.Hash, lim); err != nil {
		msgs = append(msgs, err.Error())
	}
	seen := make(map[string]bool, len(u.Groups))
	for _, g := range u.Groups {
		if err := checkGroup(g); err != nil {
			msgs = append(msgs, err.Error())
		} else if seen[g] {
			msgs = append(msgs, fmt.Sprintf("group %q listed twice", g))
		}
		seen[g] = true
	}
	if err := checkText(u.Email); err != nil {
		msgs = append(msgs, "email: "+err.Error())
	}
	if err := checkText(u.DisplayName); err != nil {
		msgs = append(msgs, "display_name: "+err.Error())
	}
	if u.Generation > math.MaxInt64 {
		msgs = append(msgs, "generation must be between 0 and 9223372036854775807")
	}
	return msgs
}

// checkSource validates a Source: empty, or a short lowercase provider name.
func checkSource(s string) error {
	if len(s) > 64 || strings.ContainsFunc(s, func(r rune) bool {
		return !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '_' || r == ':' || r == '.')
	}) {
		return errors.New("source must be empty (a local account) or a provider name such as \"ldap\" or \"oidc\"")
	}
	return nil
}

// checkText validates a free-text field that ends up in response headers.
func checkText(s string) error {
	if len(s) > maxTextBytes {
		return fmt.Errorf("longer than %d bytes", maxTextBytes)
	}
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	if strings.ContainsFunc(s, unicode.IsControl) {
		return errors.New("contains control characters")
	}
	return nil
}
