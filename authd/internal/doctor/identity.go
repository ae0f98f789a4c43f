package doctor

import (
	"fmt"
	"strings"
)

// identityHeaders are the request headers apps read a user from; the shipped
// snippets set each from authd's answer (authd-protect.conf) or clear it
// (authd-identity-clear.conf). TestIdentityHeadersMatchSnippet keeps the list
// in step with the snippet.
var identityHeaders = []string{
	"Remote-User", "Remote-Groups", "Remote-Email", "Remote-Name", "Remote-Auth-Level", "X-Remote-User",
	"X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Groups",
	"X-Auth-Request-Preferred-Username", "X-Forwarded-User", "X-Forwarded-Email",
	"X-Forwarded-Groups", "X-Forwarded-Preferred-Username", "X-Webauth-User",
}

// authdAnswer are the nginx variables that hold authd's identity answer.
var authdAnswer = map[string]bool{
	"$upstream_http_remote_user":       true,
	"$upstream_http_remote_groups":     true,
	"$upstream_http_remote_email":      true,
	"$upstream_http_remote_name":       true,
	"$upstream_http_remote_auth_level": true,
}

// clientVars are variable prefixes whose value the client chooses.
var clientVars = []string{"$http_", "$cookie_", "$arg_", "$args", "$query_string", "$request_uri", "$uri", "$proxy_add_x_forwarded_for", "$request_body", "$remote_user"}

// identity checks the identity headers a proxying location sends the app.
// protected: the location asks authd (headers must come from its answer);
// otherwise it is public on purpose (headers must be cleared).
func (r *run) identity(l *scope, protected bool) {
	for _, in := range l.inner() {
		if v, _ := in.value("proxy_pass_request_headers"); flag(v) == "off" {
			return // no client header reaches the app at all
		}
	}
	psh, from := l.effective("proxy_set_header")
	set := map[string]*Directive{}
	for _, d := range psh {
		set[strings.ToLower(d.Arg(0))] = d
	}
	ars, _ := l.effective("auth_request_set")
	fromAuthd := map[string]bool{}
	source := map[string]string{}
	for _, d := range ars {
		source[d.Arg(0)] = d.Arg(1)
		if authdAnswer[strings.ToLower(d.Arg(1))] {
			fromAuthd[d.Arg(0)] = true
		}
	}
	if protected {
		r.appAuthorization(l, set["authorization"])
	}
	var missing, unset []string
	for _, h := range identityHeaders {
		d, ok := set[strings.ToLower(h)]
		if !ok {
			missing = append(missing, h)
			continue
		}
		val := d.Arg(1)
		switch {
		case val == "":
		case isClientValue(val):
			r.addAt(d, "identity-from-client",
				fmt.Sprintf("%s is set from %s, which the client chooses: anyone can claim any user", h, val),
				fmt.Sprintf("set it from authd's answer (auth_request_set + proxy_set_header %s $authd_user, as authd-protect.conf does) or to \"\"", h))
		case protected && strings.HasPrefix(val, "$") && !fromAuthd[val] && source[val] != "":
			r.addAt(d, "identity-not-from-authd",
				fmt.Sprintf("%s is set from %s = %s, a header authd does not send (it answers Remote-User, Remote-Groups, Remote-Email, Remote-Name, Remote-Auth-Level): the app sees no user", h, val, source[val]),
				fmt.Sprintf("auth_request_set %s $upstream_http_remote_user; (or the Remote-* header that carries this value)", val))
		case protected && strings.HasPrefix(val, "$") && !fromAuthd[val] && isAuthRequestSetVar(l, val):
			unset = append(unset, h+" "+val)
		}
	}
	if len(unset) > 0 {
		why := "no auth_request_set applies here"
		if len(ars) > 0 {
			why = fmt.Sprintf("the auth_request_set at %s replaces every inherited one (nginx inherits auth_request_set all or nothing)", ars[0].Pos())
		}
		r.addScope(l, "identity-not-from-authd",
			fmt.Sprintf("%s sends %s, but %s: those variables are empty and the app sees no user", l.name(), strings.Join(unset, ", "), why),
			"include authd/authd-protect.conf in this location (after its own auth_request_set lines), or set the headers to \"\"")
	}
	if len(missing) == 0 {
		return
	}
	var why string
	switch {
	case from == nil:
		why = "no proxy_set_header clears them"
	case from == l:
		why = fmt.Sprintf("its own proxy_set_header (%s) replaces every one inherited from the levels around it (nginx inherits proxy_set_header all or nothing)", where(psh[0], l.dir))
	default:
		f, line := from.pos()
		why = fmt.Sprintf("the proxy_set_header list it inherits from %s (%s:%d) does not clear them", from.name(), f, line)
	}
	fix := "include authd/authd-protect.conf in this location, after any proxy_set_header of its own, or add the missing ones"
	if !protected {
		fix = "include authd/authd-identity-clear.conf in this location (and authd/authd-proxy-headers.conf)"
	}
	r.addScope(l, "identity-not-cleared",
		fmt.Sprintf("%s passes a client's %s to the app unchanged: %s", l.name(), headerList(missing), why),
		fix)
}

// appAuthorization checks that a protected location does not hand the app
// the client's Authorization header: authd reads API tokens and signatures
// from it, and nginx forwards it unless a proxy_set_header replaces it
// (authd-protect.conf sends the authd_app_authorization map's value, which
// drops authd's credentials and keeps the app's own schemes).
func (r *run) appAuthorization(l *scope, d *Directive) {
	fix := "include authd/authd-protect.conf in this location (it sets proxy_set_header Authorization $authd_app_authorization), after any proxy_set_header of its own"
	switch {
	case d == nil:
		r.addScope(l, "credentials-to-app",
			fmt.Sprintf("%s passes the client's Authorization header to the app unchanged: an API token authd accepted reaches the app", l.name()), fix)
	case isClientValue(d.Arg(1)):
		r.addAt(d, "credentials-to-app",
			fmt.Sprintf("Authorization is set from %s: an API token authd accepted reaches the app", d.Arg(1)), fix)
	}
}

// headerList names a few headers and counts the rest: findings stay one line.
func headerList(hs []string) string {
	if len(hs) <= 3 {
		return strings.Join(hs, ", ")
	}
	return fmt.Sprintf("%s (and %d more identity headers)", strings.Join(hs[:3], ", "), len(hs)-3)
}

func isClientValue(v string) bool {
	// nginx lower-cases variable names ($HTTP_X_USER is $http_x_user) and
	// reads ${name} as $name.
	v = strings.ReplaceAll(strings.ToLower(v), "${", "$")
	for _, p := range clientVars {
		if strings.Contains(v, p) {
			return true
		}
	}
	return false
}

// isAuthRequestSetVar reports whether any auth_request_set in the server sets v.
func isAuthRequestSetVar(l *scope, v string) bool {
	srv := l.server()
	found := false
	srv.walk(func(s *scope) {
		for _, d := range s.own("auth_request_set") {
			if d.Arg(0) == v {
				found = true
			}
		}
	})
	return found
}
