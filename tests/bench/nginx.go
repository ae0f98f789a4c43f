package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// The static file every configuration serves, directly or through the app upstream.
const indexHTML = "<!doctype html><title>bench</title><p>hello from the protected app</p>\n"

// shippedUpstream is the line in nginx/authd-http.conf that names authd's address;
// the benchmark points it at the backend under test and changes nothing else.
const shippedUpstream = "server 127.0.0.1:9091;"

// nginxSite is one nginx (`worker_processes auto`, as Debian's nginx.conf and
// supervisor/nginx.conf run it: one worker per CPU) in its own prefix, serving / from a static
// file and /app/ through a proxied upstream (a second server block of the same
// nginx serving that file). With a backend, both locations include the
// shipped authd snippets and nginx's `authd` upstream points at the backend.
type nginxSite struct {
	name    string
	port    int
	appPort int
	prefix  string
	proc    *proc
	workers []int // pids of the worker processes
}

// cpu is the CPU time all of the site's workers have used so far.
func (n *nginxSite) cpu() (time.Duration, error) {
	var total time.Duration
	for _, pid := range n.workers {
		c, err := procCPU(pid)
		if err != nil {
			return 0, err
		}
		total += c
	}
	return total, nil
}

func (n *nginxSite) url(path string) string {
	return "http://127.0.0.1:" + strconv.Itoa(n.port) + path
}

// startNginx writes the site's config and starts it. upstream is "" for no
// auth, else "127.0.0.1:PORT" or "unix:/path" for the `authd` upstream.
func (b *bench) startNginx(name, upstream string) (*nginxSite, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	appPort, err := freePort()
	if err != nil {
		return nil, err
	}
	n := &nginxSite{name: name, port: port, appPort: appPort, prefix: filepath.Join(b.dir, "nginx-"+name)}
	confDir := filepath.Join(n.prefix, "conf")
	for _, d := range []string{filepath.Join(confDir, "authd"), filepath.Join(n.prefix, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	// The shipped snippets, unchanged but for the upstream address.
	snippets, err := filepath.Glob(filepath.Join(b.root, "nginx", "*.conf"))
	if err != nil {
		return nil, err
	}
	for _, src := range snippets {
		data, err := os.ReadFile(src)
		if err != nil {
			return nil, err
		}
		if filepath.Base(src) == "authd-http.conf" && upstream != "" {
			if !strings.Contains(string(data), shippedUpstream) {
				return nil, fmt.Errorf("%s no longer has %q: update the benchmark", src, shippedUpstream)
			}
			data = []byte(strings.Replace(string(data), shippedUpstream, "server "+upstream+";", 1))
		}
		if err := os.WriteFile(filepath.Join(confDir, "authd", filepath.Base(src)), data, 0o644); err != nil {
			return nil, err
		}
	}
	conf := n.config(b.docroot, upstream != "", os.Geteuid() == 0)
	confPath := filepath.Join(confDir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	if out, err := b.command(b.nginxBin, "-t", "-q", "-p", n.prefix, "-c", confPath, "-e", filepath.Join(n.prefix, "logs", "error.log")).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("nginx -t for %s: %v\n%s\nconfig:\n%s", name, err, out, conf)
	}
	n.proc, err = b.procs.start("nginx-"+name, filepath.Join(n.prefix, "logs", "stderr.log"), b.cpuNginx,
		b.nginxBin, "-p", n.prefix, "-c", confPath, "-e", filepath.Join(n.prefix, "logs", "error.log"))
	if err != nil {
		return nil, err
	}
	c := &http.Client{Timeout: 2 * time.Second, CheckRedirect: noRedirect}
	if _, err := waitHTTP(n.proc, c, n.url("/_bench_health"), http.StatusNoContent, 10*time.Second); err != nil {
		return nil, err
	}
	if n.workers, err = childPIDs(n.proc.pid(), runtime.NumCPU()); err != nil {
		return nil, err
	}
	return n, nil
}

func (n *nginxSite) config(docroot string, protect, root bool) string {
	var c strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&c, format+"\n", a...) }
	w("# Written by tests/bench for one configuration; the authd parts are the shipped snippets.")
	// What a production nginx runs (Debian's default nginx.conf, supervisor/nginx.conf): one
	// worker per CPU. With one worker, a burst of login requests queued in front of every
	// verify subrequest on the same event loop; measured side by side, alone and during the
	// flood alike, so the comparison is unchanged in kind.
	w("worker_processes auto;")
	if root {
		// Workers as root only so they may open the temp docroot and authd's socket.
		w("user root;")
	}
	w("daemon off;")
	w("pid logs/nginx.pid;")
	w("events { worker_connections 4096; }")
	w("http {")
	w("    access_log off;")
	w("    default_type text/html;")
	w("    sendfile on;")
	w("    keepalive_requests 1000000;")
	w("    keepalive_timeout 120s;")
	if protect {
		w("    include authd/authd-http.conf;")
	}
	w("    upstream bench_app {")
	w("        server 127.0.0.1:%d;", n.appPort)
	w("        keepalive 32;")
	w("        keepalive_requests 1000000;")
	w("    }")
	w("    server {")
	w("        listen 127.0.0.1:%d;", n.appPort)
	w("        location / { root %s; }", docroot)
	w("    }")
	w("    server {")
	w("        listen 127.0.0.1:%d;", n.port)
	w("        server_name localhost;")
	w("        location = /_bench_health { return 204; }")
	if protect {
		w("        include authd/authd-server.conf;")
	}
	w("        location / {")
	w("            root %s;", docroot)
	if protect {
		w("            include authd/authd-protect.conf;")
	}
	w("        }")
	w("        location /app/ {")
	w("            proxy_pass http://bench_app/;")
	if protect {
		w("            include authd/authd-protect.conf;")
	} else {
		w("            include authd/authd-proxy-headers.conf;")
	}
	w("        }")
	w("    }")
	w("}")
	return c.String()
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
