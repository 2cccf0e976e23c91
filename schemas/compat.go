package schemas

import (
	"encoding/json"
	"fmt"
	"strings"
)

// CheckBackward reports whether data written with the writer schema can be
// read with the reader schema (Avro schema resolution, the registry's
// BACKWARD rule), listing every incompatibility found.
func CheckBackward(reader, writer string) error {
	var r, w any
	if err := json.Unmarshal([]byte(reader), &r); err != nil {
		return fmt.Errorf("reader schema: %w", err)
	}
	if err := json.Unmarshal([]byte(writer), &w); err != nil {
		return fmt.Errorf("writer schema: %w", err)
	}
	c := &compat{rNamed: map[string]any{}, wNamed: map[string]any{}, seen: map[string]bool{}}
	collectNamed(r, "", c.rNamed)
	collectNamed(w, "", c.wNamed)
	c.check("", r, w, "", "")
	if len(c.problems) > 0 {
		return fmt.Errorf("not backward compatible:\n  %s", strings.Join(c.problems, "\n  "))
	}
	return nil
}

type compat struct {
	rNamed, wNamed map[string]any
	seen           map[string]bool
	problems       []string
}

func (c *compat) addf(path, format string, a ...any) {
	if path == "" {
		path = "(root)"
	}
	c.problems = append(c.problems, path+": "+fmt.Sprintf(format, a...))
}

func collectNamed(v any, ns string, out map[string]any) {
	switch t := v.(type) {
	case []any:
		for _, b := range t {
			collectNamed(b, ns, out)
		}
	case map[string]any:
		typ, _ := t["type"].(string)
		switch typ {
		case "record", "error", "enum", "fixed":
			name, _ := t["name"].(string)
			if n, ok := t["namespace"].(string); ok && !strings.Contains(name, ".") {
				ns = n
			}
			full := qualify(name, ns)
			if i := strings.LastIndex(full, "."); i >= 0 {
				ns = full[:i]
			}
			out[full] = t
			if fs, ok := t["fields"].([]any); ok {
				for _, f := range fs {
					if fm, ok := f.(map[string]any); ok {
						collectNamed(fm["type"], ns, out)
					}
				}
			}
		case "array":
			collectNamed(t["items"], ns, out)
		case "map":
			collectNamed(t["values"], ns, out)
		default:
			collectNamed(t["type"], ns, out)
		}
	}
}

func qualify(name, ns string) string {
	if strings.Contains(name, ".") || ns == "" {
		return name
	}
	return ns + "." + name
}

// resolve turns a schema element into (kind, definition).
func resolve(v any, named map[string]any, ns string) (string, any) {
	switch t := v.(type) {
	case string:
		switch t {
		case "null", "boolean", "int", "long", "float", "double", "bytes", "string":
			return t, t
		}
		if d, ok := named[qualify(t, ns)]; ok {
			return resolve(d, named, ns)
		}
		if d, ok := named[t]; ok {
			return resolve(d, named, ns)
		}
		return "unknown:" + t, nil
	case []any:
		return "union", t
	case map[string]any:
		typ, _ := t["type"].(string)
		switch typ {
		case "record", "error", "enum", "fixed", "array", "map":
			return typ, t
		}
		return resolve(t["type"], named, ns)
	}
	return "invalid", nil
}

var promotions = map[string][]string{
	"int":    {"long", "float", "double"},
	"long":   {"float", "double"},
	"float":  {"double"},
	"string": {"bytes"},
	"bytes":  {"string"},
}

// readable reports whether a writer value of wv can be read as rv, without
// recording problems (used to pick union branches).
func (c *compat) readable(rv, wv any) bool {
	sub := &compat{rNamed: c.rNamed, wNamed: c.wNamed, seen: map[string]bool{}}
	sub.check("", rv, wv, "", "")
	return len(sub.problems) == 0
}

func (c *compat) check(path string, rv, wv any, rns, wns string) {
	rk, rd := resolve(rv, c.rNamed, rns)
	wk, wd := resolve(wv, c.wNamed, wns)
	if strings.HasPrefix(rk, "unknown:") || strings.HasPrefix(wk, "unknown:") {
		c.addf(path, "unknown type (%s / %s)", rk, wk)
		return
	}
	if wk == "union" {
		for _, b := range wd.([]any) {
			c.check(path, rv, b, rns, wns)
		}
		return
	}
	if rk == "union" {
		for _, b := range rd.([]any) {
			if c.readable(b, wv) {
				return
			}
		}
		c.addf(path, "no branch of the reader's union reads the writer's %s", wk)
		return
	}
	if rk != wk {
		for _, p := range promotions[wk] {
			if p == rk {
				return
			}
		}
		c.addf(path, "type changed from %s to %s", wk, rk)
		return
	}
	switch rk {
	case "record":
		rm, wm := rd.(map[string]any), wd.(map[string]any)
		name, _ := rm["name"].(string)
		if c.seen[path+"|"+name] {
			return
		}
		c.seen[path+"|"+name] = true
		wfields := map[string]map[string]any{}
		for _, f := range wm["fields"].([]any) {
			fm := f.(map[string]any)
			wfields[fm["name"].(string)] = fm
		}
		for _, f := range rm["fields"].([]any) {
			fm := f.(map[string]any)
			fname := fm["name"].(string)
			wf, ok := wfields[fname]
			if !ok {
				if aliases, _ := fm["aliases"].([]any); aliases != nil {
					for _, a := range aliases {
						if wf, ok = wfields[fmt.Sprint(a)]; ok {
							break
						}
					}
				}
			}
			fpath := strings.TrimPrefix(path+"."+fname, ".")
			if !ok {
				if _, hasDefault := fm["default"]; !hasDefault {
					c.addf(fpath, "new field has no default, so old data cannot be read")
				}
				continue
			}
			c.check(fpath, fm["type"], wf["type"], rns, wns)
		}
	case "enum":
		rs := map[string]bool{}
		for _, s := range rd.(map[string]any)["symbols"].([]any) {
			rs[fmt.Sprint(s)] = true
		}
		_, hasDefault := rd.(map[string]any)["default"]
		for _, s := range wd.(map[string]any)["symbols"].([]any) {
			if !rs[fmt.Sprint(s)] && !hasDefault {
				c.addf(path, "enum symbol %v was removed", s)
			}
		}
	case "array":
		c.check(path+"[]", rd.(map[string]any)["items"], wd.(map[string]any)["items"], rns, wns)
	case "map":
		c.check(path+"{}", rd.(map[string]any)["values"], wd.(map[string]any)["values"], rns, wns)
	case "fixed":
		if fmt.Sprint(rd.(map[string]any)["size"]) != fmt.Sprint(wd.(map[string]any)["size"]) {
			c.addf(path, "fixed size changed")
		}
	}
}
