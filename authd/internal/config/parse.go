package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/BurntSushi/toml"
)

// UnmarshalText parses a Go duration string such as "30m" or "1h30m".
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf("invalid duration %q (want e.g. \"90s\", \"30m\", \"1h30m\")", text)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration in the form UnmarshalText reads.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(fmtDuration(d.Duration)), nil
}

// Load reads and parses the config file at path.
func Load(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("load config: %w", err)
	}
	defer f.Close()
	c, err := Parse(f)
	if err != nil {
		return Config{}, fmt.Errorf("load config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes TOML over Default and validates the result. Unknown keys,
// values of the wrong type and everything Validate finds are returned
// together as *Errors, one problem per key; so is a syntax error that follows
// a key. A syntax error the decoder cannot tie to a key is returned wrapped.
func Parse(r io.Reader) (Config, error) {
	c := Default()
	// Decoding into a non-empty slice reuses its elements, so a file's first
	// rule would inherit fields from the default rule. Start from none and put
	// the default back only when the file does not mention rules at all.
	c.Rules = nil
	md, err := toml.NewDecoder(r).Decode(&c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) && pe.LastKey != "" {
			return Config{}, &Errors{{Key: pe.LastKey, Msg: fmt.Sprintf("%s (line %d)", pe.Message, pe.Position.Line)}}
		}
		return Config{}, fmt.Errorf("parse config: %w", err)
	}
	if !md.IsDefined("rules") {
		c.Rules = Default().Rules
	}
	for i := range c.OIDC {
		oidcDefaults(&c.OIDC[i])
	}
	var errs Errors
	var unknown []toml.Key
	for _, k := range md.Undecoded() {
		// An unknown table's own keys add nothing once the table is reported.
		if !under(k, unknown) {
			unknown = append(unknown, k)
			errs.add(k.String(), "unknown key")
		}
	}
	var verrs *Errors
	if err := c.Validate(); errors.As(err, &verrs) {
		errs = append(errs, *verrs...)
	}
	if len(errs) > 0 {
		return Config{}, &errs
	}
	return c, nil
}

// under reports whether k lies inside one of the tables in parents.
func under(k toml.Key, parents []toml.Key) bool {
	for _, p := range parents {
		if len(p) < len(k) && slices.Equal(p, k[:len(p)]) {
			return true
		}
	}
	return false
}
