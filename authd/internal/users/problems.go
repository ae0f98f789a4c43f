package users

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
)

// redactQuoted blanks input fragments the TOML parser quotes in its messages (such as an
// unquoted hash or password: "expected value but found \"hunter2\" instead"). Single
// characters, which say what the parser tripped over, stay.
func redactQuoted(msg string) string {
	return regexp.MustCompile(`"[^"]{2,}"|'[^']{2,}'`).ReplaceAllString(msg, `"…"`)
}

func lineOf(lines []int, i int) int {
	if i < len(lines) {
		return lines[i]
	}
	return 0
}

// tableLines returns the line number of each [[users]] header, or nil when their count is
// not want (users written as an inline array, or a header inside a multi-line string), so a
// wrong line is never reported.
func tableLines(data []byte, want int) []int {
	var lines []int
	for i, line := range bytes.Split(data, []byte("\n")) {
		l := bytes.TrimSpace(line)
		if !bytes.HasPrefix(l, []byte("[[")) {
			continue
		}
		l, _, _ = bytes.Cut(l[2:], []byte("]]"))
		if string(bytes.TrimSpace(l)) == "users" {
			lines = append(lines, i+1)
		}
	}
	if len(lines) != want {
		return nil
	}
	return lines
}

// problem is one validation failure.
type problem struct {
	name  string // file path or ""
	line  int    // 0 if unknown
	user  string
	index int // 1-based position among users, 0 for file-level problems
	msg   string
}

func (p problem) String() string {
	var b strings.Builder
	if p.name != "" {
		b.WriteString(p.name)
	} else {
		b.WriteString("users file")
	}
	if p.line > 0 {
		fmt.Fprintf(&b, " line %d", p.line)
	}
	b.WriteString(": ")
	switch {
	case p.user != "":
		fmt.Fprintf(&b, "user %q: ", p.user)
	case p.index > 0:
		fmt.Fprintf(&b, "user #%d: ", p.index)
	}
	b.WriteString(p.msg)
	return b.String()
}

// problems is every validation failure of one file, one per line.
type problems []problem

func (ps problems) Error() string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, "\n")
}

// printableName returns name if it may appear in an error message: a valid username, even
// if not yet canonical. Anything else may be a secret typed into the wrong field.
func printableName(name string) string {
	if _, err := Canonical(name); err != nil {
		return ""
	}
	return name
}
