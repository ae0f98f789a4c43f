package doctor

import (
	"fmt"
	"strconv"
	"strings"
)

// contentHandlers make a location answer with something other than files from root.
var contentHandlers = []string{"proxy_pass", "fastcgi_pass", "uwsgi_pass", "scgi_pass", "grpc_pass", "memcached_pass"}

// http checks one http level: the header-parsing switches, the login map,
// every server, and servers that reach a protected app without authd.
func (r *run) http(h *scope) {
	r.upstreams = map[string][]string{}
	for _, d := range h.body {
		if d.Name != "upstream" || !d.IsBlock() || len(d.Args) != 1 {
			continue
		}
		for _, s := range d.Block {
			if s.Name == "server" && len(s.Args) > 0 {
				// Keyed in lower case: nginx finds an upstream by name
				// in any letter case (ngx_http_upstream_add uses
				// ngx_strncasecmp), so http://App reaches upstream app.
				name := strings.ToLower(d.Args[0])
				r.upstreams[name] = append(r.upstreams[name], s.Args[0])
			}
		}
	}
	h.walk(func(s *scope) {
		if s.kind != "http" && s.kind != "server" {
			return
		}
		for _, d := range s.own("underscores_in_headers") {
			if flag(d.Arg(0)) == "on" {
				r.addAt(d, "underscores-in-headers",
					"underscores_in_headers on: a client's X_Remote_User reaches the app next to the Remote-User authd set, and some frameworks read both as one (oauth2-proxy CVE-2025-64484)",
					"remove it (the default is off)")
			}
		}
		for _, d := range s.own("ignore_invalid_headers") {
			if flag(d.Arg(0)) == "off" {
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
		r.protects = true
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

// flag normalises the value of an on/off or enum directive: nginx reads it
// in any letter case (ngx_conf_set_flag_slot and ngx_conf_set_enum_slot
// compare with ngx_strcasecmp), so `underscores_in_headers ON;` is as on as
// `on` and `satisfy Any;` is any. Only such directives: a value such as
// auth_request's `off` is compared case-sensitively by its module
// (`auth_request OFF;` asks the URI "OFF").
func flag(v string) string { return strings.ToLower(v) }

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
			// A redirect, a fixed answer or a refusal: no content, unless
			// an error_page turns the answer into a named location's.
			r.errorPageToNamed(srv, l)
			return
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
	if v, sd := l.value("satisfy"); flag(v) == "any" {
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

// errorPageToNamed reports an error_page, in force in a location that never
// asks authd, that sends the location's own answer (`return 418;`, `deny
// all;`) to a named location passing requests on without auth_request:
// nginx's internal redirect runs the named location's phases, so the app
// answers a request authd never saw. Named locations are otherwise skipped
// as unreachable from a browser.
func (r *run) errorPageToNamed(srv *scope, l *scope) {
	pages, _ := l.effective("error_page")
	for _, d := range pages {
		target := d.Arg(len(d.Args) - 1)
		if !strings.HasPrefix(target, "@") {
			continue // a URI target is a location of its own, checked as one
		}
		for _, c := range srv.locations() {
			mod, name := c.match()
			if mod != "@" || name != target || r.proxiesToAuthd(c) {
				continue
			}
			if st, _ := auth(c); st != authNone {
				continue
			}
			h := handler(c)
			if h == nil {
				continue
			}
			f, line := c.pos()
			r.addAt(d, "unprotected-location",
				fmt.Sprintf("error_page %s in %s sends its answer to %s (%s:%d), which passes requests on (%s) without auth_request: anyone reaches the app there without a login", strings.Join(d.Args, " "), l.name(), c.name(), f, line, h.Name),
				"include authd/authd-protect.conf in the named location, or drop the error_page")
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
