package doctor

import (
	"fmt"
	"strings"
)

// Directive is one nginx directive with the file and line it was written on.
// Block holds the directives inside its braces; it is nil for a simple
// directive and empty (not nil) for an empty block.
type Directive struct {
	Name  string
	Args  []string
	File  string
	Line  int
	Block []*Directive
}

// IsBlock reports whether the directive has a { } body.
func (d *Directive) IsBlock() bool { return d.Block != nil }

// Pos is "file:line", the way findings name a place.
func (d *Directive) Pos() string { return fmt.Sprintf("%s:%d", d.File, d.Line) }

// Arg returns argument i, or "" when there are fewer.
func (d *Directive) Arg(i int) string {
	if i < len(d.Args) {
		return d.Args[i]
	}
	return ""
}

type token struct {
	text   string
	line   int
	quoted bool
}

// tokenize splits nginx configuration text the way ngx_conf_read_token does:
// words, quoted strings, and the three specials ; { }. A "#" starts a comment
// only where a word could start; "${" stays inside a word (a variable).
func tokenize(src, file string) ([]token, error) {
	var toks []token
	line := 1
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == ';' || c == '{' || c == '}':
			toks = append(toks, token{text: string(c), line: line})
			i++
		case c == '"' || c == '\'':
			start := line
			var b strings.Builder
			i++
			for {
				if i >= len(src) {
					return nil, fmt.Errorf("%s:%d: unterminated quoted string", file, start)
				}
				ch := src[i]
				if ch == '\\' && i+1 < len(src) {
					b.WriteString(unescape(src[i+1]))
					if src[i+1] == '\n' {
						line++
					}
					i += 2
					continue
				}
				if ch == c {
					i++
					break
				}
				if ch == '\n' {
					line++
				}
				b.WriteByte(ch)
				i++
			}
			toks = append(toks, token{text: b.String(), line: start, quoted: true})
		default:
			var b strings.Builder
			for i < len(src) {
				ch := src[i]
				if ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == ';' || ch == '}' {
					break
				}
				if ch == '{' {
					// "${name}" is a variable, not a block.
					if i > 0 && src[i-1] == '$' {
						end := strings.IndexByte(src[i:], '}')
						if end < 0 {
							return nil, fmt.Errorf("%s:%d: unterminated ${", file, line)
						}
						b.WriteString(src[i : i+end+1])
						i += end + 1
						continue
					}
					break
				}
				if ch == '\\' && i+1 < len(src) {
					b.WriteString(unescape(src[i+1]))
					i += 2
					continue
				}
				b.WriteByte(ch)
				i++
			}
			toks = append(toks, token{text: b.String(), line: line})
		}
	}
	return toks, nil
}

// unescape mirrors nginx: \" \' \\ \t \r \n are unescaped, any other
// backslash is kept (regular expressions rely on that).
func unescape(c byte) string {
	switch c {
	case '"', '\'', '\\':
		return string(c)
	case 't':
		return "\t"
	case 'r':
		return "\r"
	case 'n':
		return "\n"
	}
	return "\\" + string(c)
}

// parse turns one file's text into directives; includes stay as directives.
func parse(src, file string) ([]*Directive, error) {
	toks, err := tokenize(src, file)
	if err != nil {
		return nil, err
	}
	pos := 0
	ds, err := parseBlock(toks, &pos, file, 0)
	if err != nil {
		return nil, err
	}
	if pos < len(toks) {
		return nil, fmt.Errorf("%s:%d: unexpected \"}\"", file, toks[pos].line)
	}
	return ds, nil
}

func parseBlock(toks []token, pos *int, file string, depth int) ([]*Directive, error) {
	if depth > 64 {
		return nil, fmt.Errorf("%s: blocks nested too deep", file)
	}
	out := []*Directive{}
	for *pos < len(toks) {
		t := toks[*pos]
		if !t.quoted {
			switch t.text {
			case "}":
				if depth == 0 {
					return out, nil
				}
				*pos++
				return out, nil
			case ";", "{":
				return nil, fmt.Errorf("%s:%d: unexpected %q", file, t.line, t.text)
			}
		}
		d := &Directive{Name: t.text, File: file, Line: t.line}
		*pos++
		for {
			if *pos >= len(toks) {
				return nil, fmt.Errorf("%s:%d: %s: unexpected end of file, expecting \";\" or \"}\"", file, d.Line, d.Name)
			}
			a := toks[*pos]
			*pos++
			if !a.quoted && a.text == ";" {
				break
			}
			if !a.quoted && a.text == "{" {
				body, err := parseBlock(toks, pos, file, depth+1)
				if err != nil {
					return nil, err
				}
				if *pos > len(toks) || toks[*pos-1].text != "}" {
					return nil, fmt.Errorf("%s:%d: %s: unexpected end of file, expecting \"}\"", file, d.Line, d.Name)
				}
				d.Block = body
				break
			}
			if !a.quoted && a.text == "}" {
				return nil, fmt.Errorf("%s:%d: %s: unexpected \"}\"", file, a.line, d.Name)
			}
			d.Args = append(d.Args, a.text)
		}
		out = append(out, d)
	}
	if depth > 0 {
		return nil, fmt.Errorf("%s: unexpected end of file, expecting \"}\"", file)
	}
	return out, nil
}
