package server

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// The pages' text lives in assets/i18n/<lang>.toml, one flat table of
// key = "text" per language, so a translator edits one file and never a
// template. English is complete; another language falls back to English for
// a key it lacks.

const defaultLang = "en"

// lang is one language's messages, with English behind it.
type lang struct {
	Code string
	msgs map[string]string
	en   map[string]string
}

// T returns the text for key, formatted with args (fmt verbs such as %s in
// the text). An unknown key returns the key itself, which a test catches.
func (l *lang) T(key string, args ...any) string {
	m, ok := l.msgs[key]
	if !ok {
		if m, ok = l.en[key]; !ok {
			return key
		}
	}
	if len(args) == 0 {
		return m
	}
	return fmt.Sprintf(m, args...)
}

// catalog holds every language found in the files.
type catalog struct {
	langs map[string]*lang
}

func loadCatalog(fsys fs.FS, dir string) (*catalog, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.toml"))
	if err != nil {
		return nil, err
	}
	c := &catalog{langs: map[string]*lang{}}
	for _, n := range names {
		data, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		msgs := map[string]string{}
		if _, err := toml.Decode(string(data), &msgs); err != nil {
			return nil, fmt.Errorf("translations %s: %w", n, err)
		}
		code := strings.ToLower(strings.TrimSuffix(path.Base(n), ".toml"))
		c.langs[code] = &lang{Code: code, msgs: msgs}
	}
	en, ok := c.langs[defaultLang]
	if !ok {
		return nil, fmt.Errorf("translations: no %s.toml in %s", defaultLang, dir)
	}
	for _, l := range c.langs {
		l.en = en.msgs
	}
	return c, nil
}

// codes returns the languages on offer, sorted.
func (c *catalog) codes() []string {
	out := make([]string, 0, len(c.langs))
	for k := range c.langs {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// negotiate picks the language for an Accept-Language header: the highest
// q-value the catalog has, matching "pt-BR" to "pt" and "zh-Hans-CN" to
// "zh"; English when nothing matches. Malformed parts are skipped.
func (c *catalog) negotiate(header string) *lang {
	best, bestQ := c.langs[defaultLang], 0.0
	if len(header) > 512 {
		header = header[:512]
	}
	for _, part := range strings.Split(header, ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 || f > 1 {
				continue
			}
			q = f
		}
		if q <= bestQ {
			continue
		}
		tag = strings.ToLower(strings.TrimSpace(tag))
		primary, _, _ := strings.Cut(tag, "-")
		if l, ok := c.langs[tag]; ok {
			best, bestQ = l, q
		} else if l, ok := c.langs[primary]; ok {
			best, bestQ = l, q
		}
	}
	return best
}
