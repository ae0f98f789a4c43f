package doctor

import (
	"bufio"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// snippetDir returns a directory laid out like /etc/nginx on Debian: the
// shipped snippets under authd/, so configs can `include authd/...`.
func snippetDir(t testing.TB) string {
	t.Helper()
	shipped, err := filepath.Abs(filepath.Join("..", "..", "..", "nginx"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(shipped, filepath.Join(dir, "authd")); err != nil {
		t.Fatal(err)
	}
	return dir
}

var defaults = Options{Listen: "127.0.0.1:9091", Prefix: "/authd/"}

// want is one expected finding: a check at a line of a file ("*": any line).
type want struct {
	check string
	line  string
	file  string
}

// corpusHeader reads the "# want: CHECK LINE [FILE]", "# prefix: P" and
// "# listen: L" lines at the top of a corpus file.
func corpusHeader(t testing.TB, path string) ([]want, Options) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	opt := defaults
	var ws []want
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "# ") {
			break
		}
		switch k, v, _ := strings.Cut(strings.TrimPrefix(l, "# "), ": "); k {
		case "want":
			p := strings.Fields(v)
			w := want{check: p[0], line: p[1], file: filepath.Base(path)}
			if len(p) > 2 {
				w.file = p[2]
			}
			ws = append(ws, w)
		case "prefix":
			opt.Prefix = v
		case "listen":
			opt.Listen = v
		}
	}
	return ws, opt
}

func (w want) String() string { return w.check + " " + w.file + ":" + w.line }

// TestCorpus runs every broken config in testdata/broken and expects exactly
// the findings its header lists: each check at its file and line, no others.
func TestCorpus(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "broken", "*.conf"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	dir := snippetDir(t)
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			wants, opt := corpusHeader(t, path)
			if len(wants) == 0 {
				t.Fatal("corpus file has no # want: line")
			}
			c, err := ParseFile(path, dir)
			if err != nil {
				t.Fatal(err)
			}
			found := Check(c, opt)
			var got []string
			for _, f := range found {
				got = append(got, f.Check+" "+filepath.Base(f.File)+":"+strconv.Itoa(f.Line))
			}
			var exp []string
			for _, w := range wants {
				exp = append(exp, w.String())
			}
			if !match(got, exp) {
				var lines []string
				for _, f := range found {
					lines = append(lines, f.String())
				}
				t.Errorf("got %v, want %v\n%s", got, exp, strings.Join(lines, "\n"))
			}
			for _, f := range found {
				if f.Message == "" || f.Fix == "" || f.Line == 0 || f.File == "" {
					t.Errorf("incomplete finding %+v", f)
				}
			}
		})
	}
}

// match compares findings with expectations; a "*" line matches any line.
func match(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	g := append([]string(nil), got...)
	w := append([]string(nil), want...)
	sort.Strings(g)
	sort.Strings(w)
	used := make([]bool, len(g))
	for _, x := range w {
		ok := false
		for i, y := range g {
			if used[i] {
				continue
			}
			if x == y || (strings.HasSuffix(x, ":*") && strings.HasPrefix(y, strings.TrimSuffix(x, "*"))) {
				used[i], ok = true, true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}
