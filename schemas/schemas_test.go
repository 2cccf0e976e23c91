package schemas

import (
	"strconv"
	"strings"
	"testing"

	"github.com/linkedin/goavro/v2"
)

// TestEverySchemaCompiles compiles every version of every schema, composed
// with the shared records, with goavro: a schema that does not compile
// fails the build.
func TestEverySchemaCompiles(t *testing.T) {
	names, err := Names()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range append(Families, DLQ) {
		found := false
		for _, n := range names {
			found = found || n == f
		}
		if !found {
			t.Errorf("schema %q is missing", f)
		}
	}
	for _, n := range names {
		vs, err := Versions(n)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			t.Run(n+"/v"+strconv.Itoa(v.Version), func(t *testing.T) {
				text, err := Compose(v.Text)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := goavro.NewCodec(text); err != nil {
					t.Fatalf("goavro rejects %s/v%d: %v", n, v.Version, err)
				}
			})
		}
	}
}

// TestFamilySchemasFollowTheConventions checks what consumers rely on: the
// record name, the envelope first and the nullable enrichment last.
func TestFamilySchemasFollowTheConventions(t *testing.T) {
	for _, f := range Families {
		text, err := Latest(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(text, `"name":"Event"`) || !strings.Contains(text, `"namespace":"sluice.`+f+`"`) {
			t.Errorf("%s: record must be sluice.%s.Event", f, f)
		}
		first := strings.Index(text, `"name":"envelope"`)
		last := strings.LastIndex(text, `"name":"enrichment"`)
		if first < 0 || last < 0 || first > last {
			t.Errorf("%s: envelope must come first and enrichment last", f)
		}
	}
}

// TestSchemaVersionsAreBackwardCompatible checks each version against the
// one before it: a change that breaks backward compatibility fails the build.
func TestSchemaVersionsAreBackwardCompatible(t *testing.T) {
	names, err := Names()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		vs, err := Versions(n)
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(vs); i++ {
			newer, err := Compose(vs[i].Text)
			if err != nil {
				t.Fatal(err)
			}
			older, err := Compose(vs[i-1].Text)
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckBackward(newer, older); err != nil {
				t.Errorf("%s v%d breaks v%d: %v", n, vs[i].Version, vs[i-1].Version, err)
			}
		}
	}
}

func TestCheckBackward(t *testing.T) {
	base := `{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":["null","string"],"default":null}]}`
	for _, tc := range []struct {
		name, reader string
		ok           bool
	}{
		{"same", base, true},
		{"added field with default", `{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":["null","string"],"default":null},{"name":"c","type":["null","long"],"default":null}]}`, true},
		{"added field without default", `{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":["null","string"],"default":null},{"name":"c","type":"long"}]}`, false},
		{"removed field", `{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}`, true},
		{"promoted int to long", `{"type":"record","name":"R","fields":[{"name":"a","type":"long"},{"name":"b","type":["null","string"],"default":null}]}`, true},
		{"narrowed to non-null", `{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string"}]}`, false},
		{"changed type", `{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":["null","string"],"default":null}]}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckBackward(tc.reader, base)
			if (err == nil) != tc.ok {
				t.Fatalf("CheckBackward = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
