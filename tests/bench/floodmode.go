package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// runFloodMode measures verify for an existing session alone, then again
// while -flood clients log in (right and wrong passwords) through the same
// nginx for most of the run.
func (b *bench) runFloodMode(ctx context.Context, v *verifySetup) error {
	var t *target
	for _, x := range v.targets {
		if x.name == "authd" {
			t = x
		}
	}
	p := v.authd.proc
	b.logf("flood mode: verify alone, then with %d concurrent logins", b.o.flood)
	if _, err := b.wrkOnce(ctx, t, b.o.warmup); err != nil {
		return err
	}
	_, hwmBefore, err := memStatus(p.pid())
	if err != nil {
		return err
	}
	before, err := b.wrkOnce(ctx, t, b.o.duration)
	if err != nil {
		return err
	}
	b.logf("verify alone: %.0f req/s, p99 %s", before.RPS, fmtDur(before.P99))

	// The flood starts half a second into the verify run and stops a second
	// before it ends, so the run measures verify under the flood throughout.
	floodFor := b.o.duration - 1500*time.Millisecond
	var floodOut bytes.Buffer
	var floodErr error
	var floodCPU time.Duration
	authdCPU0, _ := procCPU(p.pid())
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
		floodCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}()
	var rec *exec.Cmd
	perfData := filepath.Join(b.dir, "authd-flood.perf.data")
	if b.o.perf {
		if _, err := exec.LookPath("perf"); err == nil {
			rec = b.command("perf", "record", "-F", "499", "-g", "-o", perfData, "-p", fmt.Sprint(p.pid()),
				"--", "sleep", fmt.Sprint(int(b.o.duration/time.Second)))
			rec.Stdout, rec.Stderr = nil, nil
			if err := rec.Start(); err != nil {
				rec = nil
			}
		}
	}
	during, err := b.wrkOnce(ctx, t, b.o.duration)
	<-floodDone
	if rec != nil {
		if rec.Wait() != nil {
			rec = nil
		}
	}
	authdCPU1, _ := procCPU(p.pid())
	if err != nil {
		return err
	}
	if floodErr != nil {
		return floodErr
	}
	var rep floodReport
	if err := json.Unmarshal(floodOut.Bytes(), &rep); err != nil {
		return fmt.Errorf("flood report: %w: %s", err, floodOut.String())
	}
	_, hwm, err := memStatus(p.pid())
	if err != nil {
		return err
	}
	b.logf("verify during the flood: %.0f req/s, p99 %s; logins %v", during.RPS, fmtDur(during.P99), rep.Status)

	b.reportf("## Login flood")
	b.reportf("")
	wave := fmt.Sprintf("together once every %s (a client still waiting skips a wave)", b.o.every)
	if b.o.every == 0 {
		wave = "each again as soon as it has its answer"
	}
	b.reportf("%d clients log in through nginx for %s, %s: even ones with the right password, odd", b.o.flood, floodFor, wave)
	b.reportf("ones with a wrong one, each from its own X-Forwarded-For address, GET form + POST per attempt; meanwhile")
	b.reportf("wrk runs the `authd` verify load. The flood client runs unpinned, beside authd; on 2 cores everything shares.")
	hm := "authd's default (0: half the CPUs, at least one)"
	if b.o.hashMax > 0 {
		hm = fmt.Sprint(b.o.hashMax)
	}
	b.reportf("authd's hash.max_concurrent: %s.", hm)
	b.reportf("")
	b.reportf("| verify load | req/s | p50 | p99 | authd RSS peak (sampled) | others' load |")
	b.reportf("|---|---:|---:|---:|---:|---:|")
	b.reportf("| alone | %.0f | %s | %s | %s | %.2f |", before.RPS, fmtDur(before.P50), fmtDur(before.P99), mb(before.PeakRSS), before.Others)
	b.reportf("| during the flood | %.0f | %s | %s | %s | %.2f (flood client included) |", during.RPS, fmtDur(during.P50), fmtDur(during.P99), mb(during.PeakRSS), during.Others)
	b.reportf("")
	b.reportf("Login attempts: %d in %.1fs. authd VmHWM before the flood %s, after %s. CPU during the flood run: authd %.1fs,",
		rep.Attempts, rep.Seconds, mb(hwmBefore), mb(hwm), (authdCPU1 - authdCPU0).Seconds())
	b.reportf("the flood client %.1fs (of %.0fs on %d cores).", floodCPU.Seconds(), b.o.duration.Seconds(), runtime.NumCPU())
	b.reportf("")
	b.reportf("| POST status | all | right password | wrong password | p50 | p99 |")
	b.reportf("|---|---:|---:|---:|---:|---:|")
	keys := make([]string, 0, len(rep.Status))
	for k := range rep.Status {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		lat := rep.Latency[k]
		b.reportf("| %s | %d | %d | %d | %.0fms | %.0fms |", statusName(k), rep.Status[k], rep.Right[k], rep.Wrong[k], lat[0], lat[1])
	}
	b.reportf("")
	if len(rep.Errors) > 0 {
		b.reportf("Client errors (first few): %s", strings.Join(rep.Errors, "; "))
		b.reportf("")
	}
	if rec != nil {
		if cum, err := b.command("perf", "report", "-i", perfData, "--stdio", "--children", "--sort", "symbol",
			"--percent-limit", "3", "-g", "none").CombinedOutput(); err == nil {
			b.reportf("Where authd's CPU went during the flood run (perf, inclusive, ≥ 3%% of its samples):")
			b.reportf("")
			b.reportf("```")
			b.reportf("%s", perfLines(string(cum), 45))
			b.reportf("```")
			b.reportf("")
		}
	}
	r := float64(during.P99) / float64(before.P99)
	verdict := "met"
	if r > 2 {
		verdict = fmt.Sprintf("MISSED by %.0f%%", (r/2-1)*100)
	}
	b.reportf("Target (PERF.md): verify p99 during the flood ÷ alone = %.2f (target ≤ 2): %s. Verify req/s during ÷ alone = %.2f.",
		r, verdict, during.RPS/before.RPS)
	b.reportf("")
	return nil
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
