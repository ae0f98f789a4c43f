package config

import (
	"maps"
	"os"
	"reflect"
	"slices"
	"testing"

	"github.com/BurntSushi/toml"
)

// shipped is the annotated config operators copy; it must show the defaults.
const shipped = "../../../conf/authd.toml"

func TestShippedConfigIsDefault(t *testing.T) {
	f, err := os.Open(shipped)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	if want := valid(); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want Default() with public_url set: %+v", got, want)
	}
}

// TestShippedConfigShowsEveryKey keeps the annotated file complete when a
// field is added to Config.
func TestShippedConfigShowsEveryKey(t *testing.T) {
	var doc map[string]any
	if _, err := toml.DecodeFile(shipped, &doc); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	docKeys(doc, "", got)
	want := map[string]bool{}
	structKeys(reflect.TypeFor[Config](), "", want)
	if !maps.Equal(got, want) {
		t.Errorf("got keys %q, want %q", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
}

// docKeys collects leaf key paths; an array of tables and an empty table
// (such as [networks], a map whose entries are examples) count as one leaf.
func docKeys(m map[string]any, prefix string, out map[string]bool) {
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
			docKeys(sub, prefix+k+".", out)
			continue
		}
		out[prefix+k] = true
	}
}

// structKeys collects the TOML key paths of t's fields, the same way.
func structKeys(t reflect.Type, prefix string, out map[string]bool) {
	for f := range t.Fields() {
		key := prefix + f.Tag.Get("toml")
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[Duration]() {
			structKeys(f.Type, key+".", out)
			continue
		}
		out[key] = true
	}
}
