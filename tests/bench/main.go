// Command bench measures authd behind nginx the way /work/shared/PERF.md
// describes: nginx (`worker_processes auto`) with the shipped snippets in nginx/, wrk on
// loopback, every configuration compared with a plain static file and with a
// do-nothing Go auth handler (the floor) in the same run.
//
//	bash tests/bench/run.sh            # installs nginx and wrk if missing, then this
//	go run ./tests/bench -h            # modes and knobs
//
// Modes: verify (the configuration table), sessions (1k vs 1M sessions in the
// store), flood (500 concurrent logins during the verify load). The result
// goes to stdout and, with -out, to a Markdown file.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

func main() {
	var err error
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "floor":
			err = runFloor(os.Args[2:])
		case "flood":
			err = runFlood(os.Args[2:])
		default:
			err = runBench(os.Args[1:], os.Stdout, os.Stderr)
		}
	} else {
		err = runBench(nil, os.Stdout, os.Stderr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type options struct {
	modes     map[string]bool
	runs      int
	duration  time.Duration
	warmup    time.Duration
	threads   int
	conns     int
	sessions  []int
	keep      int // cookies rotated through in the many-sessions mode
	flood     int
	every     time.Duration
	hashMax   int
	retries   int
	browser   bool
	maxOthers float64
	pin       bool
	perf      bool
	src       string
	out       string
	keepDir   bool
}

// bench is one benchmark run: its temp directory, binaries and processes.
type bench struct {
	o        options
	root     string // source tree measured
	repo     string // repository root (for -out and git metadata)
	dir      string // temp directory for everything the run writes
	docroot  string
	self     string // a build of this program, for the floor and flood subcommands
	authdBin string
	nginxBin string
	password string
	procs    procs
	log      io.Writer

	cpuNginx, cpuWrk, cpuBackend string

	report bytes.Buffer // the Markdown result
	args   []string     // the command line, for the report
}

func runBench(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	modes := fs.String("modes", "verify,sessions,flood", "comma-separated: verify, sessions, flood, heavy (verify while one bound-maximal stored hash runs), redis (authd and authd-redis only)")
	runs := fs.Int("runs", 3, "measured wrk runs per configuration (median and spread)")
	d := fs.Duration("d", 10*time.Second, "length of each wrk run")
	warm := fs.Duration("warmup", 2*time.Second, "length of the warm-up run per configuration")
	threads := fs.Int("t", 2, "wrk threads")
	conns := fs.Int("c", 64, "wrk connections")
	sessions := fs.String("sessions", "1000,1000000", "store sizes for the sessions mode")
	keep := fs.Int("rotate", 10000, "sessions mode: distinct session cookies the rotating load cycles through")
	flood := fs.Int("flood", 500, "concurrent login clients in the flood mode")
	browser := fs.Bool("browser", false, "send a desktop browser's request headers (about 1 KB) with every request, as nginx then forwards them all to the auth backend")
	retries := fs.Int("retries", 0, "measure a run again, up to this many times, while other processes took more than -max-others cores during it")
	maxOthers := fs.Float64("max-others", 0.3, "see -retries")
	hashMax := fs.Int("hash-max-concurrent", 0, "authd's hash.max_concurrent for every authd; 0 keeps authd's default")
	every := fs.Duration("flood-every", time.Second, "flood mode: the clients log in together once per this; 0: each retries at once")
	pin := fs.Bool("pin", true, "pin nginx to CPU 0 and wrk to CPU 1 (as in PERF.md); backends float")
	perf := fs.Bool("perf", true, "record a perf profile of authd during one extra verify run (needs perf)")
	src := fs.String("src", "worktree", "what to build and measure: worktree, a git revision (e.g. HEAD, exported with git archive), or the directory of another copy of the module")
	out := fs.String("out", "", "also write the result as Markdown to this file (e.g. tests/bench/RESULTS.md)")
	keepDir := fs.Bool("keep", false, "keep the temp directory (configs, logs, profiles)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o := options{modes: map[string]bool{}, runs: *runs, duration: *d, warmup: *warm, threads: *threads,
		conns: *conns, keep: *keep, flood: *flood, every: *every, hashMax: *hashMax, retries: *retries, browser: *browser, maxOthers: *maxOthers, pin: *pin, perf: *perf, src: *src, out: *out, keepDir: *keepDir}
	for _, m := range strings.Split(*modes, ",") {
		switch m = strings.TrimSpace(m); m {
		case "verify", "sessions", "flood", "heavy", "redis":
			o.modes[m] = true
		case "":
		default:
			return fmt.Errorf("unknown mode %q", m)
		}
	}
	for _, s := range strings.Split(*sessions, ",") {
		var n int
		if _, err := fmt.Sscan(strings.TrimSpace(s), &n); err != nil || n < 1 {
			return fmt.Errorf("bad -sessions entry %q", s)
		}
		o.sessions = append(o.sessions, n)
	}
	if o.runs < 1 || o.duration < time.Second {
		return errors.New("need -runs >= 1 and -d >= 1s")
	}

	b := &bench{o: o, log: stderr, password: "bench-" + randomToken()[:20], args: args}
	if o.pin && runtime.NumCPU() >= 2 {
		b.cpuNginx, b.cpuWrk = "0", "1"
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	defer b.procs.stopAll()
	if err := b.setup(); err != nil {
		return err
	}
	if !o.keepDir {
		defer os.RemoveAll(b.dir)
	} else {
		b.logf("keeping %s", b.dir)
	}
	if err := b.header(); err != nil {
		return err
	}
	var v *verifySetup
	var err error
	if o.modes["verify"] || o.modes["flood"] || o.modes["heavy"] || o.modes["redis"] {
		if v, err = b.setupVerify(); err != nil {
			return err
		}
	}
	if o.modes["verify"] {
		if err := b.runVerify(ctx, v); err != nil {
			return err
		}
	}
	if o.modes["redis"] {
		if err := b.runRedisMode(ctx, v); err != nil {
			return err
		}
	}
	if o.modes["flood"] {
		if err := b.runFloodMode(ctx, v); err != nil {
			return err
		}
	}
	if o.modes["heavy"] {
		if err := b.runHeavyMode(ctx, v); err != nil {
			return err
		}
	}
	b.procs.stopAll()
	if o.modes["sessions"] {
		if err := b.runSessions(ctx); err != nil {
			return err
		}
	}
	if _, err := stdout.Write(b.report.Bytes()); err != nil {
		return err
	}
	if o.out != "" {
		if err := os.WriteFile(o.out, b.report.Bytes(), 0o644); err != nil {
			return err
		}
		b.logf("wrote %s", o.out)
	}
	return nil
}

func (b *bench) logf(format string, a ...any) {
	fmt.Fprintf(b.log, "%s  %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, a...))
}

// reportf appends a line to the Markdown result.
func (b *bench) reportf(format string, a ...any) { fmt.Fprintf(&b.report, format+"\n", a...) }

// command is exec.Command with the process inheriting nothing surprising.
func (b *bench) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "GOFLAGS=")
	return cmd
}

// setup finds the tools, makes the temp directory and builds authd.
func (b *bench) setup() error {
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	for b.repo = wd; ; b.repo = filepath.Dir(b.repo) {
		if _, err := os.Stat(filepath.Join(b.repo, "go.mod")); err == nil {
			break
		}
		if b.repo == filepath.Dir(b.repo) {
			return errors.New("run from inside the authd module (no go.mod found)")
		}
	}
	for _, tool := range []string{"nginx", "wrk", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: run bash tests/bench/run.sh, which installs it", tool)
		}
	}
	if b.o.pin {
		if _, err := exec.LookPath("taskset"); err != nil {
			b.cpuNginx, b.cpuWrk = "", ""
		}
	}
	b.nginxBin, _ = exec.LookPath("nginx")
	if b.dir, err = os.MkdirTemp("", "authd-bench-"); err != nil {
		return err
	}
	// nginx's workers and authd's socket live below; workers must traverse it.
	if err := os.Chmod(b.dir, 0o755); err != nil {
		return err
	}
	b.docroot = filepath.Join(b.dir, "www")
	if err := os.MkdirAll(b.docroot, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(b.docroot, "index.html"), []byte(indexHTML), 0o644); err != nil {
		return err
	}
	b.root = b.repo
	if fi, err := os.Stat(b.o.src); err == nil && fi.IsDir() {
		// Another copy of the module, e.g. a profiling or prototype variant.
		if b.root, err = filepath.Abs(b.o.src); err != nil {
			return err
		}
	} else if b.o.src != "worktree" {
		b.root = filepath.Join(b.dir, "src")
		if err := os.MkdirAll(b.root, 0o755); err != nil {
			return err
		}
		arch := b.command("sh", "-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "sh", b.repo, b.o.src, b.root)
		if out, err := arch.CombinedOutput(); err != nil {
			return fmt.Errorf("export %s: %v\n%s", b.o.src, err, out)
		}
	}
	// The floor and flood subcommands run from a normal build of this
	// program: `go run` strips the symbols perf needs to profile the floor.
	b.self = filepath.Join(b.dir, "bench")
	self := b.command("go", "build", "-o", b.self, "./tests/bench")
	self.Dir = b.repo
	if out, err := self.CombinedOutput(); err != nil {
		return fmt.Errorf("build tests/bench: %v\n%s", err, out)
	}
	b.authdBin = filepath.Join(b.dir, "authd")
	b.logf("building authd from %s", b.root)
	build := b.command("go", "build", "-o", b.authdBin, "./authd")
	build.Dir = b.root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build authd: %v\n%s", err, out)
	}
	return nil
}

// header starts the report: when, where, with what.
func (b *bench) header() error {
	run := func(name string, args ...string) string {
		out, _ := exec.Command(name, args...).CombinedOutput()
		return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	cpu := "?"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	memTotal := "?"
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(data), "MemTotal: %d kB", &kb); err == nil {
			memTotal = fmt.Sprintf("%.1f GB", float64(kb)/(1<<20))
		}
	}
	rev := run("git", "-C", b.repo, "rev-parse", "--short", "HEAD")
	if b.root != b.repo && b.root != filepath.Join(b.dir, "src") {
		rev = "the module copy in " + b.root
	} else if b.o.src == "worktree" {
		if dirty := run("git", "-C", b.repo, "status", "--porcelain", "--", "authd", "nginx"); dirty != "" {
			rev += " + uncommitted changes in authd/ or nginx/"
		}
	} else {
		rev = b.o.src + " = " + run("git", "-C", b.repo, "rev-parse", "--short", b.o.src)
	}
	b.reportf("# authd benchmark results")
	b.reportf("")
	b.reportf("Written by `bash tests/bench/run.sh` (`go run ./tests/bench`); method and targets in PERF.md.")
	b.reportf("Numbers drift between runs on this shared machine: compare the ratios, measured in one run.")
	b.reportf("")
	b.reportf("- command: `bash tests/bench/run.sh %s`", strings.Join(b.args, " "))
	b.reportf("- date: %s", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	b.reportf("- machine: %d cores (%s), %s RAM, Linux %s", runtime.NumCPU(), cpu, memTotal, run("uname", "-r"))
	b.reportf("- %s, %s, %s", run("go", "version"), run(b.nginxBin, "-v"), run("wrk", "-v"))
	b.reportf("- authd: %s", rev)
	pin := "not pinned"
	if b.cpuNginx != "" {
		pin = "nginx pinned to CPU " + b.cpuNginx + ", wrk to CPU " + b.cpuWrk + ", backends unpinned"
	}
	b.reportf("- load: wrk -t%d -c%d -d%s --latency; warm-up %s, then %d runs per configuration, "+
		"interleaved round-robin; median and spread ((max-min)/median of req/s); %s",
		b.o.threads, b.o.conns, b.o.duration, b.o.warmup, b.o.runs, pin)
	if b.o.browser {
		b.reportf("- every request carries a desktop browser's headers (-browser): %d headers besides Host and Cookie", len(browserHeaders))
	}
	if b.o.retries > 0 {
		b.reportf("- a run during which other processes took more than %.2f cores was measured again, up to %d times; the quietest attempt counts",
			b.o.maxOthers, b.o.retries)
	}
	b.reportf("")
	return nil
}
