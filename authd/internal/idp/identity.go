// Package idp turns an external identity provider's answer (an OIDC ID
// token, an LDAP entry) into an Identity that authd can give a session.
package idp

// Identity is a user as an external provider describes them.
type Identity struct {
	Name, Email, DisplayName string
	Groups                   []string
	Source                   string
}
