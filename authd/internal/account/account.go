// Package account keeps what lets people in without an operator at a shell:
// invite links, password-reset links and registration requests, in a file
// in data_dir or in Redis, and sends links by mail. It has no HTTP in it;
// the server's pages and the CLI drive it.
//
// A link's token is 256 random bits shown once; the store keeps only its
// SHA-256, so a copy of the store holds no usable link. Taking a link (an
// invite accepted, a reset used) removes it in the same atomic step that
// reads it, so of two concurrent uses exactly one succeeds.
package account

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ErrInvalid is returned for a link that does not exist, was used, was
// revoked or has expired: the one answer a page shows for all four.
var ErrInvalid = errors.New("link is invalid, used or expired")

// ErrNotFound is returned when no invite or request has the given ID.
var ErrNotFound = errors.New("not found")

// Kinds of records a Backend holds.
const (
	kindInvite  = "invites"
	kindReset   = "resets"
	kindRequest = "requests"
	kindLimit   = "limits"
)

// Backend stores records of one kind under keys, each with an expiry.
// Expired records are never returned. Take reads and removes a record in
// one atomic step. Records are opaque bytes to it.
type Backend interface {
	Put(ctx context.Context, kind, key string, rec []byte, expires time.Time) error
	Get(ctx context.Context, kind, key string) ([]byte, error)
	Take(ctx context.Context, kind, key string) ([]byte, error)
	Delete(ctx context.Context, kind, key string) error
	List(ctx context.Context, kind string) (map[string][]byte, error)
}

// errMissing is a Backend's answer for a key it does not hold (or holds expired).
var errMissing = errors.New("no such record")

// Invite lets one person make an account.
type Invite struct {
	// ID names the invite in lists and for revocation; it is not the token.
	ID string `json:"id"`
	// User, if set, is the username the invitee gets; otherwise they pick one.
	User   string   `json:"user,omitempty"`
	Groups []string `json:"groups,omitempty"`
	Email  string   `json:"email,omitempty"`
	// By names who made it ("unix:root", an admin's username, "register" for open registration).
	By      string    `json:"by,omitempty"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

// Reset lets one user set a new password.
type Reset struct {
	ID      string    `json:"id"`
	User    string    `json:"user"`
	By      string    `json:"by,omitempty"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

// Request is someone asking for an account, waiting for an admin.
type Request struct {
	ID          string `json:"id"`
	User        string `json:"user"`
	Email       string `json:"email,omitempty"`
	DisplayName string `json:"display_name,omitempty"`
	// Hash is the password hash the user is created with when approved.
	Hash    string    `json:"hash"`
	IP      string    `json:"ip,omitempty"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

// Store keeps invites, resets and registration requests in a Backend.
type Store struct {
	b   Backend
	now func() time.Time
}

// New returns a Store on b; now is the clock (time.Now if nil).
func New(b Backend, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{b: b, now: now}
}

// Token returns a new link token (256 random bits, base64url) and the key
// it is stored under.
func Token() (token, key string) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err)) // crypto/rand does not fail on supported systems
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, Key(token)
}

// Key is the hex SHA-256 of a token: what the store holds instead of it.
func Key(token string) string {
	s := sha256.Sum256([]byte(token))
	return hex.EncodeToString(s[:])
}

// idOf is the short public ID of a record stored under key.
func idOf(key string) string { return key[:12] }

// validToken reports whether s can be a token Token made; anything else is
// refused before the store is asked.
func validToken(s string) bool {
	if len(s) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil
}

// CreateInvite stores inv with expiry ttl from now and returns its token.
// ID, Created and Expires are filled in.
func (s *Store) CreateInvite(ctx context.Context, inv Invite, ttl time.Duration) (string, Invite, error) {
	if ttl <= 0 {
		return "", Invite{}, fmt.Errorf("expiry must be positive (got %s)", ttl)
	}
	token, key := Token()
	inv.ID, inv.Created = idOf(key), s.now().UTC().Truncate(time.Second)
	inv.Expires = inv.Created.Add(ttl)
	if err := s.put(ctx, kindInvite, key, inv, inv.Expires); err != nil {
		return "", Invite{}, err
	}
	return token, inv, nil
}

// Invite returns the invite of token without using it (for showing the form).
func (s *Store) Invite(ctx context.Context, token string) (Invite, error) {
	var inv Invite
	return inv, s.get(ctx, kindInvite, token, &inv, false)
}

// TakeInvite uses the invite of token: it is removed, and returned only if
// it had not expired. Of concurrent calls with one token, one succeeds.
func (s *Store) TakeInvite(ctx context.Context, token string) (Invite, error) {
	var inv Invite
	return inv, s.get(ctx, kindInvite, token, &inv, true)
}

// PutBackInvite restores an invite TakeInvite returned, when the account
// could not be made with it (the username was taken meanwhile, say).
func (s *Store) PutBackInvite(ctx context.Context, token string, inv Invite) error {
	if !validToken(token) || s.now().After(inv.Expires) {
		return ErrInvalid
	}
	return s.put(ctx, kindInvite, Key(token), inv, inv.Expires)
}

// Invites lists the open invites, oldest first.
func (s *Store) Invites(ctx context.Context) ([]Invite, error) {
	return list[Invite](ctx, s, kindInvite, func(i Invite) time.Time { return i.Created })
}

// RevokeInvite removes the invite with the given ID.
func (s *Store) RevokeInvite(ctx context.Context, id string) error {
	return s.revoke(ctx, kindInvite, id)
}

// CreateReset stores a reset link for user with expiry ttl and returns its
// token. Any older reset link of the user stops working: only the newest
// one mailed or handed out counts.
func (s *Store) CreateReset(ctx context.Context, user, by string, ttl time.Duration) (string, Reset, error) {
	if ttl <= 0 {
		return "", Reset{}, fmt.Errorf("expiry must be positive (got %s)", ttl)
	}
	if err := s.RevokeResets(ctx, user); err != nil {
		return "", Reset{}, err
	}
	token, key := Token()
	r := Reset{ID: idOf(key), User: user, By: by, Created: s.now().UTC().Truncate(time.Second)}
	r.Expires = r.Created.Add(ttl)
	if err := s.put(ctx, kindReset, key, r, r.Expires); err != nil {
		return "", Reset{}, err
	}
	return token, r, nil
}

// Reset returns the reset of token without using it.
func (s *Store) Reset(ctx context.Context, token string) (Reset, error) {
	var r Reset
	return r, s.get(ctx, kindReset, token, &r, false)
}

// TakeReset uses the reset of token, like TakeInvite. The caller sets the
// new password with a new generation, which ends the user's sessions.
func (s *Store) TakeReset(ctx context.Context, token string) (Reset, error) {
	var r Reset
	return r, s.get(ctx, kindReset, token, &r, true)
}

// Resets lists the open reset links, oldest first.
func (s *Store) Resets(ctx context.Context) ([]Reset, error) {
	return list[Reset](ctx, s, kindReset, func(r Reset) time.Time { return r.Created })
}

// RevokeResets removes every reset link of user.
func (s *Store) RevokeResets(ctx context.Context, user string) error {
	m, err := s.b.List(ctx, kindReset)
	if err != nil {
		return err
	}
	for key, b := range m {
		var r Reset
		if json.Unmarshal(b, &r) == nil && r.User == user {
			if err := s.b.Delete(ctx, kindReset, key); err != nil {
				return err
			}
		}
	}
	return nil
}

// AddRequest queues a registration request for an admin, for ttl. ID,
// Created and Expires are filled in. A pending request for the same
// username is refused, so one person cannot queue a name twice.
func (s *Store) AddRequest(ctx context.Context, r Request, ttl time.Duration) (Request, error) {
	reqs, err := s.Requests(ctx)
	if err != nil {
		return Request{}, err
	}
	for _, o := range reqs {
		if o.User == r.User {
			return Request{}, ErrPending
		}
	}
	_, key := Token()
	r.ID, r.Created = idOf(key), s.now().UTC().Truncate(time.Second)
	r.Expires = r.Created.Add(ttl)
	return r, s.put(ctx, kindRequest, r.ID, r, r.Expires)
}

// ErrPending is returned by AddRequest for a username already waiting.
var ErrPending = errors.New("a request for this username is already waiting")

// Requests lists the waiting registration requests, oldest first.
func (s *Store) Requests(ctx context.Context) ([]Request, error) {
	return list[Request](ctx, s, kindRequest, func(r Request) time.Time { return r.Created })
}

// Approve takes the request with the given ID and passes it to create,
// which makes the user. If create fails, the request is put back and
// create's error returned. Of concurrent approvals (or an approval and a
// rejection) of one request, one gets it; the others get ErrNotFound.
func (s *Store) Approve(ctx context.Context, id string, create func(Request) error) (Request, error) {
	b, err := s.b.Take(ctx, kindRequest, id)
	if errors.Is(err, errMissing) {
		return Request{}, ErrNotFound
	}
	if err != nil {
		return Request{}, err
	}
	var r Request
	if err := json.Unmarshal(b, &r); err != nil {
		return Request{}, fmt.Errorf("decode request %s: %w", id, err)
	}
	if err := create(r); err != nil {
		if perr := s.b.Put(ctx, kindRequest, id, b, r.Expires); perr != nil {
			return r, errors.Join(err, perr)
		}
		return r, err
	}
	return r, nil
}

// Reject removes the request with the given ID and returns it.
func (s *Store) Reject(ctx context.Context, id string) (Request, error) {
	return s.Approve(ctx, id, func(Request) error { return nil })
}

func (s *Store) put(ctx context.Context, kind, key string, v any, expires time.Time) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.b.Put(ctx, kind, key, b, expires)
}

// get reads (take: and removes) the record of token. A record past its
// expiry is ErrInvalid even if the backend still held it.
func (s *Store) get(ctx context.Context, kind, token string, v any, take bool) error {
	if !validToken(token) {
		return ErrInvalid
	}
	op := s.b.Get
	if take {
		op = s.b.Take
	}
	b, err := op(ctx, kind, Key(token))
	if errors.Is(err, errMissing) {
		return ErrInvalid
	}
	if err != nil {
		return err
	}
	var exp struct {
		Expires time.Time `json:"expires"`
	}
	if err := json.Unmarshal(b, &exp); err != nil {
		return fmt.Errorf("decode %s record: %w", kind, err)
	}
	if !s.now().Before(exp.Expires) {
		return ErrInvalid
	}
	return json.Unmarshal(b, v)
}

func (s *Store) revoke(ctx context.Context, kind, id string) error {
	m, err := s.b.List(ctx, kind)
	if err != nil {
		return err
	}
	id = strings.ToLower(id)
	for key := range m {
		if len(id) == 12 && idOf(key) == id {
			return s.b.Delete(ctx, kind, key)
		}
	}
	return ErrNotFound
}

func list[T any](ctx context.Context, s *Store, kind string, created func(T) time.Time) ([]T, error) {
	m, err := s.b.List(ctx, kind)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(m))
	for key, b := range m {
		var v T
		if err := json.Unmarshal(b, &v); err != nil {
			return nil, fmt.Errorf("decode %s record %s: %w", kind, idOf(key), err)
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b T) int { return created(a).Compare(created(b)) })
	return out, nil
}

// Allow reports whether the action named by what (a hashed address, say)
// may happen now, and if so blocks it for interval: a limit on mails per
// address that every node sharing the store observes. Two racing calls may
// both be allowed; it bounds a flood, it is not a lock.
func (s *Store) Allow(ctx context.Context, what string, interval time.Duration) (bool, error) {
	key := Key(what)
	if _, err := s.b.Get(ctx, kindLimit, key); err == nil {
		return false, nil
	} else if !errors.Is(err, errMissing) {
		return false, err
	}
	return true, s.b.Put(ctx, kindLimit, key, []byte("{}"), s.now().Add(interval))
}
