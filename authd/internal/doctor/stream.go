package doctor

import (
	"fmt"
	"strconv"
	"strings"
)

// websocket checks Streamlit's WebSocket location: it must upgrade (Upgrade,
// Connection, HTTP/1.1) and outlive a quiet session.
func (r *run) websocket(l *scope) {
	psh, _ := l.effective("proxy_set_header")
	upgrade, connection := false, false
	for _, d := range psh {
		switch strings.ToLower(d.Arg(0)) {
		case "upgrade":
			upgrade = upgrade || strings.Contains(d.Arg(1), "$http_upgrade")
		case "connection":
			connection = connection || strings.Contains(strings.ToLower(d.Arg(1)), "upgrade")
		}
	}
	if !upgrade || !connection {
		r.addScope(l, "websocket-headers",
			fmt.Sprintf("%s is Streamlit's WebSocket but does not pass Upgrade and Connection: the page stays on \"Connecting\"", l.name()),
			"include authd/streamlit-stream.conf in it (proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $authd_connection_upgrade; after the protect include)")
	}
	if v, d := l.value("proxy_http_version"); v != "1.1" {
		msg := fmt.Sprintf("%s proxies with HTTP/1.0 (nginx's default), which cannot upgrade to a WebSocket", l.name())
		if d != nil {
			msg = fmt.Sprintf("%s proxies with HTTP/%s, which cannot upgrade to a WebSocket", l.name(), v)
		}
		r.addScope(l, "websocket-headers", msg, "proxy_http_version 1.1; (authd-proxy-headers.conf sets it)")
	}
	v, d := l.value("proxy_read_timeout")
	t, ok := parseTime(v)
	if d == nil {
		t, ok = 60, true
	}
	if ok && t < minStreamTimeout {
		msg := fmt.Sprintf("%s keeps nginx's default proxy_read_timeout of 60s", l.name())
		if d != nil {
			msg = fmt.Sprintf("proxy_read_timeout %s applies to %s", v, l.name())
		}
		r.addScope(l, "websocket-timeout",
			msg+": nginx closes a Streamlit session's WebSocket after that long without a message, and the app reconnects and reruns",
			"proxy_read_timeout 1d; proxy_send_timeout 1d; in the WebSocket location (authd/streamlit-stream.conf sets both)")
	}
}

// minStreamTimeout is the shortest proxy_read_timeout (seconds) doctor
// accepts on Streamlit's WebSocket; the shipped profile uses a day.
const minStreamTimeout = 3600

// parseTime reads an nginx time ("60", "30s", "5m", "1h 30m", "1d").
func parseTime(v string) (int, bool) {
	units := map[byte]int{'s': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 7 * 86400}
	total := 0
	for _, f := range strings.Fields(v) {
		for f != "" {
			i := 0
			for i < len(f) && f[i] >= '0' && f[i] <= '9' {
				i++
			}
			if i == 0 {
				return 0, false
			}
			n, err := strconv.Atoi(f[:i])
			if err != nil {
				return 0, false
			}
			mult := 1
			if i < len(f) {
				if strings.HasPrefix(f[i:], "ms") {
					mult, i = 0, i+2
				} else {
					u, ok := units[f[i]]
					if !ok {
						return 0, false
					}
					mult, i = u, i+1
				}
			}
			total += n * mult
			f = f[i:]
		}
	}
	return total, v != ""
}
