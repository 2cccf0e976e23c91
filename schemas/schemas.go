// Package schemas embeds Sluice's Avro schemas and composes them into the
// self-contained schema texts that are registered and used for encoding.
//
// Layout: one folder per schema name, one file per version (`<name>/v<N>.avsc`).
// Family schemas refer to the shared records by name ("sluice.Envelope",
// "sluice.Enrichment"); Compose inlines the latest version of each shared record
// at its first use, so every registered schema stands on its own and needs no
// registry references.
package schemas

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

//go:embed */v*.avsc
var files embed.FS

// Shared record names and the folders that define them.
var shared = map[string]string{
	"sluice.Envelope":   "envelope",
	"sluice.Enrichment": "enrichment",
}

// Families lists the event families whose schemas are topic values.
var Families = []string{"edx", "crowdframe", "weaklayer", "workstation", "clicks", "hec"}

// DLQ is the schema name of the dead-letter record.
const DLQ = "dlq"

// Version is one version of one schema file.
type Version struct {
	Name    string // folder name, e.g. "edx"
	Version int
	Text    string // the file as written
}

// Versions returns every version of the named schema, oldest first.
func Versions(name string) ([]Version, error) {
	entries, err := fs.ReadDir(files, name)
	if err != nil {
		return nil, fmt.Errorf("reading schema folder %q: %w", name, err)
	}
	var out []Version
	for _, e := range entries {
		n := e.Name()
		if !strings.HasPrefix(n, "v") || !strings.HasSuffix(n, ".avsc") {
			continue
		}
		v, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(n, "v"), ".avsc"))
		if err != nil {
			return nil, fmt.Errorf("schema file %s/%s: version is not a number", name, n)
		}
		b, err := files.ReadFile(path.Join(name, n))
		if err != nil {
			return nil, err
		}
		out = append(out, Version{Name: name, Version: v, Text: string(b)})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("schema %q has no versions", name)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// Names returns every schema folder name.
func Names() ([]string, error) {
	entries, err := fs.ReadDir(files, ".")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// Latest returns the composed text of the newest version of the named schema.
func Latest(name string) (string, error) {
	vs, err := Versions(name)
	if err != nil {
		return "", err
	}
	return Compose(vs[len(vs)-1].Text)
}

// Compose inlines the latest version of every shared record the schema refers
// to by name, at its first use, and returns compact JSON.
func Compose(text string) (string, error) {
	var root any
	if err := json.Unmarshal([]byte(text), &root); err != nil {
		return "", fmt.Errorf("parsing schema JSON: %w", err)
	}
	defined := map[string]bool{}
	var walk func(v any) (any, error)
	walk = func(v any) (any, error) {
		switch t := v.(type) {
		case string:
			folder, ok := shared[t]
			if !ok || defined[t] {
				return t, nil
			}
			defined[t] = true
			vs, err := Versions(folder)
			if err != nil {
				return nil, err
			}
			var def any
			if err := json.Unmarshal([]byte(vs[len(vs)-1].Text), &def); err != nil {
				return nil, fmt.Errorf("parsing shared schema %s: %w", t, err)
			}
			return walk(def)
		case []any:
			for i := range t {
				r, err := walk(t[i])
				if err != nil {
					return nil, err
				}
				t[i] = r
			}
			return t, nil
		case map[string]any:
			// Only type positions may name a shared record; names, docs and
			// defaults are left alone.
			for _, k := range []string{"type", "items", "values", "fields"} {
				if c, ok := t[k]; ok {
					r, err := walk(c)
					if err != nil {
						return nil, err
					}
					t[k] = r
				}
			}
			return t, nil
		default:
			return v, nil
		}
	}
	out, err := walk(root)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(out)
	if err != nil {
		return "", err
	}
	return string(b), nil
}
