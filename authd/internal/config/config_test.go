package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

const minimal = `public_url = "https://app.example.com"` + "\n"

// valid returns the defaults plus the one key they lack.
func valid() Config {
	c := Default()
	c.PublicURL = "https://app.example.com"
	return c
}

// problems unwraps err into *Errors, failing the test if it is anything else.
func problems(tb testing.TB, err error) Errors {
	tb.Helper()
	var e *Errors
	if !errors.As(err, &e) {
		tb.Fatalf("got error %v (%T), want *Errors", err, err)
	}
	return *e
}

func keys(e Errors) []string {
	ks := make([]string, len(e))
	for i, p := range e {
		ks[i] = p.Key
	}
	return ks
}

func TestDuration(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"30m", 30 * time.Minute, false},
		{"1h30m", 90 * time.Minute, false},
		{"90s", 90 * time.Second, false},
		{"250ms", 250 * time.Millisecond, false},
		{"-5m", -5 * time.Minute, false}, // parses; Validate rejects it
		{"30", 0, true},
		{"30x", 0, true},
		{"", 0, true},
		{"m30", 0, true},
	} {
		t.Run(tt.in, func(t *testing.T) {
			var d Duration
			err := d.UnmarshalText([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("got error %v, want error %v", err, tt.wantErr)
			}
			if d.Duration != tt.want {
				t.Errorf("got %v, want %v", d.Duration, tt.want)
			}
		})
	}
}

func TestDurationMarshalRoundTrip(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{24 * time.Hour, "24h"},
		{90 * time.Minute, "1h30m"},
		{30 * time.Minute, "30m"},
		{90 * time.Second, "1m30s"},
		{2 * time.Second, "2s"},
		{0, "0s"},
	} {
		t.Run(tt.want, func(t *testing.T) {
			text, err := Duration{tt.d}.MarshalText()
			if err != nil || string(text) != tt.want {
				t.Fatalf("got %q, %v, want %q", text, err, tt.want)
			}
			var back Duration
			if err := back.UnmarshalText(text); err != nil || back.Duration != tt.d {
				t.Errorf("round trip: got %v, %v, want %v", back.Duration, err, tt.d)
			}
		})
	}
}

func TestParseMinimalIsDefault(t *testing.T) {
	got, err := Parse(strings.NewReader(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if want := valid(); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestParseValues(t *testing.T) {
	got, err := Parse(strings.NewReader(minimal + `
listen = "unix:/run/authd/authd.sock"
trusted_proxies = ["10.0.0.5"]
[session]
idle_timeout = "1h30m"
[hash]
memory_kib = 65536
`))
	if err != nil {
		t.Fatal(err)
	}
	want := valid()
	want.Listen = "unix:/run/authd/authd.sock"
	want.TrustedProxies = []string{"10.0.0.5"}
	want.Session.IdleTimeout = Duration{90 * time.Minute}
	want.Hash.MemoryKiB = 65536
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestParseRules(t *testing.T) {
	for _, tt := range []struct {
		name string
		toml string
		want []Rule
	}{
		{"absent keeps default", "", []Rule{{Path: "/", Allow: "authenticated"}}},
		{
			// Decoded in place over the default rule, it would get Allow from it.
			"single rule inherits nothing",
			"[[rules]]\npath = \"/app\"\nusers = [\"bob\"]",
			[]Rule{{Path: "/app", Users: []string{"bob"}}},
		},
		{
			"file rules replace default",
			`
[[rules]]
path = "/admin"
groups = ["admin"]
[[rules]]
path = "/"
allow = "public"
`,
			[]Rule{{Path: "/admin", Groups: []string{"admin"}}, {Path: "/", Allow: "public"}},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(strings.NewReader(minimal + tt.toml))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Rules, tt.want) {
				t.Errorf("got %+v, want %+v", c.Rules, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		toml string
		want []string // exactly these problems' keys, in order
		msg  string   // in the first problem's message
	}{
		{"unknown top-level key", minimal + `listn = "x"`, []string{"listn"}, "unknown key"},
		{"unknown nested key", minimal + "[session]\nidel_timeout = \"5m\"", []string{"session.idel_timeout"}, "unknown key"},
		{"unknown table reported once", minimal + "[sesion]\nidle_timeout = \"5m\"\nlifetime = \"1h\"", []string{"sesion"}, "unknown key"},
		{"unknown key in rule", minimal + "[[rules]]\npath = \"/\"\npaht = \"/x\"", []string{"rules.paht"}, "unknown key"},
		{"unknown keys and bad values together", minimal + "listn = \"x\"\nprefix = \"authd\"", []string{"listn", "prefix"}, "unknown key"},
		{"bad duration", minimal + "[session]\nidle_timeout = \"30x\"", []string{"session.idle_timeout"}, `invalid duration "30x"`},
		{"duration without unit", minimal + "[throttle]\nwindow = 15", []string{"throttle.window"}, "invalid duration"},
		{"number out of range", minimal + "[hash]\nthreads = 300", []string{"hash.threads"}, "300"},
		{"syntax error after a key", minimal + "listen = \n", []string{"listen"}, "(line 2)"},
		{"empty rules", minimal + "rules = []", []string{"rules"}, "denies every request"},
		{"missing public_url", "public_url = \"\"", []string{"public_url"}, "required"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.toml))
			e := problems(t, err)
			if got := keys(e); !slices.Equal(got, tt.want) {
				t.Fatalf("got keys %q, want %q (error: %v)", got, tt.want, err)
			}
			if !strings.Contains(e[0].Msg, tt.msg) {
				t.Errorf("got %q, want it to contain %q", e[0].Msg, tt.msg)
			}
		})
	}
}

func TestParseOtherErrors(t *testing.T) {
	for _, tt := range []struct{ name, toml, want string }{
		{"syntax error without key", "[bad\n", "parse config: "},
		{"wrong type", minimal + "listen = 9091\n", `(last key "listen"): incompatible types`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.toml))
			var e *Errors
			if err == nil || errors.As(err, &e) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want a plain error containing %q", err, tt.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	bad := filepath.Join(dir, "bad.toml")
	writeFile(t, good, minimal, 0o600)
	writeFile(t, bad, "listn = 1\n", 0o600)
	if c, err := Load(good); err != nil || c.PublicURL != "https://app.example.com" {
		t.Errorf("got %q, %v, want the parsed file", c.PublicURL, err)
	}
	for _, path := range []string{bad, filepath.Join(dir, "missing.toml")} {
		if _, err := Load(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("got %v, want an error naming %s", err, path)
		}
	}
	var e *Errors
	if _, err := Load(bad); !errors.As(err, &e) {
		t.Errorf("got %T, want *Errors wrapped", err)
	}
}

func TestAccessors(t *testing.T) {
	c := valid()
	if got, want := c.CookieName(), "__Host-authd_session"; got != want {
		t.Errorf("CookieName: got %q, want %q", got, want)
	}
	c.Cookie.Insecure = true
	if got, want := c.CookieName(), "authd_session"; got != want {
		t.Errorf("CookieName insecure: got %q, want %q", got, want)
	}

	c.TrustedProxies = []string{"127.0.0.0/8", "10.1.2.3", "::1", "192.168.1.7/24"}
	want := []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("10.1.2.3/32"),
		netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("192.168.1.0/24"),
	}
	if got := c.TrustedNets(); !slices.Equal(got, want) {
		t.Errorf("TrustedNets: got %v, want %v", got, want)
	}

	for _, tt := range []struct{ listen, network, address string }{
		{"127.0.0.1:9091", "tcp", "127.0.0.1:9091"},
		{"[::1]:9091", "tcp", "[::1]:9091"},
		{"unix:/run/authd.sock", "unix", "/run/authd.sock"},
	} {
		c.Listen = tt.listen
		if n, a := c.ListenNetwork(); n != tt.network || a != tt.address {
			t.Errorf("ListenNetwork(%q): got %q %q, want %q %q", tt.listen, n, a, tt.network, tt.address)
		}
	}

	for _, tt := range []struct {
		mode string
		want os.FileMode
	}{{"0660", 0o660}, {"600", 0o600}, {"0777", 0o777}, {"1777", 0}, {"rw", 0}} {
		c.SocketMode = tt.mode
		if got := c.SocketFileMode(); got != tt.want {
			t.Errorf("SocketFileMode(%q): got %v, want %v", tt.mode, got, tt.want)
		}
	}
}

func writeFile(tb testing.TB, path, content string, mode os.FileMode) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		tb.Fatal(err)
	}
	// WriteFile's mode is filtered by the umask; the tests need it exact.
	if err := os.Chmod(path, mode); err != nil {
		tb.Fatal(err)
	}
}

func TestAccountSections(t *testing.T) {
	base := "public_url = \"https://app.example.com\"\n"
	tests := []struct {
		name, toml string
		problems   []string
	}{
		{"defaults", "", nil},
		{"smtp", "[smtp]\nhost = \"mail.example.com\"\nfrom = \"Example <authd@example.com>\"\nstarttls = \"implicit\"\nport = 465\n", nil},
		{"smtp plain", "[smtp]\nhost = \"127.0.0.1\"\nfrom = \"authd@example.com\"\nstarttls = false\n", nil},
		{"smtp bad", "[smtp]\nhost = \"mail:25\"\nport = 0\ntimeout = \"0s\"\nusername = \"u\"\n", []string{"smtp.port", "smtp.timeout", "smtp.host", "smtp.from", "smtp.password_file"}},
		{"starttls word", "[smtp]\nstarttls = \"yes\"\n", []string{"smtp.starttls"}},
		{"open", "[smtp]\nhost = \"127.0.0.1\"\nfrom = \"a@example.com\"\n[registration]\nmode = \"open\"\nallowed_email_domains = [\"example.com\"]\ndefault_groups = [\"staff\"]\n", nil},
		{"open without smtp or domains", "[registration]\nmode = \"open\"\n", []string{"registration.allowed_email_domains", "registration.mode"}},
		{"bad registration", "[registration]\nmode = \"yes\"\nallowed_email_domains = [\"*.example.com\", \"Example.com\", \"localhost\"]\ndefault_groups = [\"\"]\n", []string{
			"registration.mode", "registration.allowed_email_domains[0]", "registration.allowed_email_domains[1]",
			"registration.allowed_email_domains[2]", "registration.default_groups[0]"}},
		{"unknown", "[account]\ntokens = true\nother = 1\n", []string{"account.other"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(base + tt.toml))
			var keys []string
			if e, ok := err.(*Errors); ok {
				for _, p := range *e {
					keys = append(keys, p.Key)
				}
			} else if err != nil {
				keys = append(keys, err.Error())
			}
			slices.Sort(keys)
			want := slices.Clone(tt.problems)
			slices.Sort(want)
			if !slices.Equal(keys, want) {
				t.Errorf("got problems %q (%v), want %q", keys, err, want)
			}
		})
	}
}
