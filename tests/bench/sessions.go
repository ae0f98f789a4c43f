package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The fill program imports authd/internal/session, which Go lets only code
// below authd/ import. Rather than write into authd/, the benchmark builds
// tests/bench/fill/main.go with an overlay that shows it to the compiler at
// this path (which does not exist on disk).
const fillPkg = "authd/internal/benchfill"

// buildFill builds the session filler from the measured source tree.
func (b *bench) buildFill() (string, error) {
	src, err := filepath.Abs(filepath.Join(b.repo, "tests", "bench", "fill", "main.go"))
	if err != nil {
		return "", err
	}
	overlay, err := json.Marshal(map[string]map[string]string{
		"Replace": {filepath.Join(b.root, fillPkg, "main.go"): src},
	})
	if err != nil {
		return "", err
	}
	ovPath := filepath.Join(b.dir, "fill-overlay.json")
	if err := os.WriteFile(ovPath, overlay, 0o644); err != nil {
		return "", err
	}
	bin := filepath.Join(b.dir, "fill")
	cmd := b.command("go", "build", "-tags", "authdbenchfill", "-overlay", ovPath, "-o", bin, "./"+fillPkg)
	cmd.Dir = b.root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the session filler: %v\n%s", err, out)
	}
	return bin, nil
}

// sizedStore is one authd whose store was filled with n sessions.
type sizedStore struct {
	n        int
	a        *authdInst
	site     *nginxSite
	fillTook string
	idleRSS  int64
	one      *target // every request with the same session
	rotating *target // requests cycle through many sessions
}

// runSessions fills one store per size before its authd starts, runs them
// all at once, and measures verify with one session and with many.
func (b *bench) runSessions(ctx context.Context) error {
	fill, err := b.buildFill()
	if err != nil {
		return err
	}
	var stores []*sizedStore
	var targets []*target
	for _, n := range b.o.sessions {
		s := &sizedStore{n: n}
		name := fmt.Sprintf("sessions-%d", n)
		if s.a, err = b.prepareAuthd(name, false); err != nil {
			return err
		}
		if s.site, err = b.startNginx(name, s.a.upAddr); err != nil {
			return err
		}
		if err := b.writeAuthdConfig(s.a, s.site.url("")); err != nil {
			return err
		}
		keep := min(n, b.o.keep)
		cookiesPath := filepath.Join(s.a.dir, "cookies.txt")
		b.logf("filling a store with %d sessions", n)
		start := time.Now()
		cmd := b.command(fill, "-dir", filepath.Join(s.a.dir, "data"), "-users", filepath.Join(s.a.dir, "users.toml"),
			"-user", benchUser, "-n", fmt.Sprint(n), "-keep", fmt.Sprint(keep), "-cookies", cookiesPath)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("fill %d sessions: %v\n%s", n, err, out)
		}
		s.fillTook = fmtDur(time.Since(start).Round(time.Millisecond))
		if err := b.startAuthd(s.a); err != nil {
			return err
		}
		if s.idleRSS, _, err = memStatus(s.a.proc.pid()); err != nil {
			return err
		}
		b.logf("authd with %d sessions ready in %s, RSS %s", n, s.a.ready.Round(time.Millisecond), mb(s.idleRSS))
		data, err := os.ReadFile(cookiesPath)
		if err != nil {
			return err
		}
		cookies := strings.Fields(string(data))
		script := filepath.Join(s.a.dir, "rotate.lua")
		if err := os.WriteFile(script, []byte(rotateLua(cookies)), 0o644); err != nil {
			return err
		}
		accept := b.baseHeaders()
		s.one = &target{name: name + "-one", url: s.site.url("/index.html"), site: s.site, backend: s.a.proc, want: 200,
			headers: append(slices.Clip(accept), "Cookie: "+cookieName+"="+cookies[0])}
		s.rotating = &target{name: name + "-rotating", url: s.site.url("/index.html"), site: s.site, backend: s.a.proc, want: 200,
			headers: accept, script: script}
		if err := probe(s.one); err != nil {
			return err
		}
		stores = append(stores, s)
		targets = append(targets, s.one, s.rotating)
	}
	b.logf("sessions mode: %d configurations, %s warm-up + %d × %s each", len(targets), b.o.warmup, b.o.runs, b.o.duration)
	if err := b.measure(ctx, targets); err != nil {
		return err
	}
	b.reportf("## Many sessions")
	b.reportf("")
	b.reportf("Each store is filled before its authd starts (tests/bench/fill: session.OpenEmbedded, Create from 512")
	b.reportf("goroutines sharing fsyncs, Close). `one`: every request carries the same session; `rotating`: a wrk Lua")
	b.reportf("script cycles through %d (or all, if fewer) of the stored sessions. All sizes run interleaved.", b.o.keep)
	b.reportf("")
	b.reportf("| sessions | fill | authd ready | RSS idle | load | req/s | spread | p50 | p99 | authd CPU/req | RSS peak under load | VmHWM | others' load |")
	b.reportf("|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, s := range stores {
		_, hwm, err := memStatus(s.a.proc.pid())
		if err != nil {
			return err
		}
		for _, t := range []*target{s.one, s.rotating} {
			kind := strings.TrimPrefix(t.name, fmt.Sprintf("sessions-%d-", s.n))
			b.reportf("| %d | %s | %s | %s | %s | %.0f | %.1f%% | %s | %s | %.1fµs | %s | %s | %.2f |", s.n, s.fillTook,
				s.a.ready.Round(time.Millisecond), mb(s.idleRSS), kind, t.res.RPS, t.res.Spread*100,
				fmtDur(t.res.P50), fmtDur(t.res.P99), t.res.BackendCPU, mb(t.res.PeakRSS), mb(hwm), t.res.Others)
		}
	}
	b.reportf("")
	if len(stores) >= 2 {
		lo, hi := stores[0], stores[len(stores)-1]
		b.reportf("Targets (PERF.md), from this run:")
		b.reportf("")
		for _, k := range []struct {
			name   string
			lo, hi *target
		}{{"one", lo.one, hi.one}, {"rotating", lo.rotating, hi.rotating}} {
			r, c := ratio(k.hi, k.lo), cpuRatio(k.hi, k.lo)
			b.reportf("- verify flat in sessions (%s): %d ÷ %d sessions = %.3f in req/s, %.3f by CPU per request (authd + nginx); p99 %s vs %s (target ≥ 0.90): %s",
				k.name, hi.n, lo.n, r, c, fmtDur(k.hi.res.P99), fmtDur(k.lo.res.P99), flatVerdict(r, c))
		}
		_, hwm, _ := memStatus(hi.a.proc.pid())
		verdict := "met"
		if hwm >= 400<<20 {
			verdict = fmt.Sprintf("MISSED by %.0f%%", (float64(hwm)/float64(400<<20)-1)*100)
		}
		b.reportf("- %d sessions in the embedded store: peak RSS %s (target < 400 MB): %s", hi.n, mb(hwm), verdict)
		b.reportf("")
	}
	for _, s := range stores {
		s.a.proc.stop()
		s.site.proc.stop()
	}
	return nil
}

func flatVerdict(r, c float64) string {
	switch {
	case r >= 0.9 && c >= 0.9:
		return "met"
	case r >= 0.9 || c >= 0.9:
		return "met by one measure only (noise)"
	}
	return fmt.Sprintf("MISSED by %.0f%%", (0.9-max(r, c))/0.9*100)
}

// rotateLua is a wrk script that sends each request with the next session
// cookie from a list, each thread starting at its own place.
func rotateLua(cookies []string) string {
	var c strings.Builder
	c.WriteString("local cookies = {\n")
	for _, k := range cookies {
		fmt.Fprintf(&c, "%q,\n", k)
	}
	c.WriteString("}\n")
	c.WriteString(`local n = #cookies
local i = 0
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
function init(args)
  i = (id * 7919) % n
end
function request()
  i = i % n + 1
  wrk.headers["Cookie"] = "` + cookieName + `=" .. cookies[i]
  return wrk.format()
end
`)
	return c.String()
}
