// Package snippets renders the nginx snippets (nginx/*.conf in the source
// tree) for one authd configuration: the upstream address or unix socket,
// the public prefix, and the name that keeps a second instance's upstream,
// variables, locations and include directory apart from the first.
package snippets

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"net"
	"path"
	"regexp"
	"sort"
	"strings"
	"text/template"
)

//go:embed templates/*.conf
var templateFS embed.FS

// DefaultName is the name the shipped snippets use.
const DefaultName = "authd"

// Params are what the snippets depend on. Make them with For.
type Params struct {
	// Name names the upstream, the $NAME_* variables, the /_NAME/verify
	// and @NAME_401 locations, and the directory under nginx's prefix the
	// snippets include each other from (include NAME/…).
	Name string
	// Listen is authd's listen setting as configured.
	Listen string
	// Upstream is the upstream server: "127.0.0.1:9091" or "unix:/run/authd/authd.sock".
	Upstream string
	// Socket is true when authd listens on a unix socket.
	Socket bool
	// Port is the port the load-balanced example gives each instance.
	Port string
	// Prefix is authd's public prefix, "/authd/".
	Prefix string
}

var (
	nameRE   = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)
	prefixRE = regexp.MustCompile(`^/([A-Za-z0-9._~-]+/)*$`)
)

// For returns the parameters for authd's listen and prefix settings and an
// instance name ("" means DefaultName). Anything nginx could read another way
// than authd is refused.
func For(listen, prefix, name string) (Params, error) {
	if name == "" {
		name = DefaultName
	}
	p := Params{Name: name, Listen: listen, Prefix: prefix, Port: "9091"}
	if !nameRE.MatchString(name) {
		return p, fmt.Errorf("name must be a lower-case letter then up to 31 of a-z, 0-9 and _ (an nginx variable name) (got %q)", name)
	}
	if !prefixRE.MatchString(prefix) || path.Clean(prefix)+"/" != prefix && prefix != "/" {
		return p, fmt.Errorf("prefix must start and end with \"/\" and be a clean path of [A-Za-z0-9._~/-] (got %q)", prefix)
	}
	if prefix == "/" {
		return p, fmt.Errorf("prefix \"/\" would hand the whole site to authd (got %q)", prefix)
	}
	// listen is written into comments too ("# Expects: authd listening on
	// …"): a line break there would end the comment and start a directive.
	if strings.ContainsFunc(listen, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return p, fmt.Errorf("listen: must not contain spaces, line breaks or control characters (got %q)", listen)
	}
	if sock, ok := strings.CutPrefix(listen, "unix:"); ok {
		if !path.IsAbs(sock) || path.Clean(sock) != sock || strings.ContainsAny(sock, " \t;{}\"'$#\\") {
			return p, fmt.Errorf("listen: unix socket path must be absolute, clean, and free of spaces and nginx syntax (got %q)", listen)
		}
		p.Socket, p.Upstream = true, listen
		return p, nil
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return p, fmt.Errorf("listen: must be host:port or unix:/absolute/path (got %q)", listen)
	}
	// authd listening on every address is reached, like the default, over loopback.
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	if strings.ContainsAny(host+port, " \t;{}\"'$#\\/") {
		return p, fmt.Errorf("listen: host and port must be free of spaces and nginx syntax (got %q)", listen)
	}
	p.Upstream, p.Port = net.JoinHostPort(host, port), port
	return p, nil
}

// Names returns the snippet file names, sorted.
func Names() []string {
	ents, _ := fs.ReadDir(templateFS, "templates")
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// Render returns every snippet for p, by file name.
func Render(p Params) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, n := range Names() {
		src, err := templateFS.ReadFile("templates/" + n)
		if err != nil {
			return nil, fmt.Errorf("read template %s: %w", n, err)
		}
		t, err := template.New(n).Option("missingkey=error").Parse(string(src))
		if err != nil {
			return nil, fmt.Errorf("parse template %s: %w", n, err)
		}
		var b bytes.Buffer
		if err := t.Execute(&b, p); err != nil {
			return nil, fmt.Errorf("render %s: %w", n, err)
		}
		out[n] = b.Bytes()
	}
	return out, nil
}
