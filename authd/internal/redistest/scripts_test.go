package redistest

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	newScript = regexp.MustCompile("(?s)redis\\.NewScript\\((?:\\w+ \\+ )?`(.*?)`\\)")
	call      = regexp.MustCompile(`redis\.p?call\('(\w+)'\s*(?:,\s*([^,)]+))?`)
	keysOnly  = regexp.MustCompile(`^KEYS\[[^\]]+\]$`)
)

// keyless are the commands the scripts use whose first argument is no key.
var keyless = map[string]bool{"TIME": true, "PUBLISH": true}

// TestScriptsDeclareKeys reads every Lua script in authd's sources and fails
// if a command's key argument is anything but KEYS[…] or a local taken
// straight from KEYS: a key name built in Lua breaks Redis Cluster routing and
// escapes ACL key patterns. OpenDeclared checks the same at run time, for the
// paths the tests take.
func TestScriptsDeclareKeys(t *testing.T) {
	root := filepath.Join("..", "..")
	n := 0
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range newScript.FindAllStringSubmatch(string(b), -1) {
			n++
			for _, bad := range undeclaredKeys(m[1]) {
				t.Errorf("%s: script touches a key not taken from KEYS: %s", path, bad)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 6 {
		t.Fatalf("found %d scripts, want at least 6: the pattern no longer matches the sources", n)
	}
}

// undeclaredKeys returns the calls in src whose key argument is not from KEYS.
func undeclaredKeys(src string) []string {
	fromKeys := map[string]bool{}
	for _, line := range strings.Split(src, "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "for _, "); ok && strings.Contains(rest, "in ipairs(KEYS)") {
			fromKeys[strings.Fields(rest)[0]] = true
			continue
		}
		rest, ok := strings.CutPrefix(line, "local ")
		if !ok {
			continue
		}
		names, rhs, ok := strings.Cut(rest, "=")
		if !ok {
			continue
		}
		vals := strings.Split(rhs, ",")
		for i, name := range strings.Split(names, ",") {
			if i < len(vals) && keysOnly.MatchString(strings.TrimSpace(vals[i])) {
				fromKeys[strings.TrimSpace(name)] = true
			}
		}
	}
	var bad []string
	for _, m := range call.FindAllStringSubmatch(src, -1) {
		arg := strings.TrimSpace(m[2])
		if keyless[m[1]] || arg == "" || keysOnly.MatchString(arg) || fromKeys[arg] {
			continue
		}
		bad = append(bad, m[0])
	}
	return bad
}

func TestUndeclaredKeys(t *testing.T) {
	tests := []struct {
		name, src string
		bad       int
	}{
		{"declared", `redis.call('HGET', KEYS[1], 'u')`, 0},
		{"built from ARGV", `redis.call('ZREM', ARGV[2] .. u, ARGV[1])`, 1},
		{"built from a value", `local s = ARGV[6] .. h
redis.call('HSET', s, 'w', v)`, 1},
		{"local from KEYS", `local s, idx = KEYS[2 * i], KEYS[2 * i + 1]
redis.call('DEL', s)
redis.call('ZREM', idx, h)`, 0},
		{"loop over KEYS", `for _, k in ipairs(KEYS) do redis.call('DEL', k) end`, 0},
		{"keyless", `redis.call('TIME') redis.call('PUBLISH', ARGV[3], ARGV[4])`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := undeclaredKeys(tt.src); len(got) != tt.bad {
				t.Errorf("got %v, want %d undeclared", got, tt.bad)
			}
		})
	}
}
