package users

import (
	"errors"
	"testing"
)

func TestCheckAdminsLeft(t *testing.T) {
	groups := []string{"admin", "ops"}
	ann := User{Name: "ann", Groups: []string{"admin"}}
	bob := User{Name: "bob", Groups: []string{"ops", "x"}}
	cat := User{Name: "cat", Groups: []string{"x"}}
	locked := func(u User) User { u.Disabled = true; return u }
	demoted := func(u User) User { u.Groups = []string{"x"}; return u }
	for _, tt := range []struct {
		name string
		all  []User
		who  string
		nu   User
		del  bool
		last bool
	}{
		{"lock one of two", []User{ann, bob, cat}, "ann", locked(ann), false, false},
		{"lock the last", []User{ann, cat}, "ann", locked(ann), false, true},
		{"delete the last", []User{ann, cat}, "ann", User{}, true, true},
		{"demote the last", []User{ann, cat}, "ann", demoted(ann), false, true},
		{"demote the last of another group", []User{bob, cat}, "bob", demoted(bob), false, true},
		{"other admin is locked", []User{ann, locked(bob)}, "ann", User{}, true, true},
		{"change a non-admin", []User{ann, cat}, "cat", locked(cat), false, false},
		{"delete a non-admin", []User{ann, cat}, "cat", User{}, true, false},
		{"edit the last, still admin", []User{ann, cat}, "ann", User{Name: "ann", Groups: []string{"admin"}, Email: "a@x"}, false, false},
		{"no admins before", []User{cat}, "cat", User{}, true, false},
		{"add the first", nil, "ann", ann, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckAdminsLeft(tt.all, groups, tt.who, tt.nu, tt.del)
			if got := errors.Is(err, ErrLastAdmin); got != tt.last {
				t.Errorf("got %v, want last admin %v", err, tt.last)
			}
		})
	}
}
