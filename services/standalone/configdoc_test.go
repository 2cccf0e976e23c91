package standalone

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/app"
	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/services/enricher"
	"github.com/sluicehq/sluice/services/gateway"
	sinkfile "github.com/sluicehq/sluice/services/sink-file"
	sinkhec "github.com/sluicehq/sluice/services/sink-hec"
)

// configDocPath is the configuration reference this test keeps honest.
const configDocPath = "../../docs/configuration.md"

// The service binaries' configurations live in package main of each
// cmd/sluice-*; these mirror their shape, and TestConfigDocBinaryShapes
// checks the mirrors against the main.go files.
type (
	gatewayBinary struct {
		app.Common `yaml:",inline"`
		Registry   avro.RegistryConfig `yaml:"registry" envPrefix:"REGISTRY_"`
		Gateway    gateway.Config      `yaml:",inline"`
	}
	enricherBinary struct {
		app.Common `yaml:",inline"`
		Registry   avro.RegistryConfig `yaml:"registry" envPrefix:"REGISTRY_"`
		Enricher   enricher.Config     `yaml:",inline"`
	}
	sinkFileBinary struct {
		app.Common `yaml:",inline"`
		Registry   avro.RegistryConfig `yaml:"registry" envPrefix:"REGISTRY_"`
		Sink       sinkfile.Config     `yaml:",inline"`
	}
	sinkHECBinary struct {
		app.Common `yaml:",inline"`
		Registry   avro.RegistryConfig `yaml:"registry" envPrefix:"REGISTRY_"`
		Sink       sinkhec.Config      `yaml:",inline"`
	}
)

func (c *gatewayBinary) Validate() error {
	return binaryValidate(c.Common, c.Registry, c.Gateway.Validate())
}

func (c *enricherBinary) Validate() error {
	return binaryValidate(c.Common, c.Registry, c.Enricher.Validate())
}

func (c *sinkFileBinary) Validate() error {
	return binaryValidate(c.Common, c.Registry, c.Sink.Validate())
}

func (c *sinkHECBinary) Validate() error {
	return binaryValidate(c.Common, c.Registry, c.Sink.Validate())
}

// binaryValidate validates like the service binaries' main.go files.
func binaryValidate(common app.Common, reg avro.RegistryConfig, service error) error {
	var p config.Problems
	p.Add("registry", reg.Validate())
	return errors.Join(common.Validate(), p.Err(), service)
}

// docBinary is one binary whose settings the reference must list.
type docBinary struct {
	name     string
	mainFile string // "" for the standalone binary, whose Config is exported
	defaults any    // a struct value holding the binary's defaults
}

func docBinaries() []docBinary {
	return []docBinary{
		{"sluice-gateway", "../gateway/cmd/sluice-gateway/main.go",
			gatewayBinary{Common: app.CommonDefaults(), Registry: avro.RegistryDefaults(), Gateway: gateway.Defaults()}},
		{"sluice-enricher", "../enricher/cmd/sluice-enricher/main.go",
			enricherBinary{Common: app.CommonDefaults(), Registry: avro.RegistryDefaults(), Enricher: enricher.Defaults()}},
		{"sluice-sink-file", "../sink-file/cmd/sluice-sink-file/main.go",
			sinkFileBinary{Common: app.CommonDefaults(), Registry: avro.RegistryDefaults(), Sink: sinkfile.Defaults()}},
		{"sluice-sink-hec", "../sink-hec/cmd/sluice-sink-hec/main.go",
			sinkHECBinary{Common: app.CommonDefaults(), Registry: avro.RegistryDefaults(), Sink: sinkhec.Defaults()}},
		{"sluice-standalone", "", Defaults()},
	}
}

// setting is one leaf of a binary's configuration.
type setting struct {
	binary string
	yaml   string // full YAML path, e.g. gateway.kafka.linger; list elements as sources[].id
	env    string // full environment name, e.g. SLUICE_GATEWAY_KAFKA_LINGER; "" when YAML-only
	typ    string
	def    string // the default, rendered as the reference writes it
}

// walkSettings lists the leaves of v's struct type the way config.Load reads
// them: yaml.v3 field names (",inline" adds no level), caarlos0/env names
// under the SLUICE_ prefix (`envPrefix` nests, an untagged struct adds
// nothing). A slice of structs has no environment form: it and its
// elements' fields are YAML-only.
func walkSettings(t *testing.T, binary string, v reflect.Value, yamlPrefix, envPrefix string, yamlOnly bool, out *[]setting) {
	t.Helper()
	typ := v.Type()
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		inline := slices.Contains(strings.Split(opts, ","), "inline")
		if name == "" && !inline {
			t.Errorf("%s: field %s.%s has no yaml tag; every setting needs an explicit YAML name", binary, typ, f.Name)
			continue
		}
		path := yamlPrefix + name
		fv := v.Field(i)
		ft := f.Type
		switch {
		case ft.Kind() == reflect.Struct && ft != reflect.TypeFor[time.Time]():
			next := yamlPrefix
			if !inline {
				next = path + "."
			}
			walkSettings(t, binary, fv, next, envPrefix+f.Tag.Get("envPrefix"), yamlOnly, out)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			*out = append(*out, setting{binary: binary, yaml: path, typ: "list of " + ft.Elem().Name(), def: render(fv)})
			walkSettings(t, binary, reflect.New(ft.Elem()).Elem(), path+"[].", "", true, out)
		default:
			s := setting{binary: binary, yaml: path, typ: typeName(ft), def: render(fv)}
			if tag, _, _ := strings.Cut(f.Tag.Get("env"), ","); tag != "" && !yamlOnly {
				s.env = envPrefix + tag
			} else if !yamlOnly {
				t.Errorf("%s: setting %s has no env tag; every scalar setting needs an environment override", binary, path)
			}
			*out = append(*out, s)
		}
	}
}

func typeName(t reflect.Type) string {
	switch {
	case t == reflect.TypeFor[time.Duration]():
		return "duration"
	case t == reflect.TypeFor[config.Secret]():
		return "secret"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		return "list of strings"
	default:
		return t.Kind().String()
	}
}

// render writes a default value as the reference shows it: durations in
// Go syntax, lists comma-separated (as the environment takes them) or [],
// the empty string as "".
func render(v reflect.Value) string {
	if d, ok := v.Interface().(time.Duration); ok {
		return d.String()
	}
	switch v.Kind() {
	case reflect.String:
		if v.Len() == 0 {
			return `""`
		}
		return v.String()
	case reflect.Slice:
		if v.Len() == 0 {
			return "[]"
		}
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = render(v.Index(i))
		}
		return strings.Join(parts, ",")
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10)
	default:
		return fmt.Sprint(v.Interface())
	}
}

func allSettings(t *testing.T) []setting {
	t.Helper()
	var all []setting
	for _, b := range docBinaries() {
		walkSettings(t, b.name, reflect.ValueOf(b.defaults), "", config.EnvPrefix, false, &all)
	}
	return all
}

func readConfigDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(configDocPath)
	if err != nil {
		t.Fatalf("reading the configuration reference: %v", err)
	}
	return string(b)
}

// TestConfigDocListsEverySetting fails when a setting's YAML key or
// environment variable is missing from docs/configuration.md, or when the
// reference names an environment variable no binary reads.
func TestConfigDocListsEverySetting(t *testing.T) {
	doc := readConfigDoc(t)
	settings := allSettings(t)
	if len(settings) == 0 {
		t.Fatal("no settings found")
	}
	known := map[string]bool{"SLUICE_CONFIG": true} // read by app.Main for -config
	for _, s := range settings {
		if s.env != "" {
			known[s.env] = true
			if !strings.Contains(doc, "`"+s.env+"`") {
				t.Errorf("%s: environment variable `%s` (%s) is not in %s; add:\n| `%s` | `%s` | %s | `%s` | … |",
					s.binary, s.env, s.yaml, configDocPath, s.yaml, s.env, s.typ, s.def)
			}
		}
		if !strings.Contains(doc, "`"+s.yaml+"`") {
			t.Errorf("%s: YAML key `%s` (%s, default `%s`) is not in %s", s.binary, s.yaml, s.typ, s.def, configDocPath)
		}
	}
	for _, m := range regexp.MustCompile("`(SLUICE_[A-Z0-9_]+)`").FindAllStringSubmatch(doc, -1) {
		name := m[1]
		if strings.HasSuffix(name, "_") { // a prefix, e.g. `SLUICE_GATEWAY_`
			if !slices.ContainsFunc(slices.Collect(maps.Keys(known)), func(k string) bool { return strings.HasPrefix(k, name) }) {
				t.Errorf("%s names the prefix `%s`, which no variable has", configDocPath, name)
			}
			continue
		}
		if !known[name] {
			t.Errorf("%s names `%s`, which no binary reads", configDocPath, name)
		}
	}
}

// TestConfigDocDefaults checks every table row that pairs a YAML key with
// an environment variable: the pair must exist in a binary the table is
// about, and its Default cell must show that binary's default. A table is
// about the binaries its headings name (sluice-gateway, ...), or about
// every binary when they name none.
func TestConfigDocDefaults(t *testing.T) {
	doc := readConfigDoc(t)
	type pair struct{ yaml, env string }
	defaults := map[string]map[pair]string{} // binary → pair → default
	for _, s := range allSettings(t) {
		if defaults[s.binary] == nil {
			defaults[s.binary] = map[pair]string{}
		}
		defaults[s.binary][pair{s.yaml, s.env}] = s.def
	}
	rows := 0
	for _, tbl := range markdownTables(doc) {
		yc, ec, dc := tbl.col("YAML key"), tbl.col("Environment variable"), tbl.col("Default")
		if yc < 0 || ec < 0 {
			continue
		}
		scope := slices.Compact(slices.Sorted(slices.Values(binaryNameRE.FindAllString(tbl.headings, -1))))
		if len(scope) == 0 {
			for _, b := range docBinaries() {
				scope = append(scope, b.name)
			}
		}
		for _, r := range tbl.rows {
			if len(r.cells) <= max(yc, ec, dc) {
				t.Errorf("%s:%d: row has %d cells, the header %d", configDocPath, r.line, len(r.cells), len(tbl.header))
				continue
			}
			y := backticked(r.cells[yc])
			if y == "" {
				continue
			}
			p := pair{y, backticked(r.cells[ec])} // env "" for YAML-only rows
			var want []string
			for _, b := range scope {
				if d, ok := defaults[b][p]; ok && !slices.Contains(want, d) {
					want = append(want, d)
				}
			}
			if len(want) == 0 {
				t.Errorf("%s:%d: none of %v has YAML key `%s` with environment variable %q", configDocPath, r.line, scope, p.yaml, p.env)
				continue
			}
			rows++
			if dc < 0 {
				continue
			}
			for _, d := range want {
				if !strings.Contains(r.cells[dc], "`"+d+"`") {
					t.Errorf("%s:%d: `%s`: the Default cell %q does not show the default `%s`", configDocPath, r.line, p.yaml, r.cells[dc], d)
				}
			}
		}
	}
	if rows == 0 {
		t.Errorf("%s has no settings tables (| YAML key | Environment variable | … | Default | … |)", configDocPath)
	}
}

var binaryNameRE = regexp.MustCompile(`sluice-(gateway|enricher|sink-file|sink-hec|standalone)\b`)

// TestConfigDocExamplesLoad loads every full example of the reference (a
// ```yaml block whose first line is "# <binary>.yaml") into that binary's
// configuration with config.Load, which rejects unknown keys and validates.
func TestConfigDocExamplesLoad(t *testing.T) {
	doc := readConfigDoc(t)
	for _, s := range allSettings(t) { // the examples alone, not this environment
		if _, ok := os.LookupEnv(s.env); ok && s.env != "" {
			t.Setenv(s.env, "") // config.Load treats an empty variable as unset
		}
	}
	examples := map[string]int{}
	for _, block := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(doc, -1) {
		m := regexp.MustCompile(`^# (sluice-[a-z-]+)\.yaml\n`).FindStringSubmatch(block[1])
		if m == nil {
			continue
		}
		var bin *docBinary
		for _, b := range docBinaries() {
			if b.name == m[1] {
				bin = &b
			}
		}
		if bin == nil {
			t.Errorf("example %s.yaml: no such binary", m[1])
			continue
		}
		examples[bin.name]++
		path := filepath.Join(t.TempDir(), bin.name+".yaml")
		if err := os.WriteFile(path, []byte(block[1]), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := reflect.New(reflect.TypeOf(bin.defaults))
		cfg.Elem().Set(reflect.ValueOf(bin.defaults))
		if err := config.Load(path, cfg.Interface().(config.Validator)); err != nil {
			t.Errorf("example %s.yaml in %s: %v", bin.name, configDocPath, err)
		}
	}
	for _, b := range docBinaries() {
		if examples[b.name] == 0 {
			t.Errorf("%s has no full example for %s (a ```yaml block starting \"# %s.yaml\")", configDocPath, b.name, b.name)
		}
	}
}

// TestConfigDocBinaryShapes checks that the mirrors of the service
// binaries' configurations above match the config structs in their
// main.go files, field by field with tags.
func TestConfigDocBinaryShapes(t *testing.T) {
	for _, b := range docBinaries() {
		if b.mainFile == "" {
			continue
		}
		want := structShape(reflect.TypeOf(b.defaults))
		got, err := mainConfigShape(b.mainFile)
		if err != nil {
			t.Errorf("%s: %v", b.name, err)
			continue
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: the config struct in %s is\n  %s\nbut this test mirrors it as\n  %s\nupdate the mirror and docs/configuration.md",
				b.name, b.mainFile, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
	}
}

// structShape renders a struct's fields as "<type> <tag>" lines, with the
// type as main.go spells it (package.Name).
func structShape(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		pkg := f.Type.PkgPath()
		pkg = pkg[strings.LastIndex(pkg, "/")+1:]
		switch pkg {
		case "sink-file":
			pkg = "sinkfile"
		case "sink-hec":
			pkg = "sinkhec"
		}
		out = append(out, pkg+"."+f.Type.Name()+" "+string(f.Tag))
	}
	return out
}

// mainConfigShape finds the struct in a main.go that embeds app.Common and
// renders its fields like structShape.
func mainConfigShape(path string) ([]string, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, 0)
	if err != nil {
		return nil, err
	}
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.TYPE {
			continue
		}
		for _, sp := range gd.Specs {
			st, ok := sp.(*ast.TypeSpec).Type.(*ast.StructType)
			if !ok {
				continue
			}
			var out []string
			embedsCommon := false
			for _, fl := range st.Fields.List {
				typ := exprString(fl.Type)
				if typ == "app.Common" && len(fl.Names) == 0 {
					embedsCommon = true
				}
				tag := ""
				if fl.Tag != nil {
					tag, _ = strconv.Unquote(fl.Tag.Value)
				}
				n := max(len(fl.Names), 1)
				for range n {
					out = append(out, typ+" "+tag)
				}
			}
			if embedsCommon {
				return out, nil
			}
		}
	}
	return nil, fmt.Errorf("%s: no struct embedding app.Common", path)
}

func exprString(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.SelectorExpr:
		return exprString(x.X) + "." + x.Sel.Name
	case *ast.Ident:
		return x.Name
	case *ast.StarExpr:
		return "*" + exprString(x.X)
	default:
		return fmt.Sprintf("%T", e)
	}
}

// mdTable is one Markdown table of the reference.
type mdTable struct {
	headings string // the headings the table is under, outermost first
	header   []string
	rows     []mdRow
}

type mdRow struct {
	line  int
	cells []string
}

func (t mdTable) col(name string) int {
	for i, h := range t.header {
		if strings.EqualFold(strings.TrimSpace(h), name) {
			return i
		}
	}
	return -1
}

var (
	separatorRE = regexp.MustCompile(`^\|\s*:?-`)
	headingRE   = regexp.MustCompile(`^(#{1,6})\s+(.*)$`)
)

// markdownTables finds the pipe tables of doc (outside code fences) and
// the headings each is under.
func markdownTables(doc string) []mdTable {
	var (
		out      []mdTable
		cur      *mdTable
		inFence  bool
		headings [7]string
	)
	lines := strings.Split(doc, "\n")
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if strings.HasPrefix(l, "```") {
			inFence = !inFence
		}
		if !inFence {
			if m := headingRE.FindStringSubmatch(l); m != nil {
				level := len(m[1])
				headings[level] = m[2]
				for j := level + 1; j < len(headings); j++ {
					headings[j] = ""
				}
			}
		}
		if inFence || !strings.HasPrefix(l, "|") {
			cur = nil
			continue
		}
		if cur == nil {
			if i+1 < len(lines) && separatorRE.MatchString(strings.TrimSpace(lines[i+1])) {
				out = append(out, mdTable{headings: strings.Join(headings[:], " / "), header: splitRow(l)})
				cur = &out[len(out)-1]
				i++ // the separator
			}
			continue
		}
		cur.rows = append(cur.rows, mdRow{line: i + 1, cells: splitRow(l)})
	}
	return out
}

// splitRow splits a table row into cells; a pipe inside backticks or
// escaped as \| does not split.
func splitRow(l string) []string {
	l = strings.TrimSuffix(strings.TrimPrefix(l, "|"), "|")
	var (
		cells []string
		b     strings.Builder
		code  bool
	)
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case c == '\\' && i+1 < len(l) && l[i+1] == '|':
			b.WriteByte('|')
			i++
		case c == '`':
			code = !code
			b.WriteByte(c)
		case c == '|' && !code:
			cells = append(cells, strings.TrimSpace(b.String()))
			b.Reset()
		default:
			b.WriteByte(c)
		}
	}
	return append(cells, strings.TrimSpace(b.String()))
}

// backticked returns the text of a cell that is one code span, else "".
func backticked(cell string) string {
	cell = strings.TrimSpace(cell)
	if len(cell) >= 2 && cell[0] == '`' && cell[len(cell)-1] == '`' && strings.Count(cell, "`") == 2 {
		return cell[1 : len(cell)-1]
	}
	return ""
}
