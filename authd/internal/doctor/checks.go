package doctor

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
)

// identityHeaders are the request headers apps read a user from; the shipped
// snippets set each from authd's answer (authd-protect.conf) or clear it
// (authd-identity-clear.conf). TestIdentityHeadersMatchSnippet keeps the list
// in step with the snippet.
var identityHeaders = []string{
	"Remote-User", "Remote-Groups", "Remote-Email", "Remote-Name", "X-Remote-User",
	"X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Groups",
	"X-Auth-Request-Preferred-Username", "X-Forwarded-User", "X-Forwarded-Email",
	"X-Forwarded-Groups", "X-Forwarded-Preferred-Username", "X-Webauth-User",
}

// authdAnswer are the nginx variables that hold authd's identity answer.
var authdAnswer = map[string]bool{
	"$upstream_http_remote_user":   true,
	"$upstream_http_remote_groups": true,
	"$upstream_http_remote_email":  true,
	"$upstream_http_remote_name":   true,
}

// clientVars are variable prefixes whose value the client chooses.
var clientVars = []string{"$http_", "$cookie_", "$arg_", "$args", "$query_string", "$request_uri", "$uri", "$proxy_add_x_forwarded_for", "$request_body", "$remote_user"}

// contentHandlers make a location answer with something other than files from root.
var contentHandlers = []string{"proxy_pass", "fastcgi_pass", "uwsgi_pass", "scgi_pass", "grpc_pass", "memcached_pass"}

func (r *run) http(h *scope) {
	r.upstreams = map[string][]string{}
	for _, d := range h.body {
		if d.Name != "upstream" || !d.IsBlock() || len(d.Args) != 1 {
			continue
		}
		for _, s := range d.Block {
			if s.Name == "server" && len(s.Args) > 0 {
				r.upstreams[d.Args[0]] = append(r.upstreams[d.Args[0]], s.Args[0])
			}
		}
	}
	h.walk(func(s *scope) {
		if s.kind != "http" && s.kind != "server" {
			return
		}
		for _, d := range s.own("underscores_in_headers") {
			if d.Arg(0) == "on" {
				r.addAt(d, "underscores-in-headers",
					"underscores_in_headers on: a client's X_Remote_User reaches the app next to the Remote-User authd set, and some frameworks read both as one (oauth2-proxy CVE-2025-64484)",
					"remove it (the default is off)")
			}
		}
		for _, d := range s.own("ignore_invalid_headers") {
			if d.Arg(0) == "off" {
				r.addAt(d, "ignore-invalid-headers",
					"ignore_invalid_headers off: headers with underscores and other invalid names are passed to the app, so a client's X_Remote_User arrives even with underscores_in_headers off (oauth2-proxy CVE-2025-64484)",
					"remove it (the default is on)")
			}
		}
	})
	r.loginMap(h)
	// Which app addresses some server protects, to find servers that reach
	// the same app without authd.
	guarded := map[string]*scope{}
	var open []*scope
	for _, s := range h.kids {
		if s.kind != "server" {
			continue
		}
		if !r.server(s) {
			open = append(open, s)
			continue
		}
		for _, l := range s.locations() {
			if st, _ := auth(l); st != authOn {
				continue
			}
			for _, in := range l.inner() {
				for _, d := range in.own("proxy_pass") {
					if addrs, _, ok := r.target(d.Arg(0)); ok && !anyAuthd(addrs, r.opt.Listen) {
						for _, a := range addrs {
							guarded[canonAddr(a)] = l
						}
					}
				}
			}
		}
	}
	for _, s := range open {
		r.openServer(s, guarded)
	}
}

// openServer reports locations of a server without auth_request that pass
// requests to an app another server protects. nginx picks the server by the
// Host header (and an unknown Host goes to the default server), so a client
// that names this server reaches the app without a login
// (nginx.org/en/docs/http/request_processing.html; h5bp/server-configs-nginx#10).
func (r *run) openServer(srv *scope, guarded map[string]*scope) {
	for _, l := range append([]*scope{srv}, srv.locations()...) {
		if st, _ := auth(l); st == authOff {
			continue
		}
		for _, in := range l.inner() {
			if in.kind == "server" {
				continue
			}
			for _, d := range in.own("proxy_pass") {
				addrs, _, ok := r.target(d.Arg(0))
				if !ok {
					continue
				}
				for _, a := range addrs {
					p, hit := guarded[canonAddr(a)]
					if !hit {
						continue
					}
					f, line := p.pos()
					r.addAt(d, "unprotected-server",
						fmt.Sprintf("%s in %s (%s) reaches %s without auth_request, the app %s protects at %s:%d: a request whose Host selects this server gets in without a login", d.Name+" "+d.Arg(0), serverName(srv), l.name(), a, p.name(), f, line),
						"include authd/authd-server.conf in this server and authd/authd-protect.conf in the location, or remove the server")
					break
				}
			}
		}
	}
}

func serverName(srv *scope) string {
	if d := srv.first("server_name"); d != nil {
		return "server " + strings.Join(d.Args, " ")
	}
	if d := srv.first("listen"); d != nil {
		return "server listening on " + strings.Join(d.Args, " ")
	}
	return "server"
}

func canonAddr(a string) string {
	if strings.HasPrefix(a, "unix:") {
		return a
	}
	h, p, err := net.SplitHostPort(a)
	if err != nil {
		return a
	}
	return canonHost(h) + ":" + p
}

type authState int

const (
	authNone authState = iota // no auth_request anywhere above
	authOff                   // auth_request off: marked public
	authOn
)

// auth is the auth_request in force at s (nginx inherits it inward unless a
// level sets its own).
func auth(s *scope) (authState, *Directive) {
	v, d := s.value("auth_request")
	switch {
	case d == nil:
		return authNone, nil
	case v == "off":
		return authOff, d
	default:
		return authOn, d
	}
}

// server checks one server block; it reports whether the server protects
// anything (has an auth_request in force somewhere).
func (r *run) server(srv *scope) bool {
	if srv.first("return") != nil {
		return false // answered in the server's rewrite phase: no location is used
	}
	locs := srv.locations()
	protects := false
	verify := map[string]*Directive{}
	if st, d := auth(srv); st == authOn {
		protects = true
		verify[d.Arg(0)] = d
	}
	for _, l := range locs {
		if st, d := auth(l); st == authOn {
			protects = true
			if _, ok := verify[d.Arg(0)]; !ok {
				verify[d.Arg(0)] = d
			}
		}
	}
	if !protects {
		return false
	}
	targets := map[*scope]bool{}
	for uri := range verify {
		if v := verifyLocation(srv, locs, uri); v != nil {
			targets[v] = true
		}
	}
	var authdLocs []*scope
	for _, l := range locs {
		mod, _ := l.match()
		if mod == "@" || l.first("internal") != nil || targets[l] {
			continue // not reachable from a browser, or checked as a verify location
		}
		if r.proxiesToAuthd(l) {
			authdLocs = append(authdLocs, l)
			continue
		}
		r.location(srv, l)
	}
	for uri, d := range verify {
		r.verify(srv, locs, uri, d)
	}
	r.prefix(srv, authdLocs)
	for _, l := range locs {
		_, path := l.match()
		if strings.Contains(path, "_stcore/stream") {
			r.websocket(l)
		}
	}
	return true
}

// location checks one public location of a server that protects others.
func (r *run) location(srv *scope, l *scope) {
	st, ad := auth(l)
	proxies := hasAny(l, "proxy_pass")
	switch st {
	case authNone:
		if l.first("return") != nil || deniesAll(l) || redirects(l) {
			return // a redirect, a fixed answer or a refusal: no content
		}
		what := "serves files from its root"
		if h := handler(l); h != nil {
			what = "passes requests on (" + h.Name + ", " + where(h, l.dir) + ")"
		}
		r.addScope(l, "unprotected-location",
			fmt.Sprintf("%s %s without auth_request, in a server that protects other locations: anyone reaches it without a login", l.name(), what),
			"include authd/authd-protect.conf in it, or mark it public on purpose with `auth_request off;` (and clear the identity headers: include authd/authd-identity-clear.conf)")
		return
	case authOff:
		if proxies {
			r.identity(l, false)
		}
		return
	}
	for _, in := range l.inner() {
		for _, d := range in.own("return") {
			if code, err := strconv.Atoi(d.Arg(0)); err != nil || code < 200 || code > 299 {
				continue // a redirect or a refusal: nothing of the site goes out
			}
			r.addAt(d, "return-before-auth",
				fmt.Sprintf("return in %s runs in nginx's rewrite phase, before auth_request (%s): this answer goes out without asking authd", l.name(), ad.Pos()),
				"move the return into a location of its own (with auth_request off if it is meant to be public), or answer from the app")
		}
		for _, d := range in.own("rewrite") {
			r.rewrite(l, d, ad)
		}
	}
	for _, d := range l.own("try_files") {
		r.tryFiles(srv, l, d)
	}
	if v, sd := l.value("satisfy"); v == "any" {
		if allows, _ := l.effective("allow"); len(allows) > 0 {
			// nginx docs (ngx_http_core_module, satisfy): "any" lets a request in when
			// either allow/deny or auth_request says yes; Gixy-Next issue #40 shows it
			// next to auth_request in real configs.
			r.addAt(sd, "satisfy-any",
				fmt.Sprintf("satisfy any in %s with allow (%s): a client address that allow matches gets in without authd, with no identity", l.name(), allows[0].Pos()),
				"remove `satisfy any` (authd's rules can grant networks: [networks] with a role)")
		}
	}
	if proxies {
		r.identity(l, true)
		r.proxyPassURI(l, "the app gets a different path than the one authd allowed")
	}
	r.errorPage(srv, l)
}

// errorPage reports an error_page that turns authd's 401 or 403 into
// content: a 2xx status (error_page 401 =200 …), or a handler location that
// passes the request on to an app. nginx serves what the error_page target
// answers, so a denial becomes the app's page (nginx docs, error_page: "=code"
// changes the response code; authd-server.conf's @authd_401 only redirects or
// answers 401).
func (r *run) errorPage(srv *scope, l *scope) {
	pages, _ := l.effective("error_page")
	for _, d := range pages {
		denial, status := false, ""
		var target string
		for i, a := range d.Args {
			switch {
			case a == "401" || a == "403":
				denial = true
			case strings.HasPrefix(a, "="):
				status = strings.TrimPrefix(a, "=")
			case i == len(d.Args)-1:
				target = a
			}
		}
		if !denial {
			continue
		}
		if code, err := strconv.Atoi(status); err == nil && code >= 200 && code <= 299 {
			r.addAt(d, "error-page-bypass",
				fmt.Sprintf("error_page %s in %s answers authd's denial with status %d: a request authd refused gets a success", strings.Join(d.Args, " "), l.name(), code),
				"error_page 401 = @authd_401; (authd/authd-protect.conf), and no =2xx for 401 or 403")
			continue
		}
		var t *scope
		if strings.HasPrefix(target, "@") {
			for _, c := range srv.locations() {
				if mod, name := c.match(); mod == "@" && name == target {
					t = c
				}
			}
		} else if strings.HasPrefix(target, "/") && !strings.Contains(target, "$") {
			t = lookup(srv, target)
		}
		if t == nil || t == l || r.proxiesToAuthd(t) {
			continue
		}
		if h := handler(t); h != nil {
			if st, _ := auth(t); st == authOn && !strings.HasPrefix(target, "@") {
				continue // the error page is itself behind authd
			}
			f, line := t.pos()
			r.addAt(d, "error-page-bypass",
				fmt.Sprintf("error_page %s in %s sends authd's denial to %s (%s:%d), which passes it on (%s): a request authd refused reaches an app", strings.Join(d.Args, " "), l.name(), t.name(), f, line, h.Name),
				"error_page 401 = @authd_401; (authd/authd-protect.conf) and let 403 stay a 403")
		}
	}
}

func (r *run) rewrite(l *scope, d *Directive, ad *Directive) {
	if len(d.Args) < 2 {
		return
	}
	flag := d.Arg(2)
	repl := d.Arg(1)
	if flag == "redirect" || flag == "permanent" ||
		strings.HasPrefix(repl, "http://") || strings.HasPrefix(repl, "https://") || strings.HasPrefix(repl, "$scheme") {
		return // a redirect to the browser: nothing of the app is served
	}
	if flag == "break" {
		r.addAt(d, "rewrite-before-auth",
			fmt.Sprintf("rewrite ... break in %s changes the URI before auth_request (%s): authd decides on the URI the browser sent, the app serves the rewritten one", l.name(), ad.Pos()),
			"give the rewritten path its own location with its own rule, or drop the rewrite")
		return
	}
	r.addAt(d, "rewrite-before-auth",
		fmt.Sprintf("rewrite in %s runs before auth_request (%s) and sends the request to whatever location matches the new URI: this location's auth_request never runs", l.name(), ad.Pos()),
		"rewrite at server level (so the target location's own auth_request applies), or protect every location the rewrite can reach")
}

// tryFiles reports a fallback that lands in a location without auth_request:
// try_files runs after this location's check, but the location it hands the
// request to sets no identity headers from authd and may be reached by other
// paths too.
func (r *run) tryFiles(srv *scope, l *scope, d *Directive) {
	last := d.Arg(len(d.Args) - 1)
	if last == "" || strings.HasPrefix(last, "=") || strings.Contains(last, "$") {
		return
	}
	var target *scope
	if strings.HasPrefix(last, "@") {
		for _, c := range srv.locations() {
			if mod, name := c.match(); mod == "@" && name == last {
				target = c
			}
		}
	} else {
		target = lookup(srv, strings.SplitN(last, "?", 2)[0])
	}
	if target == nil || target == l {
		return
	}
	if st, _ := auth(target); st == authOn {
		return
	}
	f, line := target.pos()
	r.addAt(d, "try-files-unprotected",
		fmt.Sprintf("try_files in %s hands the request to %s (%s:%d), which has no auth_request: the app gets that location's headers, not authd's answer (a client's Remote-User passes unless it clears it), and any other route into it is open", l.name(), target.name(), f, line),
		"include authd/authd-protect.conf in "+target.name()+" too")
}

// lookup finds the prefix or exact location nginx would pick for path
// (regular expression locations are not evaluated).
func lookup(srv *scope, path string) *scope {
	var best *scope
	bestLen := -1
	for _, c := range srv.kids {
		if c.kind != "location" {
			continue
		}
		mod, p := c.match()
		switch mod {
		case "=":
			if p == path {
				return c
			}
		case "", "^~":
			if strings.HasPrefix(path, p) && len(p) > bestLen {
				best, bestLen = c, len(p)
			}
		}
	}
	return best
}

// identity checks the identity headers a proxying location sends the app.
// protected: the location asks authd (headers must come from its answer);
// otherwise it is public on purpose (headers must be cleared).
func (r *run) identity(l *scope, protected bool) {
	for _, in := range l.inner() {
		if v, _ := in.value("proxy_pass_request_headers"); v == "off" {
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
				fmt.Sprintf("%s is set from %s = %s, a header authd does not send (it answers Remote-User, Remote-Groups, Remote-Email, Remote-Name): the app sees no user", h, val, source[val]),
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

// headerList names a few headers and counts the rest: findings stay one line.
func headerList(hs []string) string {
	if len(hs) <= 3 {
		return strings.Join(hs, ", ")
	}
	return fmt.Sprintf("%s (and %d more identity headers)", strings.Join(hs[:3], ", "), len(hs)-3)
}

func isClientValue(v string) bool {
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

// proxyPassURI reports a proxy_pass whose URI part replaces the matched
// location path: what the upstream sees is not what authd decided on.
func (r *run) proxyPassURI(l *scope, why string) {
	mod, path := l.match()
	for _, in := range l.inner() {
		for _, d := range in.own("proxy_pass") {
			_, uri, ok := r.target(d.Arg(0))
			if !ok || uri == "" || strings.Contains(uri, "$") {
				continue
			}
			if (mod == "" || mod == "^~" || mod == "=") && uri == path {
				continue
			}
			r.addAt(d, "proxy-pass-uri",
				fmt.Sprintf("proxy_pass %s in %s replaces %q with %q: %s", d.Arg(0), l.name(), path, uri, why),
				fmt.Sprintf("drop the URI part (proxy_pass %s), and serve the app under the same path it is reached at", strings.TrimSuffix(d.Arg(0), uri)))
		}
	}
}

func (r *run) websocket(l *scope) {
	psh, _ := l.effective("proxy_set_header")
	upgrade, connection := false, false
	for _, d := range psh {
		switch strings.ToLower(d.Arg(0)) {
		case "upgrade":
			upgrade = upgrade || strings.Contains(d.Arg(1), "$http_upgrade")
		case "connection":
			connection = connection || strings.Contains(strings.ToLower(d.Arg(1)), "upgrade")
		}
	}
	if !upgrade || !connection {
		r.addScope(l, "websocket-headers",
			fmt.Sprintf("%s is Streamlit's WebSocket but does not pass Upgrade and Connection: the page stays on \"Connecting\"", l.name()),
			"include authd/streamlit-stream.conf in it (proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $authd_connection_upgrade; after the protect include)")
	}
	if v, d := l.value("proxy_http_version"); v != "1.1" {
		msg := fmt.Sprintf("%s proxies with HTTP/1.0 (nginx's default), which cannot upgrade to a WebSocket", l.name())
		if d != nil {
			msg = fmt.Sprintf("%s proxies with HTTP/%s, which cannot upgrade to a WebSocket", l.name(), v)
		}
		r.addScope(l, "websocket-headers", msg, "proxy_http_version 1.1; (authd-proxy-headers.conf sets it)")
	}
	v, d := l.value("proxy_read_timeout")
	t, ok := parseTime(v)
	if d == nil {
		t, ok = 60, true
	}
	if ok && t < minStreamTimeout {
		msg := fmt.Sprintf("%s keeps nginx's default proxy_read_timeout of 60s", l.name())
		if d != nil {
			msg = fmt.Sprintf("proxy_read_timeout %s applies to %s", v, l.name())
		}
		r.addScope(l, "websocket-timeout",
			msg+": nginx closes a Streamlit session's WebSocket after that long without a message, and the app reconnects and reruns",
			"proxy_read_timeout 1d; proxy_send_timeout 1d; in the WebSocket location (authd/streamlit-stream.conf sets both)")
	}
}

// minStreamTimeout is the shortest proxy_read_timeout (seconds) doctor
// accepts on Streamlit's WebSocket; the shipped profile uses a day.
const minStreamTimeout = 3600

// parseTime reads an nginx time ("60", "30s", "5m", "1h 30m", "1d").
func parseTime(v string) (int, bool) {
	units := map[byte]int{'s': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 7 * 86400}
	total := 0
	for _, f := range strings.Fields(v) {
		for f != "" {
			i := 0
			for i < len(f) && f[i] >= '0' && f[i] <= '9' {
				i++
			}
			if i == 0 {
				return 0, false
			}
			n, err := strconv.Atoi(f[:i])
			if err != nil {
				return 0, false
			}
			mult := 1
			if i < len(f) {
				if strings.HasPrefix(f[i:], "ms") {
					mult, i = 0, i+2
				} else {
					u, ok := units[f[i]]
					if !ok {
						return 0, false
					}
					mult, i = u, i+1
				}
			}
			total += n * mult
			f = f[i:]
		}
	}
	return total, v != ""
}

// verify checks the location auth_request points to.
func (r *run) verify(srv *scope, locs []*scope, uri string, ad *Directive) {
	v := verifyLocation(srv, locs, uri)
	if v == nil {
		r.addAt(ad, "verify-missing",
			fmt.Sprintf("auth_request %s: no location in this server matches %s, so every protected request fails", uri, uri),
			"include authd/authd-server.conf in the server")
		return
	}
	if st, _ := auth(v); st == authOn && v.first("internal") == nil {
		f, line := v.pos()
		r.addAt(ad, "verify-missing",
			fmt.Sprintf("auth_request %s lands in %s (%s:%d), an ordinary protected location, not authd's verify location", uri, v.name(), f, line),
			"include authd/authd-server.conf in the server, or point auth_request at its location = /_authd/verify")
		return
	}
	if v.first("internal") == nil {
		r.addScope(v, "verify-not-internal",
			fmt.Sprintf("%s (the auth_request target) is not internal: a browser can call it directly and read authd's answer, identity headers included; only nginx's subrequests should reach it", v.name()),
			"add `internal;` to it")
	}
	pp := v.first("proxy_pass")
	if pp == nil {
		// perusio/nginx-auth-request-module#8: an auth endpoint that answers 2xx
		// by itself lets everyone in.
		r.addScope(v, "verify-not-proxied",
			fmt.Sprintf("%s (the auth_request target) does not proxy_pass to authd: whatever it answers decides every request", v.name()),
			fmt.Sprintf("proxy_pass http://authd/verify; to authd at %s (authd/authd-server.conf)", r.opt.Listen))
		return
	}
	if body, _ := v.value("proxy_pass_request_body"); body != "off" {
		r.addScope(v, "verify-body",
			fmt.Sprintf("%s forwards the request body to authd: every upload goes to authd too, which never reads it, and a large one stalls the check", v.name()),
			"proxy_pass_request_body off; proxy_set_header Content-Length \"\";")
	}
	addrs, path, ok := r.target(pp.Arg(0))
	if ok && r.opt.Listen != "" && !anyAuthd(addrs, r.opt.Listen) {
		r.addAt(pp, "verify-address",
			fmt.Sprintf("proxy_pass %s goes to %s, but authd listens on %s", pp.Arg(0), strings.Join(addrs, ", "), r.opt.Listen),
			fmt.Sprintf("point the authd upstream at %s, or change listen in authd's config", r.opt.Listen))
	}
	if ok && path != "/verify" && !strings.Contains(path, "$") {
		got := path
		if got == "" {
			got = uri + " (the subrequest's own URI)"
		}
		r.addAt(pp, "verify-path",
			fmt.Sprintf("proxy_pass %s asks authd for %s; authd answers auth_request at /verify (not under its prefix)", pp.Arg(0), got),
			"proxy_pass http://authd/verify;")
	}
	if c, cd := v.value("proxy_cache"); cd != nil && c != "off" {
		// nginxinc/nginx-ldap-auth#103: a cached auth answer keyed without the
		// credentials let everyone in after one success.
		r.addAt(cd, "verify-cache",
			fmt.Sprintf("proxy_cache %s applies to %s: nginx may answer a verify from its cache, for another user's cookie, after a logout or revocation", c, v.name()),
			"proxy_cache off; in the verify location (authd answers verify from memory; it needs no cache)")
	}
	// What authd decides on comes from these headers. nginx passes every client
	// header on unless the location sets it, so a header the verify location
	// does not set is one the client chooses (oauth2-proxy#2277 is the
	// missing-header half of this).
	psh, _ := v.effective("proxy_set_header")
	set := map[string]string{}
	for _, d := range psh {
		set[strings.ToLower(d.Arg(0))] = d.Arg(1)
	}
	for _, h := range []struct {
		name, want, check, what string
		also                    []string
	}{
		{name: "X-Original-URI", want: "$request_uri", check: "verify-original-uri", what: "which path authd decides on"},
		{name: "X-Original-Method", want: "$request_method", check: "verify-original-method", what: "which method authd decides on (a POST can claim to be a GET that a rule allows)"},
		// authd matches rules' host against X-Forwarded-Host.
		{name: "X-Forwarded-Host", want: "$host", check: "verify-forwarded-host", what: "which host authd's host rules see", also: []string{"$http_host", "$server_name"}},
	} {
		got, ok := set[strings.ToLower(h.name)]
		switch {
		case !ok:
			r.addScope(v, h.check,
				fmt.Sprintf("%s does not set %s: the client's own %s reaches authd, so the client chooses %s", v.name(), h.name, h.name, h.what),
				fmt.Sprintf("proxy_set_header %s %s;", h.name, h.want))
		case got != h.want && !slices.Contains(h.also, got):
			r.addScope(v, h.check,
				fmt.Sprintf("%s sets %s to %q, not %s: authd decides on something other than the request nginx serves", v.name(), h.name, got, h.want),
				fmt.Sprintf("proxy_set_header %s %s;", h.name, h.want))
		}
	}
	if xff, ok := set["x-forwarded-for"]; !ok || (!strings.Contains(xff, "$proxy_add_x_forwarded_for") && !strings.Contains(xff, "$remote_addr")) {
		msg := fmt.Sprintf("%s does not set X-Forwarded-For: the client's own header reaches authd, which takes the client address from it, so a client picks the address that network rules and throttles see", v.name())
		if ok {
			msg = fmt.Sprintf("%s sets X-Forwarded-For to %q, which does not end with the address nginx saw: network rules and throttles see an address the client chose", v.name(), xff)
		}
		r.addScope(v, "verify-client-ip", msg, "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;")
	}
}

// verifyLocation finds the location an auth_request URI lands in, or nil.
func verifyLocation(srv *scope, locs []*scope, uri string) *scope {
	for _, l := range locs {
		if mod, p := l.match(); mod == "=" && p == uri {
			return l
		}
	}
	return lookup(srv, uri)
}

// prefix checks that authd's pages are reachable where authd says they are.
func (r *run) prefix(srv *scope, authdLocs []*scope) {
	if r.opt.Prefix == "" {
		return
	}
	found := false
	for _, l := range authdLocs {
		mod, p := l.match()
		if (mod == "" || mod == "^~") && p == r.opt.Prefix {
			found = true
			if st, ad := auth(l); st == authOn {
				r.addScope(l, "authd-pages-protected",
					fmt.Sprintf("%s (authd's login pages) inherits auth_request (%s): the login form itself needs a login, so nobody can log in", l.name(), ad.Pos()),
					"auth_request off; in this location, or move auth_request from the server into the locations it protects")
			}
			r.proxyPassURI(l, "authd sees a different path than the browser asked for, so its pages and redirects break")
			continue
		}
		if (mod == "" || mod == "^~" || mod == "=") && !strings.HasPrefix(p, r.opt.Prefix) {
			r.addScope(l, "prefix-mismatch",
				fmt.Sprintf("%s proxies to authd, but authd's prefix is %s: its login form links and redirects point to %s", l.name(), r.opt.Prefix, r.opt.Prefix),
				fmt.Sprintf("use location ^~ %s, or set prefix = %q in authd's config", r.opt.Prefix, p))
		}
	}
	if !found && len(authdLocs) == 0 {
		r.addScope(srv, "prefix-mismatch",
			fmt.Sprintf("no location in this server proxies %s to authd: the login form is unreachable and every login redirect ends in 404", r.opt.Prefix),
			"include authd/authd-server.conf in the server")
	}
}

// loginMap checks the fallback login URL the shipped maps send browsers to.
func (r *run) loginMap(h *scope) {
	if r.opt.Prefix == "" {
		return
	}
	for _, d := range h.body {
		if d.Name != "map" || !d.IsBlock() || d.Arg(1) != "$authd_login_url" {
			continue
		}
		for _, e := range d.Block {
			if e.Name == "" && len(e.Args) == 1 && e.Args[0] != r.opt.Prefix+"login" {
				r.addAt(e, "prefix-mismatch",
					fmt.Sprintf("the fallback login URL %s is not under authd's prefix %s", e.Args[0], r.opt.Prefix),
					fmt.Sprintf("\"\" %slogin;", r.opt.Prefix))
			}
		}
	}
}

// proxiesToAuthd reports whether l's proxy_pass goes to authd's listen address.
func (r *run) proxiesToAuthd(l *scope) bool {
	d := l.first("proxy_pass")
	if d == nil || r.opt.Listen == "" {
		return false
	}
	addrs, _, ok := r.target(d.Arg(0))
	return ok && anyAuthd(addrs, r.opt.Listen)
}

// target splits a proxy_pass URL into the addresses it reaches (an upstream's
// servers, or host:port) and its URI part; ok is false when variables make it
// unknowable.
func (r *run) target(u string) (addrs []string, uri string, ok bool) {
	rest := u
	scheme := "http"
	if i := strings.Index(rest, "://"); i >= 0 {
		scheme, rest = rest[:i], rest[i+3:]
	}
	var hostport string
	if p, found := strings.CutPrefix(rest, "unix:"); found {
		// http://unix:/path/to.sock:/uri
		if i := strings.Index(p, ":"); i >= 0 {
			hostport, uri = "unix:"+p[:i], p[i+1:]
		} else {
			hostport = "unix:" + p
		}
	} else if i := strings.Index(rest, "/"); i >= 0 {
		hostport, uri = rest[:i], rest[i:]
	} else {
		hostport = rest
	}
	if strings.Contains(hostport, "$") {
		return nil, "", false
	}
	if servers, isUp := r.upstreams[hostport]; isUp {
		return servers, uri, true
	}
	if !strings.HasPrefix(hostport, "unix:") {
		if _, _, err := net.SplitHostPort(hostport); err != nil {
			port := "80"
			if scheme == "https" || scheme == "grpcs" {
				port = "443"
			}
			hostport = net.JoinHostPort(strings.Trim(hostport, "[]"), port)
		}
	}
	return []string{hostport}, uri, true
}

func anyAuthd(addrs []string, listen string) bool {
	for _, a := range addrs {
		if sameAddr(a, listen) {
			return true
		}
	}
	return false
}

// sameAddr compares an nginx upstream address with authd's listen address.
func sameAddr(ngx, listen string) bool {
	if strings.HasPrefix(listen, "unix:") || strings.HasPrefix(ngx, "unix:") {
		return ngx == listen
	}
	nh, np, err := net.SplitHostPort(ngx)
	if err != nil {
		nh, np = ngx, "80"
	}
	lh, lp, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if np != lp {
		return false
	}
	switch lh {
	case "", "0.0.0.0", "::":
		return true // authd listens on every address
	}
	return sameHost(nh, lh)
}

// sameHost compares hosts literally, except that "localhost" (which nginx
// resolves to every loopback address it has) matches 127.0.0.1 and ::1.
func sameHost(a, b string) bool {
	a, b = strings.ToLower(strings.Trim(a, "[]")), strings.ToLower(strings.Trim(b, "[]"))
	if a == b {
		return true
	}
	loop := func(h string) bool { return h == "127.0.0.1" || h == "::1" }
	return (a == "localhost" && loop(b)) || (b == "localhost" && loop(a))
}

func canonHost(h string) string {
	h = strings.ToLower(strings.Trim(h, "[]"))
	switch h {
	case "localhost", "::1", "127.0.0.1":
		return "loopback"
	}
	return h
}

// where names d's place for a message about ref: "line N" in the same file,
// else file:line.
func where(d, ref *Directive) string {
	if ref != nil && d.File == ref.File {
		return fmt.Sprintf("line %d", d.Line)
	}
	return d.Pos()
}

// redirects reports whether l has a rewrite that sends every request to the
// browser as a redirect, and no content handler.
func redirects(l *scope) bool {
	if handler(l) != nil {
		return false
	}
	for _, d := range l.own("rewrite") {
		flag, repl := d.Arg(2), d.Arg(1)
		if d.Arg(0) == "^" || d.Arg(0) == "^(.*)$" || d.Arg(0) == "^/(.*)$" || d.Arg(0) == "^.*$" {
			if flag == "redirect" || flag == "permanent" || strings.HasPrefix(repl, "http://") || strings.HasPrefix(repl, "https://") || strings.HasPrefix(repl, "$scheme") {
				return true
			}
		}
	}
	return false
}

// deniesAll reports whether l refuses every client (deny all; before any allow).
func deniesAll(l *scope) bool {
	for _, d := range l.body {
		switch {
		case d.Name == "allow":
			return false
		case d.Name == "deny" && d.Arg(0) == "all":
			return true
		}
	}
	return false
}

// hasAny reports whether l (or an if/limit_except inside it) has directive name.
func hasAny(l *scope, name string) bool {
	for _, in := range l.inner() {
		if in.first(name) != nil {
			return true
		}
	}
	return false
}

// handler returns the first content handler directive in l, or nil.
func handler(l *scope) *Directive {
	for _, in := range l.inner() {
		for _, n := range contentHandlers {
			if d := in.first(n); d != nil {
				return d
			}
		}
	}
	return nil
}
