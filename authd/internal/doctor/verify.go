package doctor

import (
	"fmt"
	"slices"
	"strings"
)

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
	if body, _ := v.value("proxy_pass_request_body"); flag(body) != "off" {
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
