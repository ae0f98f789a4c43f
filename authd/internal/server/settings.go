package server

import (
	"errors"
	"net/url"
	"strings"

	"github.com/go-webauthn/webauthn/webauthn"
)

// settings are the options one request reads. SetOptions swaps them whole,
// so a request that loads them once sees one consistent set however a
// reload races it, and verify pays one atomic load for them.
type settings struct {
	Options
	origin    string           // PublicURL's origin
	origins   map[string]bool  // allowed absolute redirect origins
	preName   string           // pre-session (CSRF) cookie name
	oidcName  string           // OIDC flow cookie name
	providers []providerButton // the login page's "Sign in with …" buttons
	pages     *pages
	gate      *gate
	// webauthn is the passkey relying party; nil when public_url cannot be one.
	webauthn *webauthn.WebAuthn
}

// newSettings derives what requests need from o. prev, when not nil, is the
// running set: its hashing gate is kept when the gate's limits are unchanged,
// so in-flight logins carry over. The failed-login floor is not here: it is
// the server's pacer, which follows the stored hashes and HashParams.
func newSettings(o Options, prev *settings) (*settings, error) {
	pu, err := url.Parse(o.PublicURL)
	if err != nil || pu.Host == "" {
		return nil, errors.New("public url must be absolute")
	}
	st := &settings{Options: o, origin: originOf(pu), origins: map[string]bool{}}
	st.origins[st.origin] = true
	for _, h := range o.RedirectHosts {
		if u, err := url.Parse(h); err == nil && u.Host != "" {
			st.origins[originOf(u)] = true
		}
	}
	st.preName = strings.Replace(o.CookieName, "session", "pre", 1)
	if st.preName == o.CookieName {
		st.preName = o.CookieName + "_pre"
	}
	st.oidcName = flowName(o.CookieName)
	if prev != nil {
		st.providers = prev.providers
	}
	if prev != nil && prev.MaxHashing == o.MaxHashing && prev.MaxHashQueue == o.MaxHashQueue && prev.HashQueueTimeout == o.HashQueueTimeout {
		st.gate = prev.gate
	} else {
		// A login holding a slot of the old gate releases it there: each
		// login loads the settings once. For as long as such logins run,
		// old and new gates together may admit more than either limit.
		st.gate = newGate(o.MaxHashing, o.MaxHashQueue, o.HashQueueTimeout)
	}
	st.webauthn = newWebAuthn(o)
	if st.pages, err = newPages(o, st.origins); err != nil {
		return nil, err
	}
	if prev != nil {
		st.pages.lane = prev.pages.lane
	} else {
		st.pages.lane = newLane(0)
	}
	return st, nil
}

// SetOptions applies o to every request that starts from now on; requests
// already running finish with the options they started with. The fields that
// shape routes, cookies and CSRF tokens — PublicURL, Prefix, CookieName,
// InsecureCookies, Secret — and Build keep the values New was given: changing
// them needs a restart, which the caller reports.
func (s *Server) SetOptions(o Options) error {
	cur := s.cur.Load()
	o.PublicURL, o.Prefix, o.CookieName, o.InsecureCookies = cur.PublicURL, cur.Prefix, cur.CookieName, cur.InsecureCookies
	o.Secret, o.Build = cur.Secret, cur.Build
	o.MFA = cur.MFA // [mfa] applies at restart
	st, err := newSettings(o, cur)
	if err != nil {
		return err
	}
	s.cur.Store(st)
	s.pace.setDummy(o.HashParams)
	return nil
}
