package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/authd/authd/authd/internal/config"
	"github.com/authd/authd/authd/internal/doctor"
)

// cmdDoctor checks the live nginx configuration against authd's config:
// exit 0 clean, 1 findings, 2 when either cannot be read.
func cmdDoctor(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("doctor", stderr)
	file := fs.String("nginx-file", "", "read this nginx config `file` and its includes instead of running nginx")
	dir := fs.String("nginx-dir", "", "with -nginx-file: nginx's conf dir, which relative includes resolve against (default: the nearest directory above the file holding nginx.conf)")
	dump := fs.String("nginx-T", "", "read saved \"nginx -T\" output from `file` (- for stdin) instead of running nginx")
	bin := fs.String("nginx", "nginx", "nginx `binary` to run with -T")
	conf := fs.String("nginx-conf", "", "main nginx config `file` to run \"nginx -T -c\" on (default: nginx's own)")
	asJSON := fs.Bool("json", false, "print findings as a JSON array of {file,line,check,message,fix}")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	sources := 0
	for _, v := range []string{*file, *dump, *conf} {
		if v != "" {
			sources++
		}
	}
	if len(pos) != 0 || sources > 1 {
		return usagef("doctor [-config PATH] [-nginx BIN] [-nginx-conf FILE | -nginx-file FILE [-nginx-dir DIR] | -nginx-T FILE|-] [-json]")
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return cannotRead(err)
	}
	var nc *doctor.Config
	switch {
	case *file != "":
		nc, err = doctor.ParseFile(*file, *dir)
	case *dump == "-":
		nc, err = doctor.ParseDump(stdin)
	case *dump != "":
		var f *os.File
		if f, err = os.Open(*dump); err == nil {
			nc, err = doctor.ParseDump(f)
			f.Close()
		}
	default:
		nc, err = runNginxT(*bin, *conf)
	}
	if err != nil {
		return cannotRead(err)
	}
	found := doctor.Check(nc, doctor.Options{Listen: cfg.Listen, Prefix: cfg.Prefix})
	if *asJSON {
		if found == nil {
			found = []doctor.Finding{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(found); err != nil {
			return err
		}
	} else {
		for _, f := range found {
			fmt.Fprintln(stdout, f)
		}
		fmt.Fprintln(stdout, summary(found, nc.Main, *cfgPath))
	}
	if len(found) > 0 {
		return fmt.Errorf("doctor: %d finding(s)", len(found))
	}
	return nil
}

func summary(found []doctor.Finding, main, cfgPath string) string {
	if len(found) == 0 {
		return fmt.Sprintf("no findings: nginx %s and authd %s agree", main, cfgPath)
	}
	files := map[string]bool{}
	for _, f := range found {
		files[f.File] = true
	}
	return fmt.Sprintf("%d finding(s) in %d file(s)", len(found), len(files))
}

// cannotRead makes exit status 2: doctor could not look at the configuration
// at all, which CI must not mistake for "findings".
func cannotRead(err error) error { return errCannotRead{fmt.Errorf("doctor: cannot read: %w", err)} }

// runNginxT runs `nginx -T` (with -c when conf is set) and parses its output.
func runNginxT(bin, conf string) (*doctor.Config, error) {
	args := []string{"-T", "-q"}
	if conf != "" {
		args = append(args, "-c", conf)
	}
	cmd := exec.Command(bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			// nginx did not start at all: say how to point doctor at it.
			return nil, fmt.Errorf("run %s %s: %w (give the nginx binary with -nginx BIN, or saved nginx -T output with -nginx-T FILE)", bin, strings.Join(args, " "), err)
		}
		if msg := strings.TrimSpace(errb.String()); msg != "" {
			return nil, fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, msg)
		}
		return nil, fmt.Errorf("%s %s: %w", bin, strings.Join(args, " "), err)
	}
	return doctor.ParseDump(&out)
}
