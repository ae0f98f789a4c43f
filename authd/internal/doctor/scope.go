package doctor

import "strings"

// scope is one configuration level: http, server, location, or an if or
// limit_except block inside a location. nginx merges settings from the outer
// level into the inner one, and scope models that merge for the directives
// the checks read.
type scope struct {
	kind   string     // "http", "server", "location", "if", "limit_except"
	dir    *Directive // the block directive; nil for an http level implied by a site file
	parent *scope
	body   []*Directive
	kids   []*scope
}

func newScope(kind string, d *Directive, parent *scope, body []*Directive) *scope {
	s := &scope{kind: kind, dir: d, parent: parent, body: body}
	for _, c := range body {
		if !c.IsBlock() {
			continue
		}
		switch c.Name {
		case "http", "server", "location", "if", "limit_except":
			s.kids = append(s.kids, newScope(c.Name, c, s, c.Block))
		}
	}
	return s
}

// own returns this level's simple directives called name.
func (s *scope) own(name string) []*Directive {
	var out []*Directive
	for _, d := range s.body {
		if d.Name == name && !d.IsBlock() {
			out = append(out, d)
		}
	}
	return out
}

// first returns this level's first simple directive called name, or nil.
func (s *scope) first(name string) *Directive {
	for _, d := range s.body {
		if d.Name == name && !d.IsBlock() {
			return d
		}
	}
	return nil
}

// effective returns the directives called name that apply at this level:
// nginx takes a level's own list if it has any, otherwise the enclosing
// level's, all or nothing ("inherited from the previous configuration level
// if and only if there are no proxy_set_header directives defined on the
// current level", ngx_http_proxy_module). That is how proxy_set_header,
// auth_request_set, error_page, add_header and every single-valued directive
// (auth_request, proxy_pass_*, timeouts) inherit; one proxy_set_header in a
// location drops every identity header a server-level snippet cleared, the
// mistake doctor exists for. from is the level they were written at (nil: none).
func (s *scope) effective(name string) (ds []*Directive, from *scope) {
	for l := s; l != nil; l = l.parent {
		if own := l.own(name); len(own) > 0 {
			return own, l
		}
	}
	return nil, nil
}

// value returns the effective single value of name (its last definition at
// the level that sets it) and the directive, or "" and nil.
func (s *scope) value(name string) (string, *Directive) {
	ds, _ := s.effective(name)
	if len(ds) == 0 {
		return "", nil
	}
	d := ds[len(ds)-1]
	return strings.Join(d.Args, " "), d
}

// server returns the enclosing server level, or nil.
func (s *scope) server() *scope {
	for l := s; l != nil; l = l.parent {
		if l.kind == "server" {
			return l
		}
	}
	return nil
}

// location returns the innermost location this level belongs to (itself for a location).
func (s *scope) location() *scope {
	for l := s; l != nil; l = l.parent {
		if l.kind == "location" {
			return l
		}
	}
	return nil
}

// walk calls fn for s and every level inside it.
func (s *scope) walk(fn func(*scope)) {
	fn(s)
	for _, k := range s.kids {
		k.walk(fn)
	}
}

// inner returns the if and limit_except levels of a location (not its nested
// locations): their directives run as part of this location.
func (s *scope) inner() []*scope {
	out := []*scope{s}
	for _, k := range s.kids {
		if k.kind == "if" || k.kind == "limit_except" {
			out = append(out, k.inner()...)
		}
	}
	return out
}

// locations returns every location inside s, nested ones included, in file order.
func (s *scope) locations() []*scope {
	var out []*scope
	for _, k := range s.kids {
		if k.kind == "location" {
			out = append(out, k)
			out = append(out, k.locations()...)
		} else if k.kind == "if" || k.kind == "limit_except" {
			out = append(out, k.locations()...)
		}
	}
	return out
}

// match returns the location's modifier ("", "=", "^~", "~", "~*", "@") and path.
func (s *scope) match() (mod, path string) {
	if s.kind != "location" || s.dir == nil {
		return "", ""
	}
	a := s.dir.Args
	switch {
	case len(a) >= 2:
		return a[0], a[1]
	case len(a) == 1 && strings.HasPrefix(a[0], "@"):
		return "@", a[0]
	case len(a) == 1:
		// "=/x" and "~/x" may be written without a space.
		for _, m := range []string{"^~", "~*", "=", "~"} {
			if rest, ok := strings.CutPrefix(a[0], m); ok && rest != "" {
				return m, rest
			}
		}
		return "", a[0]
	}
	return "", ""
}

// name is how a finding names a location: `location = /x`.
func (s *scope) name() string {
	if s.dir == nil {
		return s.kind
	}
	return strings.TrimSpace(s.dir.Name + " " + strings.Join(s.dir.Args, " "))
}

// pos is the file:line of the level's block, or of its first directive.
func (s *scope) pos() (string, int) {
	if s.dir != nil {
		return s.dir.File, s.dir.Line
	}
	if len(s.body) > 0 {
		return s.body[0].File, s.body[0].Line
	}
	return "", 0
}

// buildTree returns the http levels of a configuration. A file without an
// http block (a sites-enabled file) is read as the inside of one.
func buildTree(c *Config) []*scope {
	var https []*scope
	hasHTTP := false
	for _, d := range c.Top {
		if d.Name == "http" && d.IsBlock() {
			hasHTTP = true
			https = append(https, newScope("http", d, nil, d.Block))
		}
	}
	if !hasHTTP {
		https = append(https, newScope("http", nil, nil, c.Top))
	}
	return https
}
