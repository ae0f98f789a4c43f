package doctor

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Config is a parsed nginx configuration with every include expanded in
// place: each directive still names the file and line it came from.
type Config struct {
	// Main is the first file: nginx.conf, or the file given on the command line.
	Main string
	// Top holds the top-level directives of Main.
	Top []*Directive
}

// source is where included files come from: the files `nginx -T` printed, or
// the file system.
type source interface {
	read(path string) (string, error)
	glob(pattern string) ([]string, error)
}

// dumpMarker starts each file in `nginx -T` output.
const dumpMarker = "# configuration file "

// ParseDump reads the output of `nginx -T`. nginx prints every file it read
// once, each after a "# configuration file PATH:" line, the main file first;
// include directives are resolved against those files, so line numbers are the
// real ones in the real files.
func ParseDump(r io.Reader) (*Config, error) {
	files := map[string]*strings.Builder{}
	var order []string
	var cur *strings.Builder
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		l := sc.Text()
		if name, ok := strings.CutPrefix(l, dumpMarker); ok && len(name) > 1 && strings.HasSuffix(name, ":") {
			name = strings.TrimSuffix(name, ":")
			if _, seen := files[name]; !seen {
				order = append(order, name)
			}
			cur = &strings.Builder{}
			files[name] = cur
			continue
		}
		if cur == nil {
			continue // nginx's own "syntax is ok" lines when stderr was merged in
		}
		cur.WriteString(l)
		cur.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read nginx -T output: %w", err)
	}
	if len(order) == 0 {
		return nil, fmt.Errorf("read nginx -T output: no %q lines (is this the output of nginx -T?)", strings.TrimSpace(dumpMarker))
	}
	ds := dumpSource{}
	for name, b := range files {
		ds[name] = b.String()
	}
	return load(ds, order[0], filepath.Dir(order[0]))
}

// ParseFile reads an nginx configuration file and the files it includes from
// disk. Relative include paths are resolved against confDir, as nginx resolves
// them against the directory of its main configuration file (/etc/nginx on
// Debian). Empty confDir means the nearest directory at or above path's that
// holds an nginx.conf (so a sites-enabled file resolves like nginx would), or
// else path's own directory.
func ParseFile(path, confDir string) (*Config, error) {
	if confDir == "" {
		confDir = findConfDir(path)
	}
	return load(diskSource{}, path, confDir)
}

func findConfDir(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return filepath.Dir(path)
	}
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "nginx.conf")); err == nil {
			return dir
		}
		if dir == filepath.Dir(dir) {
			return filepath.Dir(path)
		}
	}
}

type dumpSource map[string]string

func (s dumpSource) read(path string) (string, error) {
	text, ok := s[path]
	if !ok {
		return "", fmt.Errorf("%s: not in the nginx -T output", path)
	}
	return text, nil
}

func (s dumpSource) glob(pattern string) ([]string, error) {
	var out []string
	for name := range s {
		ok, err := filepath.Match(pattern, name)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out, nil
}

type diskSource struct{}

func (diskSource) read(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func (diskSource) glob(pattern string) ([]string, error) {
	return filepath.Glob(pattern) // sorted, like nginx's glob
}

func load(src source, main, confDir string) (*Config, error) {
	l := loader{src: src, confDir: confDir}
	top, err := l.file(main, 0)
	if err != nil {
		return nil, err
	}
	return &Config{Main: main, Top: top}, nil
}

type loader struct {
	src     source
	confDir string
}

// maxIncludeDepth stops include cycles (nginx itself would recurse until it
// runs out of file descriptors).
const maxIncludeDepth = 32

func (l loader) file(path string, depth int) ([]*Directive, error) {
	text, err := l.src.read(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	ds, err := parse(text, path)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	return l.expand(ds, depth)
}

// expand replaces each include directive by the directives of the files it names.
func (l loader) expand(ds []*Directive, depth int) ([]*Directive, error) {
	out := make([]*Directive, 0, len(ds))
	for _, d := range ds {
		if d.Name == "include" && !d.IsBlock() && len(d.Args) == 1 {
			if depth >= maxIncludeDepth {
				return nil, fmt.Errorf("%s: includes nested deeper than %d (a cycle?)", d.Pos(), maxIncludeDepth)
			}
			pattern := d.Args[0]
			if !filepath.IsAbs(pattern) {
				pattern = filepath.Join(l.confDir, pattern)
			}
			names := []string{pattern}
			if strings.ContainsAny(pattern, "*?[") {
				var err error
				if names, err = l.src.glob(pattern); err != nil {
					return nil, fmt.Errorf("%s: include %s: %w", d.Pos(), d.Args[0], err)
				}
			}
			for _, name := range names {
				inc, err := l.file(name, depth+1)
				if err != nil {
					return nil, fmt.Errorf("%s: include: %w", d.Pos(), err)
				}
				out = append(out, inc...)
			}
			continue
		}
		if d.IsBlock() {
			body, err := l.expand(d.Block, depth)
			if err != nil {
				return nil, err
			}
			d.Block = body
		}
		out = append(out, d)
	}
	return out, nil
}
