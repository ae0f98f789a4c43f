package audit

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authd/authd/authd/internal/redistest"
)

var srv redistest.Server

func TestMain(m *testing.M) { os.Exit(redistest.Run(m, &srv)) }

// logs returns one fresh Log of each kind.
func logs(t *testing.T) map[string]Log {
	t.Helper()
	f, err := OpenFile(filepath.Join(t.TempDir(), FileName), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	m := map[string]Log{"memory": NewMemory(50), "file": f}
	if srv.Addr() != "" {
		c, prefix := srv.Open(t)
		m["redis"] = NewRedis(c, prefix, 0)
	}
	return m
}

func TestLogMemoryFileRedis(t *testing.T) {
	ctx := context.Background()
	for name, l := range logs(t) {
		t.Run(name, func(t *testing.T) {
			t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			for i := range 30 {
				e := Event{Time: t0.Add(time.Duration(i) * time.Second), Event: "user_locked", Actor: "admin",
					Target: fmt.Sprintf("u%d", i%3), IP: "192.0.2.1", Source: "web"}
				if i%5 == 0 {
					e.Event, e.Actor, e.Source, e.IP = "user_added", "unix:root", "cli", ""
				}
				if err := l.Record(ctx, e); err != nil {
					t.Fatal(err)
				}
			}
			all, err := l.Recent(ctx, Filter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(all) != 30 {
				t.Fatalf("got %d events, want 30", len(all))
			}
			if !all[0].Time.Equal(t0.Add(29*time.Second)) || all[0].Target != "u2" || all[0].IP != "192.0.2.1" {
				t.Errorf("newest: got %+v", all[0])
			}
			got, _ := l.Recent(ctx, Filter{Limit: 3})
			if len(got) != 3 || got[2].Time != all[2].Time {
				t.Errorf("limit 3: got %v", got)
			}
			got, _ = l.Recent(ctx, Filter{Event: "user_added"})
			if len(got) != 6 || got[0].Actor != "unix:root" || got[0].Source != "cli" {
				t.Errorf("event filter: got %d events %v", len(got), got)
			}
			got, _ = l.Recent(ctx, Filter{User: "u1"})
			if len(got) != 10 {
				t.Errorf("user filter by target: got %d, want 10", len(got))
			}
			got, _ = l.Recent(ctx, Filter{User: "unix:root", Limit: 2})
			if len(got) != 2 {
				t.Errorf("user filter by actor: got %d, want 2", len(got))
			}
			got, _ = l.Recent(ctx, Filter{User: "nobody"})
			if len(got) != 0 {
				t.Errorf("unknown user: got %v", got)
			}
		})
	}
}

func TestMemoryBounded(t *testing.T) {
	m := NewMemory(4)
	for i := range 10 {
		m.Record(context.Background(), Event{Event: "e", Target: fmt.Sprint(i)})
	}
	got, _ := m.Recent(context.Background(), Filter{})
	if len(got) != 4 || got[0].Target != "9" || got[3].Target != "6" {
		t.Errorf("got %v, want 9..6", got)
	}
}

// TestFileTwoWriters is the daemon and a CLI run writing at once, with
// rotation happening under them: every event is a whole line in the
// current or the rotated file, and the log stays bounded.
func TestFileTwoWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	const max = 16 << 10
	a, err := OpenFile(path, max)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := OpenFile(path, max)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var wg sync.WaitGroup
	for w, l := range []*File{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 150 {
				if err := l.Record(context.Background(), Event{Event: "x", Actor: fmt.Sprintf("w%d", w), Target: fmt.Sprint(i), Detail: strings.Repeat("d", 60)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, p := range []string{path, path + ".1"} {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) > max {
			t.Errorf("%s: %d bytes, bound %d", p, len(data), max)
		}
		for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
			if !strings.HasPrefix(line, "{") || !strings.HasSuffix(line, "}") {
				t.Fatalf("%s: torn line %q", p, line)
			}
		}
	}
	got, _ := a.Recent(context.Background(), Filter{Limit: 1000})
	if len(got) < 100 {
		t.Errorf("recent after rotation: got %d events, want at least 100", len(got))
	}
	last := map[string]bool{}
	for _, e := range got[:2] {
		last[e.Actor+"/"+e.Target] = true
	}
	if !last["w0/149"] && !last["w1/149"] {
		t.Errorf("newest events: got %v, want a writer's last", got[:2])
	}
}

func TestFileSkipsTornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	l, err := OpenFile(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Record(context.Background(), Event{Event: "a"})
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"event":"tor`)
	f.Close()
	l.Record(context.Background(), Event{Event: "b"})
	got, _ := l.Recent(context.Background(), Filter{})
	if len(got) != 2 || got[0].Event != "b" || got[1].Event != "a" {
		t.Errorf("got %v, want b, a", got)
	}
}

func TestFileLongDetailCut(t *testing.T) {
	l, err := OpenFile(filepath.Join(t.TempDir(), FileName), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Record(context.Background(), Event{Event: "a", Detail: strings.Repeat("x", 100000)}); err != nil {
		t.Fatal(err)
	}
	got, _ := l.Recent(context.Background(), Filter{})
	if len(got) != 1 || len(got[0].Detail) >= maxLine {
		t.Errorf("got %d events, detail %d bytes", len(got), len(got[0].Detail))
	}
}
