package doctor

import (
	"net"
	"strings"
)

// canonAddr spells an address so that two servers reaching the same app
// compare equal (every loopback spelling is one).
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
	if servers, isUp := r.upstreams[strings.ToLower(hostport)]; isUp {
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
