package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// runFloodMode measures verify for an existing session alone, then again
// while -flood clients log in (right and wrong passwords) through the same
// nginx for most of the run; the two alternate, b.o.runs times each, so each
// pair is measured side by side on a machine whose other load drifts.
func (b *bench) runFloodMode(ctx context.Context, v *verifySetup) error {
	var t *target
	for _, x := range v.targets {
		if x.name == "authd" {
			t = x
		}
	}
	p := v.authd.proc
	b.logf("flood mode: verify alone, then with %d concurrent logins, %d times", b.o.flood, b.o.runs)
	if _, err := b.wrkOnce(ctx, t, b.o.warmup); err != nil {
		return err
	}
	_, hwmBefore, err := memStatus(p.pid())
	if err != nil {
		return err
	}
	floodFor := b.o.duration - 1500*time.Millisecond
	type round struct {
		alone, during           wrkResult
		rep                     floodReport
		authdCPU, floodCPU      time.Duration
		aloneAuthdCPU           time.Duration
		nginxCPU, aloneNginxCPU time.Duration
	}
	var rounds []round
	perfData := filepath.Join(b.dir, "authd-flood.perf.data")
	perfDone := false
	for i := range b.o.runs {
		var rd round
		a0, _ := procCPU(p.pid())
		n0, _ := v.authdSite.cpu()
		if rd.alone, err = b.wrkOnce(ctx, t, b.o.duration); err != nil {
			return err
		}
		a1, _ := procCPU(p.pid())
		n1, _ := v.authdSite.cpu()
		rd.aloneAuthdCPU, rd.aloneNginxCPU = a1-a0, n1-n0
		b.logf("round %d: verify alone: %.0f req/s, p99 %s", i+1, rd.alone.RPS, fmtDur(rd.alone.P99))

		// The flood starts half a second into the verify run and stops a
		// second before it ends, so the run measures verify under the flood
		// throughout.
		var floodOut bytes.Buffer
		var floodErr error
		authdCPU0, _ := procCPU(p.pid())
		nginxCPU0, _ := v.authdSite.cpu()
		floodDone := make(chan struct{})
		go func() {
			defer close(floodDone)
			select {
			case <-time.After(500 * time.Millisecond):
			case <-ctx.Done():
				return
			}
			cmd := exec.CommandContext(ctx, b.self, "flood", "-site", v.authdSite.url(""), "-n", fmt.Sprint(b.o.flood),
				"-d", floodFor.String(), "-every", b.o.every.String(), "-password", b.password)
			var stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &floodOut, &stderr
			if err := cmd.Run(); err != nil {
				floodErr = fmt.Errorf("flood: %v\n%s", err, stderr.String())
				return
			}
			rd.floodCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		}()
		var rec *exec.Cmd
		if b.o.perf && i == b.o.runs-1 {
			if _, err := exec.LookPath("perf"); err == nil {
				rec = b.command("perf", "record", "-F", "499", "-g", "-o", perfData, "-p", fmt.Sprint(p.pid()),
					"--", "sleep", fmt.Sprint(int(b.o.duration/time.Second)))
				rec.Stdout, rec.Stderr = nil, nil
				if err := rec.Start(); err != nil {
					rec = nil
				}
			}
		}
		rd.during, err = b.wrkOnce(ctx, t, b.o.duration)
		<-floodDone
		if rec != nil {
			perfDone = rec.Wait() == nil
		}
		authdCPU1, _ := procCPU(p.pid())
		rd.authdCPU = authdCPU1 - authdCPU0
		nginxCPU1, _ := v.authdSite.cpu()
		rd.nginxCPU = nginxCPU1 - nginxCPU0
		if err != nil {
			return err
		}
		if floodErr != nil {
			return floodErr
		}
		if err := json.Unmarshal(floodOut.Bytes(), &rd.rep); err != nil {
			return fmt.Errorf("flood report: %w: %s", err, floodOut.String())
		}
		b.logf("round %d: verify during the flood: %.0f req/s, p99 %s (%.2fx p99, %.2fx req/s); logins %v", i+1,
			rd.during.RPS, fmtDur(rd.during.P99), float64(rd.during.P99)/float64(rd.alone.P99), rd.during.RPS/rd.alone.RPS, rd.rep.Status)
		rounds = append(rounds, rd)
	}
	_, hwm, err := memStatus(p.pid())
	if err != nil {
		return err
	}

	b.reportf("## Login flood")
	b.reportf("")
	wave := fmt.Sprintf("together once every %s (a client still waiting skips a wave)", b.o.every)
	if b.o.every == 0 {
		wave = "each again as soon as it has its answer"
	}
	b.reportf("%d clients log in through nginx for %s, %s: even ones with the right password, odd", b.o.flood, floodFor, wave)
	b.reportf("ones with a wrong one, each from its own address (loopback source and X-Forwarded-For), GET form + POST per attempt; meanwhile")
	b.reportf("wrk runs the `authd` verify load. nginx and wrk are pinned as above (when -pin); authd and the flood client")
	b.reportf("float: on 2 cores everything shares, the flood client's CPU included.")
	hm := "authd's default (0: half the CPUs, at least one)"
	if b.o.hashMax > 0 {
		hm = fmt.Sprint(b.o.hashMax)
	}
	b.reportf("authd's hash.max_concurrent: %s. Verify alone and during the flood alternate, %d rounds of %s each.", hm, b.o.runs, b.o.duration)
	b.reportf("")
	b.reportf("| round | verify load | req/s | p50 | p99 | p99 ÷ alone | req/s ÷ alone | authd RSS peak (sampled) | others' load |")
	b.reportf("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
	var p99r, rpsr []float64
	for i, rd := range rounds {
		a, d := rd.alone, rd.during
		b.reportf("| %d | alone | %.0f | %s | %s | | | %s | %.2f |", i+1, a.RPS, fmtDur(a.P50), fmtDur(a.P99), mb(a.PeakRSS), a.Others)
		r, q := float64(d.P99)/float64(a.P99), d.RPS/a.RPS
		p99r, rpsr = append(p99r, r), append(rpsr, q)
		b.reportf("| %d | during the flood | %.0f | %s | %s | %.2f | %.2f | %s | %.2f (flood client included) |", i+1, d.RPS, fmtDur(d.P50), fmtDur(d.P99), r, q, mb(d.PeakRSS), d.Others)
	}
	b.reportf("")
	total := floodReport{Status: map[string]int{}, Right: map[string]int{}, Wrong: map[string]int{}, Latency: map[string][]float64{}}
	var authdCPU, floodCPU, aloneAuthdCPU, nginxCPU, aloneNginxCPU time.Duration
	for _, rd := range rounds {
		total.Attempts += rd.rep.Attempts
		total.Seconds += rd.rep.Seconds
		for k, n := range rd.rep.Status {
			total.Status[k] += n
		}
		for k, n := range rd.rep.Right {
			total.Right[k] += n
		}
		for k, n := range rd.rep.Wrong {
			total.Wrong[k] += n
		}
		total.Errors = append(total.Errors, rd.rep.Errors...)
		authdCPU += rd.authdCPU
		floodCPU += rd.floodCPU
		aloneAuthdCPU += rd.aloneAuthdCPU
		nginxCPU += rd.nginxCPU
		aloneNginxCPU += rd.aloneNginxCPU
	}
	n := time.Duration(len(rounds))
	b.reportf("Login attempts: %d in %.1fs (all rounds). authd VmHWM before the flood %s, after %s. CPU per flood run (mean):",
		total.Attempts, total.Seconds, mb(hwmBefore), mb(hwm))
	b.reportf("authd %.1fs (alone %.1fs), nginx's workers %.1fs (alone %.1fs), the flood client %.1fs (of %.0fs on %d cores;",
		(authdCPU / n).Seconds(), (aloneAuthdCPU / n).Seconds(), (nginxCPU / n).Seconds(), (aloneNginxCPU / n).Seconds(),
		(floodCPU / n).Seconds(), b.o.duration.Seconds(), runtime.NumCPU())
	b.reportf("authd's figure leaves out its hashing child, which runs at SCHED_IDLE).")
	if resp, err := v.authd.health.Get(v.authd.baseURL + "/metrics"); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, l := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(l, "authd_hash_escalated_total ") || strings.HasPrefix(l, "authd_password_checks_total ") {
				b.reportf("From authd's /metrics after the last round: `%s`.", l)
			}
		}
	}
	b.reportf("")
	b.reportf("| POST status | all | right password | wrong password | p50 (last round) | p99 (last round) |")
	b.reportf("|---|---:|---:|---:|---:|---:|")
	keys := make([]string, 0, len(total.Status))
	for k := range total.Status {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	last := rounds[len(rounds)-1].rep
	for _, k := range keys {
		lat := "— | —"
		if l, ok := last.Latency[k]; ok {
			lat = fmt.Sprintf("%.0fms | %.0fms", l[0], l[1])
		}
		b.reportf("| %s | %d | %d | %d | %s |", statusName(k), total.Status[k], total.Right[k], total.Wrong[k], lat)
	}
	b.reportf("")
	if len(total.Errors) > 0 {
		b.reportf("Client errors (first few): %s", strings.Join(total.Errors[:min(5, len(total.Errors))], "; "))
		b.reportf("")
	}
	if perfDone {
		if cum, err := b.command("perf", "report", "-i", perfData, "--stdio", "--children", "--sort", "symbol",
			"--percent-limit", "3", "-g", "none").CombinedOutput(); err == nil {
			b.reportf("Where authd's CPU went during the last flood run (perf, inclusive, ≥ 3%% of its samples):")
			b.reportf("")
			b.reportf("```")
			b.reportf("%s", perfLines(string(cum), 45))
			b.reportf("```")
			b.reportf("")
		}
	}
	r, q := median(p99r), median(rpsr)
	verdict := "met"
	if r > 2 {
		verdict = fmt.Sprintf("MISSED by %.0f%%", (r/2-1)*100)
	}
	verdictQ := "met"
	if q < 0.8 {
		verdictQ = fmt.Sprintf("MISSED by %.0f%%", (1-q/0.8)*100)
	}
	b.reportf("Targets (issue 15), medians of the per-round ratios: verify p99 during the flood ÷ alone = %.2f (target ≤ 2): %s;", r, verdict)
	b.reportf("verify req/s during ÷ alone = %.2f (target ≥ 0.8): %s. Right-password logins signed in: %d of %d.",
		q, verdictQ, total.Right["303"], sum(total.Right))
	b.reportf("")
	b.logf("flood: p99 during ÷ alone %.2f, req/s during ÷ alone %.2f (medians of %d rounds)", r, q, len(rounds))
	return nil
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func statusName(k string) string {
	switch k {
	case "303":
		return "303 signed in"
	case "401":
		return "401 wrong password (or throttled account)"
	case "429":
		return "429 throttled IP"
	case "503":
		return "503 hashing busy"
	case "error":
		return "client error (GET form or POST failed)"
	}
	return k
}
