package doctor

import (
	"strings"
	"testing"
)

// FuzzCheck: any text read as nginx -T output either fails to parse or is
// checked without a panic, and every finding names a place.
func FuzzCheck(f *testing.F) {
	f.Add(dump)
	f.Add("# configuration file /n.conf:\nhttp { server { location / { auth_request /v; proxy_pass http://a/x; } location = /v { proxy_pass http://unix:/s:/verify; } } }\n")
	f.Add("# configuration file /n.conf:\nhttp { server { location ~ \"\\.php$\" { if ($a) { return 200 \"${x}\"; } try_files $uri @x =404; } } }\n")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := ParseDump(strings.NewReader(text))
		if err != nil {
			return
		}
		for _, o := range []Options{defaults, {Listen: "unix:/s", Prefix: "/"}, {}} {
			for _, fd := range Check(c, o) {
				if fd.File == "" || fd.Check == "" || fd.Fix == "" {
					t.Fatalf("finding without a place or fix: %+v", fd)
				}
			}
		}
	})
}
