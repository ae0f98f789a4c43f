// Package doctor reads an nginx configuration (the output of `nginx -T`, or a
// file and its includes) together with authd's listen address and prefix, and
// reports the ways the site could let a request past authd or hand the app an
// identity authd did not give, each with the file and line to change.
package doctor

import (
	"fmt"
	"sort"
)

// Options is what doctor needs to know about authd.
type Options struct {
	// Listen is authd's listen address ("127.0.0.1:9091" or "unix:/run/authd/authd.sock").
	Listen string
	// Prefix is the public path of authd's pages ("/authd/").
	Prefix string
}

// Finding is one problem, at the line an operator should change.
type Finding struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Check   string `json:"check"`
	Message string `json:"message"`
	Fix     string `json:"fix"`
}

// String is the one-line form: "file:line: what is wrong; fix: what to do".
func (f Finding) String() string {
	return fmt.Sprintf("%s:%d: %s; fix: %s", f.File, f.Line, f.Message, f.Fix)
}

// Check runs every check over c and returns the findings sorted by file, line
// and check; none means clean.
func Check(c *Config, o Options) []Finding {
	r := &run{opt: o, seen: map[string]bool{}}
	for _, h := range buildTree(c) {
		r.http(h)
	}
	if !r.protects {
		// Most likely doctor read another nginx than the one in front of the
		// app, or the snippets were never included: say so rather than "clean".
		r.add(c.Main, 1, "no-auth-request",
			"no server in this configuration uses auth_request: authd protects nothing here",
			"include authd/authd-server.conf in the site's server and authd/authd-protect.conf in its locations (or point doctor at the nginx in front of the app: -nginx-conf, -nginx-file)")
	}
	sort.Slice(r.out, func(i, j int) bool {
		a, b := r.out[i], r.out[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Check != b.Check {
			return a.Check < b.Check
		}
		return a.Message < b.Message
	})
	return r.out
}

type run struct {
	opt       Options
	upstreams map[string][]string
	protects  bool // some server uses auth_request
	out       []Finding
	// seen drops repeats: a snippet included in many locations reports a
	// problem in its own lines once.
	seen map[string]bool
}

func (r *run) add(file string, line int, check, msg, fix string) {
	key := fmt.Sprintf("%s\x00%d\x00%s\x00%s", file, line, check, msg)
	if r.seen[key] {
		return
	}
	r.seen[key] = true
	r.out = append(r.out, Finding{File: file, Line: line, Check: check, Message: msg, Fix: fix})
}

func (r *run) addAt(d *Directive, check, msg, fix string) { r.add(d.File, d.Line, check, msg, fix) }

func (r *run) addScope(s *scope, check, msg, fix string) {
	f, l := s.pos()
	r.add(f, l, check, msg, fix)
}
