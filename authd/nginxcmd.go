package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/authd/authd/authd/internal/config"
	"github.com/authd/authd/authd/internal/fsutil"
	"github.com/authd/authd/authd/internal/snippets"
)

// cmdNginx writes the nginx snippets for a config: its listen address or
// socket and its prefix, under an instance name. Without -out it prints them,
// each after a "# file NAME" line, so they can be read or diffed first.
func cmdNginx(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("nginx", stderr)
	out := fs.String("out", "", "directory to write the snippets to (default: print them)")
	name := fs.String("name", snippets.DefaultName, "instance name: upstream, $NAME_* variables, /_NAME/verify, and the include directory NAME/")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("nginx takes no arguments (got %q)", pos)
	}
	// Snippets for a config authd would refuse to run would point nginx at
	// nothing: the config must validate.
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		var ce *config.Errors
		if errors.As(err, &ce) {
			return fmt.Errorf("%s has problems:\n%s", *cfgPath, ce.Error())
		}
		return err
	}
	p, err := snippets.For(cfg.Listen, cfg.Prefix, *name)
	if err != nil {
		return fmt.Errorf("nginx snippets: %w", err)
	}
	files, err := snippets.Render(p)
	if err != nil {
		return err
	}
	if *out == "" {
		for _, n := range snippets.Names() {
			fmt.Fprintf(stdout, "# file %s\n", n)
			if _, err := stdout.Write(files[n]); err != nil {
				return err
			}
		}
		return nil
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("nginx snippets: %w", err)
	}
	for _, n := range snippets.Names() {
		path := filepath.Join(*out, n)
		if err := fsutil.WriteFile(path, files[n], fsutil.Options{Perm: 0o644}); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		fmt.Fprintf(stdout, "wrote %s\n", path)
	}
	fmt.Fprintf(stdout, "include them from nginx as %s/…: upstream %s → %s, prefix %s\n", p.Name, p.Name, p.Upstream, p.Prefix)
	return nil
}
