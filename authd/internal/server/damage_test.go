package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/authd/authd/authd/internal/policy"
	"github.com/authd/authd/authd/internal/session"
)

// damagedStore is an embedded store that reports recovered damage.
type damagedStore struct {
	*session.Embedded
	d session.Damage
}

func (s damagedStore) Damage() session.Damage { return s.d }

// TestStoreDamageIsVisible checks that damage the session store recovered
// from is logged at startup and shown by /readyz (still ready: the store
// works) and /metrics, and that an intact store shows none.
func TestStoreDamageIsVisible(t *testing.T) {
	damage := session.Damage{Recovered: 41, Records: 2, Bytes: 300, Files: []string{"sessions-3.log.damaged-20260102T030405Z"}}
	tests := []struct {
		name    string
		damage  session.Damage
		ready   string   // /readyz body
		metrics []string // lines /metrics must hold
		logged  bool
	}{
		{"intact", session.Damage{}, "ok\n", []string{
			"authd_store_damaged_records 0\n", "authd_store_damaged_files 0\n"}, false},
		{"recovered", damage, "ok\nwarning: session store recovered from damaged files (2 records lost, 41 recovered); " +
			"copies kept aside in the data directory: sessions-3.log.damaged-20260102T030405Z\n", []string{
			"authd_store_damaged_records 2\n", "authd_store_damaged_bytes 300\n",
			"authd_store_recovered_records 41\n", "authd_store_damaged_files 1\n"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil, nil)
			core, logs := observer.New(zap.ErrorLevel)
			rs, err := policy.New([]policy.Rule{{Path: "/"}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			srv, err := New(testOptions(), Deps{Users: h.users, Sessions: damagedStore{h.store, tt.damage},
				Now: h.clock.now, Logger: zap.New(core)}, rs)
			if err != nil {
				t.Fatal(err)
			}
			get := func(path string) *httptest.ResponseRecorder {
				w := httptest.NewRecorder()
				srv.Handler().ServeHTTP(w, httptest.NewRequest("GET", path, nil))
				return w
			}
			if w := get("/readyz"); w.Code != http.StatusOK || w.Body.String() != tt.ready {
				t.Errorf("/readyz: got %d %q, want 200 %q", w.Code, w.Body.String(), tt.ready)
			}
			body := get("/metrics").Body.String()
			for _, want := range tt.metrics {
				if !strings.Contains(body, want) {
					t.Errorf("/metrics lacks %q", want)
				}
			}
			got := logs.FilterMessage("session store recovered from damaged files").All()
			if (len(got) == 1) != tt.logged {
				t.Fatalf("damage log lines: got %d, want logged %v", len(got), tt.logged)
			}
			if tt.logged {
				f := got[0].ContextMap()
				if f["damaged_records"] != int64(2) || f["recovered_records"] != int64(41) || f["damaged_bytes"] != int64(300) {
					t.Errorf("damage log fields: got %v", f)
				}
			}
		})
	}
}
