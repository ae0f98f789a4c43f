package policy

import (
	"net/url"
	"path"
	"strings"
	"testing"
)

// FuzzCanonicalReadsOneWay checks that a path Canonical accepts has one reading: the raw path has
// no dot segment to resolve (Canonical refuses them), decoding it once and cleaning it the ordinary
// way gives the same path, and no segment is a dot segment in disguise (".." or "." with ";"
// parameters, which servlet containers resolve).
func FuzzCanonicalReadsOneWay(f *testing.F) {
	for _, s := range []string{"/", "/a/b", "/public/..;/admin", "/a/.;x/b", "/a;b/c", "/caf%C3%A9", "/a%3bb", "/x/..%3B/y",
		"//a//b/", "/a/./b/../c", "/a?x=/../b", "/%7e/x", "/..;", "/a/...;/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		p, ok := Canonical(uri)
		if !ok {
			return
		}
		for _, seg := range strings.Split(p, "/") {
			name, _, _ := strings.Cut(seg, ";")
			if name == "." || name == ".." {
				t.Fatalf("Canonical(%q) = %q: segment %q reads as a dot segment", uri, p, seg)
			}
		}
		raw, _, _ := strings.Cut(uri, "?")
		dec, err := url.PathUnescape(raw)
		if err != nil {
			t.Fatalf("Canonical(%q) = %q, but the path does not decode: %v", uri, p, err)
		}
		for _, seg := range strings.Split(dec, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("Canonical(%q) = %q: accepted a path with dot segment %q instead of refusing it", uri, p, seg)
			}
		}
		if want := path.Clean(dec); path.Clean(p) != want {
			t.Fatalf("Canonical(%q) = %q, an ordinary reading gives %q", uri, p, want)
		}
	})
}

// FuzzDecideAnonymous checks, for any request path and method, that an anonymous request is
// allowed only under the public rule's prefix and that /admin never opens without the group.
func FuzzDecideAnonymous(f *testing.F) {
	rs, err := New([]Rule{
		{Path: "/public", Access: Public, Methods: []string{"GET", "HEAD"}},
		{Path: "/admin", Groups: []string{"admins"}},
		{Path: "/"},
	}, nil)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"/public/x", "/public/../admin", "/admin?x=/public", "/publicx", "/PUBLIC", "/public;/../admin"} {
		f.Add(s, "GET", "")
		f.Add(s, "OPTIONS", "bob")
	}
	f.Fuzz(func(t *testing.T, uri, method, user string) {
		p, ok := Canonical(uri)
		if !ok || !ValidMethod(method) {
			return
		}
		req := Request{Path: p, Method: method, User: user}
		d, _ := rs.Decide(&req)
		if d == Allow && user == "" && !(HasPrefix(p, "/public") && (method == "GET" || method == "HEAD")) {
			t.Fatalf("anonymous %s %q (canonical %q) allowed", method, uri, p)
		}
		if d == Allow && HasPrefix(p, "/admin") {
			t.Fatalf("%s %q as %q without the admins group allowed", method, uri, user)
		}
	})
}
