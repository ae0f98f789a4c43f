package main

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// wrkResult is one wrk run.
type wrkResult struct {
	RPS      float64
	P50, P99 time.Duration
	Requests int64
	Bad      int64  // non-2xx/3xx responses
	Errors   string // socket errors line, if any
	PeakRSS  int64  // the sampled backend's largest VmRSS during the run
	// CPU time per request of the auth backend and of nginx's workers, µs.
	BackendCPU, NginxCPU float64
	WrkCPU               time.Duration
	// Others is the CPU, in cores, that everything but the benchmark's own
	// processes (backend, nginx workers, wrk) used during the run, steal
	// included: the noise this run competed with.
	Others float64
}

// wrkOpts describes one load: what to ask and how hard.
type wrkOpts struct {
	URL      string
	Headers  []string // "Name: value"
	Script   string   // optional Lua script
	Duration time.Duration
	Threads  int
	Conns    int
	CPUs     string // taskset list for wrk, "" for none
}

func runWrk(ctx context.Context, o wrkOpts) (wrkResult, error) {
	args := []string{"wrk", "-t" + strconv.Itoa(o.Threads), "-c" + strconv.Itoa(o.Conns),
		"-d" + strconv.Itoa(int(o.Duration.Round(time.Second)/time.Second)) + "s", "--latency", "--timeout", "5s"}
	for _, h := range o.Headers {
		args = append(args, "-H", h)
	}
	if o.Script != "" {
		args = append(args, "-s", o.Script)
	}
	args = append(args, o.URL)
	if o.CPUs != "" {
		args = append([]string{"taskset", "-c", o.CPUs}, args...)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	r, err := parseWrk(string(out))
	r.WrkCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return r, err
}

// parseWrk reads wrk's --latency report.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	var err error
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "Requests/sec:") && len(f) == 2:
			r.RPS, err = strconv.ParseFloat(f[1], 64)
		case strings.HasPrefix(line, "50%") && len(f) == 2:
			r.P50, err = parseWrkDuration(f[1])
		case strings.HasPrefix(line, "99%") && len(f) == 2:
			r.P99, err = parseWrkDuration(f[1])
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:") && len(f) == 5:
			r.Bad, err = strconv.ParseInt(f[4], 10, 64)
		case strings.HasPrefix(line, "Socket errors:"):
			r.Errors = line
		case strings.Contains(line, "requests in") && len(f) > 0:
			r.Requests, err = strconv.ParseInt(f[0], 10, 64)
		}
		if err != nil {
			return r, fmt.Errorf("parse wrk line %q: %w\n%s", line, err, out)
		}
	}
	if r.RPS == 0 || r.P99 == 0 {
		return r, fmt.Errorf("wrk output without a result:\n%s", out)
	}
	return r, nil
}

// parseWrkDuration reads wrk's "1.23ms", "456.00us", "1.02s", "2.00m".
func parseWrkDuration(s string) (time.Duration, error) {
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"m", time.Minute}, {"s", time.Second}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, err
			}
			return time.Duration(f * float64(u.unit)), nil
		}
	}
	return 0, fmt.Errorf("unknown duration %q", s)
}

// summary is the median of several runs and the spread of their throughput.
type summary struct {
	Runs     []wrkResult
	RPS      float64
	Spread   float64 // (max-min)/median of req/s
	P50, P99 time.Duration
	PeakRSS  int64 // largest over the runs
	Bad      int64 // summed over the runs
	// Medians of the runs' CPU µs per request.
	BackendCPU, NginxCPU float64
	// Others is the largest of the runs' Others.
	Others float64
	Errors []string
}

func summarize(runs []wrkResult) summary {
	s := summary{Runs: runs}
	if len(runs) == 0 {
		return s
	}
	var rps []float64
	var p50, p99 []time.Duration
	var bcpu, ncpu []float64
	for _, r := range runs {
		rps = append(rps, r.RPS)
		bcpu = append(bcpu, r.BackendCPU)
		ncpu = append(ncpu, r.NginxCPU)
		p50 = append(p50, r.P50)
		p99 = append(p99, r.P99)
		s.PeakRSS = max(s.PeakRSS, r.PeakRSS)
		s.Others = max(s.Others, r.Others)
		s.Bad += r.Bad
		if r.Errors != "" {
			s.Errors = append(s.Errors, r.Errors)
		}
	}
	s.RPS, s.P50, s.P99 = median(rps), median(p50), median(p99)
	s.BackendCPU, s.NginxCPU = median(bcpu), median(ncpu)
	if s.RPS > 0 {
		s.Spread = (slices.Max(rps) - slices.Min(rps)) / s.RPS
	}
	return s
}

func median[T float64 | time.Duration](v []T) T {
	v = slices.Clone(v)
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%dµs", d.Microseconds())
	}
}
