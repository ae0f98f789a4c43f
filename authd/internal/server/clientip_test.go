package server

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

// FuzzClientIP checks, for any X-Forwarded-For and X-Real-IP a trusted proxy
// sends, that the client address is either unknown or a plain, unmapped,
// zone-less address the headers themselves name — never the proxy's own
// address unless a header names it — and that a header value that is not a
// list of plain IPs never yields an address from right of the bad hop.
func FuzzClientIP(f *testing.F) {
	h := newHarness(f, nil, nil)
	for _, s := range [][2]string{
		{"203.0.113.7", ""}, {"garbage", ""}, {"203.0.113.7:80", ""}, {"[::1]:80", "[::1]"}, {"fe80::1%eth0", ""},
		{"203.0.113.7,", ""}, {"", ""}, {"::ffff:10.0.0.1", ""}, {"1.2.3.4, 127.0.0.2", "127.0.0.1"}, {"x, 127.0.0.2", ""},
		{"", "203.0.113.7"}, {"", "1.2.3.4:80"}, {"203.0.113.7", "garbage"}, {" 1.1.1.1 ,\t2.2.2.2 ", ""},
	} {
		f.Add(s[0], s[1], true, true)
		f.Add(s[0], s[1], false, false)
	}
	f.Fuzz(func(t *testing.T, xff, xri string, sendXFF, sendXRI bool) {
		r, _ := http.NewRequest("GET", "/verify", nil)
		r.RemoteAddr = "127.0.0.1:40000"
		if sendXFF {
			r.Header["X-Forwarded-For"] = []string{xff}
		}
		if sendXRI {
			r.Header["X-Real-Ip"] = []string{xri}
		}
		got := h.srv.cur.Load().clientIP(r)
		if !got.IsValid() {
			return
		}
		if got.Zone() != "" || got.Is4In6() {
			t.Fatalf("xff %q, x-real-ip %q: client %v is zoned or mapped", xff, xri, got)
		}
		named := func(v string) bool {
			a, err := netip.ParseAddr(strings.Trim(v, " \t"))
			return err == nil && a.Unmap() == got
		}
		if sendXRI && !named(xri) && !sendXFF {
			t.Fatalf("x-real-ip %q: client %v is not the address it names", xri, got)
		}
		if sendXFF {
			hops := strings.Split(xff, ",")
			i := len(hops) - 1
			for ; i >= 0; i-- {
				if named(hops[i]) {
					break
				}
				a, err := netip.ParseAddr(strings.Trim(hops[i], " \t"))
				if err != nil || a.Zone() != "" || !h.srv.cur.Load().trusted(a.Unmap()) {
					t.Fatalf("xff %q: client %v, but hop %q right of it is not a trusted proxy's plain IP", xff, got, hops[i])
				}
			}
			if i < 0 {
				t.Fatalf("xff %q: client %v is named by no hop", xff, got)
			}
		}
	})
}
