package native

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"

	"github.com/sluicehq/sluice/pkg/event"
)

// TestRetriedArchiveKeepsItsEventIDs uploads the same archive twice (a
// client retry after a lost answer) and another archive: the retry's
// records carry the same event ids, and ids are unique within an archive
// across its files and its chunks of max_events.
func TestRetriedArchiveKeepsItsEventIDs(t *testing.T) {
	e := newEnv(t, nil)
	var act bytes.Buffer
	act.WriteString(`{"version":"1.0.9"}` + "\n")
	n := e.limits.MaxEvents + 5 // two chunks
	for i := range n {
		fmt.Fprintf(&act, `{"time":%d,"time_ms":%d,"window_activity":{"type":95,"input_type":1}}`+"\n", 1692694112+i, i%1000)
	}
	zip := func(activity []byte) []byte {
		return buildZip(t,
			zipEntry{"manifest.json", readFile(t, "testdata/workstation/docs_manifest_example.json")},
			zipEntry{"activity.json", activity},
			zipEntry{"inspector_log.json", readFile(t, "testdata/workstation/inspector_log.json")},
		)
	}
	first := zip(act.Bytes())
	for i, body := range [][]byte{first, first, zip(act.Bytes()[:act.Len()-1])} {
		if st, a := e.archive(body, nil); st != http.StatusOK {
			t.Fatalf("upload %d: %d %+v", i, st, a)
		}
	}
	per := n + 12 // activity entries and inspector log lines
	recs := e.raw(event.Workstation, 3*per)
	ids := func(rs []record) map[string]bool {
		m := map[string]bool{}
		for _, r := range rs {
			m[r.envelope()["event_id"].(string)] = true
		}
		return m
	}
	a, b, c := ids(recs[:per]), ids(recs[per:2*per]), ids(recs[2*per:])
	if len(a) != per || len(b) != per || len(c) != per {
		t.Fatalf("distinct ids per upload: %d %d %d, want %d", len(a), len(b), len(c), per)
	}
	for id := range a {
		if !b[id] {
			t.Fatalf("the retry has another id set (%s missing)", id)
		}
		if c[id] {
			t.Fatalf("another archive shares the id %s", id)
		}
	}
	// An Idempotency-Key, when given, names the batch instead.
	if st, _ := e.archive(first, map[string]string{"Idempotency-Key": "upload-1"}); st != http.StatusOK {
		t.Fatal(st)
	}
	for _, r := range e.raw(event.Workstation, 4*per)[3*per:] {
		if bid, _ := r.envelope()["batch_id"].(map[string]any); bid == nil || len(fmt.Sprint(bid["string"])) < len("upload-1/") {
			t.Fatalf("batch_id %v", r.envelope()["batch_id"])
		}
	}
}
