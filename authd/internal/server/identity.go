package server

import (
	"github.com/authd/authd/authd/internal/users"
)

// identity holds one user's identity header values, ready to be put into a
// response header map: verify answers them without allocating.
type identity struct {
	user, groups, email, name []string
}

func newIdentity(u *users.Entry) *identity {
	id := &identity{user: []string{u.Name}}
	if u.GroupsHeader != "" {
		id.groups = []string{u.GroupsHeader}
	}
	if u.Email != "" {
		id.email = []string{u.Email}
	}
	if u.DisplayName != "" {
		id.name = []string{u.DisplayName}
	}
	return id
}

// identities are the identities of one users snapshot, built on first use
// after the snapshot changes.
type identities struct {
	db *users.DB
	m  map[*users.Entry]*identity
}

func (s *Server) identityOf(u *users.Entry) *identity {
	db := s.users.DB()
	c := s.ids.Load()
	if c == nil || c.db != db {
		c = &identities{db: db, m: map[*users.Entry]*identity{}}
		for _, x := range db.Users() {
			if e, ok := db.Lookup(x.Name); ok {
				c.m[e] = newIdentity(e)
			}
		}
		s.ids.Store(c)
	}
	if id, ok := c.m[u]; ok {
		return id
	}
	return newIdentity(u) // u came from a snapshot replaced meanwhile
}

func (s *Server) setIdentity(h map[string][]string, u *users.Entry) {
	id := s.identityOf(u)
	h["Remote-User"] = id.user
	if id.groups != nil {
		h["Remote-Groups"] = id.groups
	}
	if id.email != nil {
		h["Remote-Email"] = id.email
	}
	if id.name != nil {
		h["Remote-Name"] = id.name
	}
}
