package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// target is one configuration measured with wrk.
type target struct {
	name    string
	url     string
	headers []string
	script  string // Lua for wrk, optional
	backend *proc  // whose RSS is sampled; nil for none
	base    string // the no-auth configuration this one is divided by
	floor   string // the floor configuration this one is divided by
	want    int    // status the probe expects (200, or 302 for the 401 path)
	note    string
	res     summary
}

// verifySetup is everything the verify and flood modes run against.
type verifySetup struct {
	none, floorSite, authdSite, unixSite *nginxSite
	floor                                *proc
	authd, unix                          *authdInst
	floorCookie, authdCookie, unixCookie string
	targets                              []*target
}

func (b *bench) setupVerify() (*verifySetup, error) {
	v := &verifySetup{}
	var err error
	b.logf("starting nginx, the floor and two authd (TCP and unix socket)")
	if v.none, err = b.startNginx("static", ""); err != nil {
		return nil, err
	}

	// The floor: the same snippets, the `authd` upstream pointing at it.
	fport, err := freePort()
	if err != nil {
		return nil, err
	}
	faddr := fmt.Sprintf("127.0.0.1:%d", fport)
	v.floorCookie = randomToken()
	v.floor, err = b.procs.start("floor", filepath.Join(b.dir, "floor.log"), b.cpuBackend,
		b.self, "floor", "-listen", faddr, "-cookie", cookieName+"="+v.floorCookie)
	if err != nil {
		return nil, err
	}
	if _, err := waitHTTP(v.floor, &http.Client{Timeout: time.Second}, "http://"+faddr+"/verify", http.StatusUnauthorized, 10*time.Second); err != nil {
		return nil, err
	}
	if v.floorSite, err = b.startNginx("floor", faddr); err != nil {
		return nil, err
	}

	if v.authd, v.authdSite, v.authdCookie, err = b.authdWithLogin("tcp", false); err != nil {
		return nil, err
	}
	if v.unix, v.unixSite, v.unixCookie, err = b.authdWithLogin("unix", true); err != nil {
		return nil, err
	}

	accept := "Accept: text/html,application/xhtml+xml"
	ck := func(c string) []string { return []string{accept, "Cookie: " + cookieName + "=" + c} }
	for _, path := range []string{"/index.html", "/app/index.html"} {
		sfx, base, floor := "", "static", "floor"
		if path != "/index.html" {
			sfx, base, floor = "-proxy", "proxy", "floor-proxy"
		}
		v.targets = append(v.targets,
			&target{name: base, url: v.none.url(path), headers: ck(v.floorCookie), base: base, floor: floor, want: 200},
			&target{name: "floor" + sfx, url: v.floorSite.url(path), headers: ck(v.floorCookie), backend: v.floor, base: base, floor: floor, want: 200},
			&target{name: "authd" + sfx, url: v.authdSite.url(path), headers: ck(v.authdCookie), backend: v.authd.proc, base: base, floor: floor, want: 200},
			&target{name: "authd-unix" + sfx, url: v.unixSite.url(path), headers: ck(v.unixCookie), backend: v.unix.proc, base: base, floor: floor, want: 200},
		)
		if path == "/index.html" {
			v.targets = append(v.targets,
				&target{name: "authd-401", url: v.authdSite.url(path), headers: []string{accept}, backend: v.authd.proc,
					base: base, floor: floor, want: 302, note: "no cookie: authd 401, nginx 302 to the login form"})
		}
	}
	for _, t := range v.targets {
		if err := probe(t); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// authdWithLogin starts an authd behind its own nginx and logs in through it.
func (b *bench) authdWithLogin(name string, unix bool) (*authdInst, *nginxSite, string, error) {
	a, err := b.prepareAuthd(name, unix)
	if err != nil {
		return nil, nil, "", err
	}
	site, err := b.startNginx("authd-"+name, a.upAddr)
	if err != nil {
		return nil, nil, "", err
	}
	if err := b.writeAuthdConfig(a, site.url("")); err != nil {
		return nil, nil, "", err
	}
	if err := b.startAuthd(a); err != nil {
		return nil, nil, "", err
	}
	code, cookie, err := newLoginClient(site.url(""), 2).login(benchUser, b.password, "")
	if err != nil || code != http.StatusSeeOther || cookie == "" {
		return nil, nil, "", fmt.Errorf("log in through nginx to authd-%s: status %d, cookie %t, %v\n%s", name, code, cookie != "", err, a.proc.tail())
	}
	return a, site, cookie, nil
}

// probe sends one request as wrk will and checks the answer, so a broken
// configuration fails loudly instead of benchmarking an error page.
func probe(t *target) error {
	req, _ := http.NewRequest(http.MethodGet, t.url, nil)
	for _, h := range t.headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	c := &http.Client{Timeout: 5 * time.Second, CheckRedirect: noRedirect}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("probe %s: %w", t.name, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != t.want {
		return fmt.Errorf("probe %s: status %d, want %d\n%s", t.name, resp.StatusCode, t.want, body)
	}
	if t.want == 200 && string(body) != indexHTML {
		return fmt.Errorf("probe %s: unexpected body %q", t.name, body)
	}
	if t.want == 302 && !strings.HasPrefix(resp.Header.Get("Location"), "/authd/login") {
		return fmt.Errorf("probe %s: redirect to %q, want the login form", t.name, resp.Header.Get("Location"))
	}
	return nil
}

// measure warms every target up once, then runs them round-robin, so drift
// on the shared machine spreads over all of them instead of favouring one.
func (b *bench) measure(ctx context.Context, targets []*target) error {
	runs := make(map[*target][]wrkResult)
	for _, t := range targets {
		if _, err := b.wrkOnce(ctx, t, b.o.warmup); err != nil {
			return fmt.Errorf("warm-up %s: %w", t.name, err)
		}
	}
	for round := 1; round <= b.o.runs; round++ {
		for _, t := range targets {
			r, err := b.wrkOnce(ctx, t, b.o.duration)
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			b.logf("round %d/%d %-20s %9.0f req/s  p50 %-8s p99 %-8s bad %d", round, b.o.runs, t.name, r.RPS, fmtDur(r.P50), fmtDur(r.P99), r.Bad)
			runs[t] = append(runs[t], r)
		}
	}
	for _, t := range targets {
		t.res = summarize(runs[t])
	}
	return nil
}

func (b *bench) wrkOnce(ctx context.Context, t *target, d time.Duration) (wrkResult, error) {
	if err := ctx.Err(); err != nil {
		return wrkResult{}, err
	}
	sctx, cancel := context.WithCancel(ctx)
	var rss <-chan int64
	if t.backend != nil {
		rss = sampleRSS(sctx, t.backend.pid())
	}
	r, err := runWrk(ctx, wrkOpts{URL: t.url, Headers: t.headers, Script: t.script, Duration: d,
		Threads: b.o.threads, Conns: b.o.conns, CPUs: b.cpuWrk})
	cancel()
	if rss != nil {
		r.PeakRSS = <-rss
	}
	if err == nil && t.backend != nil && t.backend.exited() {
		err = fmt.Errorf("%s exited during the run:\n%s", t.backend.name, t.backend.tail())
	}
	return r, err
}

func (b *bench) runVerify(ctx context.Context, v *verifySetup) error {
	idle := map[string]int64{}
	for _, p := range []*proc{v.floor, v.authd.proc, v.unix.proc} {
		rss, _, err := memStatus(p.pid())
		if err != nil {
			return err
		}
		idle[p.name] = rss
	}
	b.logf("verify mode: %d configurations, %s warm-up + %d × %s each", len(v.targets), b.o.warmup, b.o.runs, b.o.duration)
	if err := b.measure(ctx, v.targets); err != nil {
		return err
	}
	byName := map[string]*target{}
	for _, t := range v.targets {
		byName[t.name] = t
	}
	b.reportf("## Verify: configurations (PERF.md)")
	b.reportf("")
	b.reportf("Each configuration serves the same %d-byte static file through the same nginx. Rows ending in", len(indexHTML))
	b.reportf("`-proxy` fetch it through a proxied upstream (a second server block of the same nginx) and are divided")
	b.reportf("by `proxy` and `floor-proxy`. Backend RSS: largest VmRSS sampled every 50 ms during the runs.")
	b.reportf("")
	b.reportf("| configuration | req/s | spread | p50 | p99 | ÷ static | ÷ floor | backend RSS peak | non-2xx/3xx |")
	b.reportf("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, t := range v.targets {
		b.reportf("| %s | %.0f | %.1f%% | %s | %s | %.3f | %.3f | %s | %d |", t.name, t.res.RPS, t.res.Spread*100,
			fmtDur(t.res.P50), fmtDur(t.res.P99), ratio(t, byName[t.base]), ratio(t, byName[t.floor]), rssCell(t), t.res.Bad)
		if t.name == "authd-unix" {
			b.reportf("| authd-redis | — | | | | | | | |")
		}
	}
	b.reportf("")
	b.reportf("authd-redis: skipped, authd has no Redis store yet (the hook: a store switch in the authd config; add a")
	b.reportf("target in tests/bench/verify.go when it lands).")
	b.reportf("")
	b.reportf("| process | RSS idle (after login) | RSS peak (VmHWM, whole run) |")
	b.reportf("|---|---:|---:|")
	for _, p := range []*proc{v.floor, v.authd.proc, v.unix.proc} {
		_, hwm, err := memStatus(p.pid())
		if err != nil {
			return err
		}
		b.reportf("| %s | %s | %s |", p.name, mb(idle[p.name]), mb(hwm))
	}
	b.reportf("")
	for _, t := range v.targets {
		for _, e := range t.res.Errors {
			b.reportf("- %s: %s", t.name, e)
		}
	}
	b.reportTargets(byName)
	if b.o.perf {
		if err := b.profile(ctx, byName["authd"], v.authd.proc); err != nil {
			b.logf("profile skipped: %v", err)
			b.reportf("Profile skipped: %v", err)
			b.reportf("")
		}
	}
	return nil
}

func ratio(t, base *target) float64 {
	if base == nil || base.res.RPS == 0 {
		return 0
	}
	return t.res.RPS / base.res.RPS
}

func rssCell(t *target) string {
	if t.backend == nil {
		return "—"
	}
	return mb(t.res.PeakRSS)
}

// reportTargets states the PERF.md verify targets against this run.
func (b *bench) reportTargets(by map[string]*target) {
	check := func(name, what string, got, want float64) {
		verdict := "met"
		if got < want {
			verdict = fmt.Sprintf("MISSED by %.0f%%", (want-got)/want*100)
		}
		b.reportf("- %s: %s = %.3f (target ≥ %.2f): %s", name, what, got, want, verdict)
	}
	b.reportf("Targets (PERF.md), from this run:")
	b.reportf("")
	check("authd embedded", "authd ÷ floor", ratio(by["authd"], by["floor"]), 0.9)
	check("authd embedded, unix socket", "authd-unix ÷ floor", ratio(by["authd-unix"], by["floor"]), 0.9)
	check("401 path", "authd-401 ÷ floor", ratio(by["authd-401"], by["floor"]), 0.9)
	check("authd through a proxied upstream", "authd-proxy ÷ floor-proxy", ratio(by["authd-proxy"], by["floor-proxy"]), 0.9)
	fl, au := by["floor"].res.PeakRSS, max(by["authd"].res.PeakRSS, by["authd-401"].res.PeakRSS)
	verdict := "met"
	if fl > 0 && float64(au) > 2*float64(fl) {
		verdict = fmt.Sprintf("MISSED by %.0f%%", (float64(au)/(2*float64(fl))-1)*100)
	}
	b.reportf("- RSS under verify load: authd %s vs floor %s = %.2f× (target ≤ 2×): %s", mb(au), mb(fl), float64(au)/float64(max(fl, 1)), verdict)
	b.reportf("")
}

// profile records authd with perf during one more authd run and adds the
// hottest functions to the report.
func (b *bench) profile(ctx context.Context, t *target, p *proc) error {
	if _, err := exec.LookPath("perf"); err != nil {
		return fmt.Errorf("perf not installed")
	}
	data := filepath.Join(b.dir, "authd.perf.data")
	secs := fmt.Sprint(int(b.o.duration / time.Second))
	rec := b.command("perf", "record", "-F", "999", "-g", "-o", data, "-p", fmt.Sprint(p.pid()), "--", "sleep", secs)
	recOut := &strings.Builder{}
	rec.Stdout, rec.Stderr = recOut, recOut
	if err := rec.Start(); err != nil {
		return err
	}
	time.Sleep(200 * time.Millisecond)
	r, werr := b.wrkOnce(ctx, t, b.o.duration)
	if err := rec.Wait(); err != nil {
		return fmt.Errorf("perf record: %v: %s", err, recOut)
	}
	if werr != nil {
		return werr
	}
	flat, err := b.command("perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "symbol",
		"--percent-limit", "1", "-g", "none").CombinedOutput()
	if err != nil {
		return fmt.Errorf("perf report: %v: %s", err, flat)
	}
	cum, err := b.command("perf", "report", "-i", data, "--stdio", "--children", "--sort", "symbol",
		"--percent-limit", "4", "-g", "none").CombinedOutput()
	if err != nil {
		return fmt.Errorf("perf report: %v: %s", err, cum)
	}
	b.reportf("## Profile: authd during one more `authd` run (%.0f req/s), perf -F 999 -g", r.RPS)
	b.reportf("")
	b.reportf("Self time (functions ≥ 1%% of authd's samples):")
	b.reportf("")
	b.reportf("```")
	b.reportf("%s", perfLines(string(flat), 30))
	b.reportf("```")
	b.reportf("")
	b.reportf("Inclusive time (≥ 4%%):")
	b.reportf("")
	b.reportf("```")
	b.reportf("%s", perfLines(string(cum), 40))
	b.reportf("```")
	b.reportf("")
	return nil
}

// perfLines keeps perf report's table rows, without the comment header.
func perfLines(out string, n int) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			continue
		}
		keep = append(keep, strings.TrimRight(l, " "))
		if len(keep) == n {
			break
		}
	}
	return strings.Join(keep, "\n")
}
