package security

import (
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// authdGet fetches one of authd's operational endpoints from its own listener.
func (s *stack) authdGet(t testing.TB, path string) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(fmt.Sprintf("http://127.0.0.1:%d%s", s.authdPort, path))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestDamagedSessionLog covers "a checksum mismatch that is not the torn tail of the newest log
// never drops the intact records after it": authd starts on a data directory whose log has a
// damaged record in the middle, every session logged after the damage still lets its browser
// through nginx, only the damaged one is gone, the damaged file is kept aside, /readyz (still
// ready) and /metrics show the damage until the operator moves the copy away, and new sessions
// survive a crash.
func TestDamagedSessionLog(t *testing.T) {
	s := newStack(t, stackOptions{logLevel: "info"})
	var cookies []string
	for range 4 {
		cookies = append(cookies, session(s.login(t, "ada", adaPassword)))
	}
	// SIGKILL: no snapshot on the way down, the sessions are only in the log.
	p := s.proc("authd")
	p.signal(syscall.SIGKILL)
	p.wait(t, 15*time.Second)

	logs, err := filepath.Glob(filepath.Join(s.dataDir, "sessions-*.log"))
	if err != nil || len(logs) != 1 {
		t.Fatalf("session logs: got %v (%v), want one", logs, err)
	}
	b, err := os.ReadFile(logs[0])
	if err != nil {
		t.Fatal(err)
	}
	// Damage the first session's create record: frames are length, CRC, payload; a create's
	// payload starts with op 1.
	damaged := false
	for off := 8; off+8 <= len(b); {
		n := int(binary.LittleEndian.Uint32(b[off:]))
		if off+8+n > len(b) {
			t.Fatalf("log frame at %d runs past the end", off)
		}
		if b[off+8] == 1 {
			b[off+8+n-3] ^= 0x55
			damaged = true
			break
		}
		off += 8 + n
	}
	if !damaged {
		t.Fatal("no create record in the session log")
	}
	must(t, os.WriteFile(logs[0], b, 0o600))

	must(t, s.startAuthd("authd"))
	if r := s.do(t, req{target: "/app/x", cookie: cookies[0]}); r.App != nil {
		t.Errorf("the damaged session: got %s, want no app", r)
	}
	for i, c := range cookies[1:] {
		if r := s.do(t, req{target: "/app/x", cookie: c}); r.App == nil {
			t.Errorf("session %d, logged after the damage: got %s, want the app", i+1, r)
		}
	}
	aside, _ := filepath.Glob(filepath.Join(s.dataDir, "*.damaged-*"))
	if len(aside) != 1 {
		t.Fatalf("copies kept aside: got %v, want one", aside)
	}
	kept, err := os.ReadFile(aside[0])
	if err != nil || string(kept) != string(b) {
		t.Fatalf("the copy kept aside is not the damaged log (%d bytes, %v)", len(kept), err)
	}
	code, body := s.authdGet(t, "/readyz")
	if code != 200 || !strings.Contains(body, "warning: session store recovered from damaged files (1 records lost, 3 recovered)") ||
		!strings.Contains(body, filepath.Base(aside[0])) {
		t.Errorf("/readyz: got %d %q, want 200 with a warning naming %s", code, body, filepath.Base(aside[0]))
	}
	_, metrics := s.authdGet(t, "/metrics")
	for _, want := range []string{"authd_store_damaged_records 1\n", "authd_store_recovered_records 3\n", "authd_store_damaged_files 1\n"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if log := tail(filepath.Join(s.logs, "authd.log"), 200); !strings.Contains(log, `"msg":"session store recovered from damaged files"`) {
		t.Errorf("authd's log lacks the damage error")
	}

	// A new session survives a crash, and the recovered ones a second restart.
	fresh := session(s.login(t, "ada", adaPassword))
	p = s.proc("authd")
	p.signal(syscall.SIGKILL)
	p.wait(t, 15*time.Second)
	must(t, s.startAuthd("authd"))
	for i, c := range append(cookies[1:], fresh) {
		if r := s.do(t, req{target: "/app/x", cookie: c}); r.App == nil {
			t.Errorf("after a second restart, session %d: got %s, want the app", i+1, r)
		}
	}
	// Moving the copy away is the operator's acknowledgement.
	must(t, os.Rename(aside[0], filepath.Join(s.dir, filepath.Base(aside[0]))))
	if code, body := s.authdGet(t, "/readyz"); code != 200 || body != "ok\n" {
		t.Errorf("/readyz after the copy was moved away: got %d %q, want 200 \"ok\\n\"", code, body)
	}
}
