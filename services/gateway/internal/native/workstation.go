package native

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/unicode"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/services/gateway/internal/adapter"
	"github.com/sluicehq/sluice/services/gateway/internal/ingest"
)

// WorkstationConfig configures POST /v1/workstation/archives.
type WorkstationConfig struct {
	// AllowAnonymous accepts archives that present no Sluice key. Off by
	// default: agents are configured once, so give them a key.
	AllowAnonymous bool `yaml:"allow_anonymous" env:"ALLOW_ANONYMOUS"`
	// MaxEntries bounds the entries of one archive's zip directory.
	MaxEntries int `yaml:"max_entries" env:"MAX_ENTRIES"`
	// MaxUncompressedBytes bounds the inflated size of the files read
	// from one archive; the compressed archive is bounded by
	// limits.max_body_bytes.
	MaxUncompressedBytes int64 `yaml:"max_uncompressed_bytes" env:"MAX_UNCOMPRESSED_BYTES"`
	// MaxRatio bounds uncompressed/compressed of one entry over 1 MiB.
	MaxRatio int64 `yaml:"max_ratio" env:"MAX_RATIO"`
	// TextEncoding reads an entry or log line that is not UTF-8:
	// windows-1251 (the agent's Russian-Windows origin), iso-8859-1, or
	// none to reject such entries with reason invalid_encoding. Each
	// transcoded record carries the quirk text_<encoding>.
	TextEncoding string `yaml:"text_encoding" env:"TEXT_ENCODING"`
	// RepairJSON fixes missing and trailing commas in activity entries
	// (the vendor's own example lacks one) instead of rejecting them; a
	// repaired record carries the quirk json_missing_comma.
	RepairJSON bool `yaml:"repair_json" env:"REPAIR_JSON"`
}

// WorkstationDefaults returns the defaults.
func WorkstationDefaults() WorkstationConfig {
	return WorkstationConfig{
		MaxEntries: 32, MaxUncompressedBytes: 64 << 20, MaxRatio: 100,
		TextEncoding: "windows-1251", RepairJSON: true,
	}
}

// Validate reports every problem.
func (c WorkstationConfig) Validate() error {
	var p config.Problems
	if c.MaxEntries < 2 {
		p.Addf("max_entries: must be at least 2 (a manifest and a file)")
	}
	if c.MaxUncompressedBytes < 1<<20 {
		p.Addf("max_uncompressed_bytes: must be at least 1 MiB")
	}
	if c.MaxRatio < 1 {
		p.Addf("max_ratio: must be at least 1")
	}
	if _, ok := textEncodings[strings.ToLower(c.TextEncoding)]; !ok {
		p.Addf("text_encoding: %q is not one of windows-1251, iso-8859-1, none", c.TextEncoding)
	}
	return p.Err()
}

var textEncodings = map[string]encoding.Encoding{
	"windows-1251": charmap.Windows1251, "cp1251": charmap.Windows1251,
	"iso-8859-1": charmap.ISO8859_1, "latin-1": charmap.ISO8859_1, "latin1": charmap.ISO8859_1,
	"none": nil,
}

// textDecoder turns the bytes of one entry into UTF-8.
type textDecoder struct {
	enc   encoding.Encoding // nil: non-UTF-8 entries are rejected
	quirk string
}

func newTextDecoder(name string) textDecoder {
	name = strings.ToLower(name)
	enc := textEncodings[name]
	if enc == nil {
		return textDecoder{}
	}
	q := "text_windows_1251"
	if enc == charmap.ISO8859_1 {
		q = "text_iso_8859_1"
	}
	return textDecoder{enc: enc, quirk: q}
}

// entry returns b as UTF-8 and the quirk of transcoding it, or ok false
// when b is not UTF-8 and no encoding is configured.
func (d textDecoder) entry(b []byte) ([]byte, string, bool) {
	if utf8.Valid(b) {
		return b, "", true
	}
	if d.enc == nil {
		return nil, "", false
	}
	out, err := d.enc.NewDecoder().Bytes(b)
	if err != nil {
		return nil, "", false
	}
	return out, d.quirk, true
}

// fileText removes a UTF-8 byte-order mark, or decodes a UTF-16 file that
// starts with one (whole file).
func fileText(b []byte) ([]byte, string, bool) {
	switch {
	case bytes.HasPrefix(b, []byte{0xEF, 0xBB, 0xBF}):
		return b[3:], "utf8_bom", true
	case bytes.HasPrefix(b, []byte{0xFF, 0xFE}), bytes.HasPrefix(b, []byte{0xFE, 0xFF}):
		out, err := unicode.UTF16(unicode.LittleEndian, unicode.ExpectBOM).NewDecoder().Bytes(b)
		if err != nil {
			return nil, "", false
		}
		return out, "utf16_file", true
	}
	return b, "", true
}

// fileResult is one archive file's outcome in the reply.
type fileResult struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	*ingest.Result
}

// archiveReply is the reply of the archive endpoint.
type archiveReply struct {
	Accepted    int          `json:"accepted"`
	Rejected    int          `json:"rejected"`
	MachineGUID string       `json:"machine_guid"`
	ArchiveType string       `json:"archive_type,omitempty"`
	Files       []fileResult `json:"files"`
	Ignored     []string     `json:"ignored_entries,omitempty"`
}

// handleArchive serves POST /v1/workstation/archives: an Operavix/MUAM
// agent archive (seed 004), as the raw body (application/zip or
// octet-stream) or as a multipart form file. It reads manifest.json and
// then each of activity.json, inspector_log.json, service_log.json and
// timetracking_log.json present: one record per activity entry and per
// log line, each with the manifest. Entries that cannot be read are
// rejected one by one with a reason and dead-lettered; the archive as a
// whole is refused only when it is not a safe zip or has no usable
// manifest.
func (n *Native) handleArchive(c echo.Context) error {
	src, err := n.source(c, event.Workstation, n.cfg.Workstation.AllowAnonymous)
	if err != nil {
		return err
	}
	r := c.Request()
	mt, params, err := mediaType(r)
	if err != nil {
		return err
	}
	var data []byte
	switch mt {
	case "multipart/form-data":
		if enc := r.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "identity") {
			return errorf(http.StatusUnsupportedMediaType, "unsupported_encoding", "a multipart archive upload cannot be content-encoded")
		}
		if data, err = archiveFromMultipart(r, params["boundary"], n.s.Limits().MaxBodyBytes); err != nil {
			return err
		}
	case "", "application/zip", "application/x-zip-compressed", "application/octet-stream":
		body, release, err := n.s.ReadBody(r)
		if err != nil {
			return err
		}
		defer release()
		data = body
	default:
		return errorf(http.StatusUnsupportedMediaType, "unsupported_media_type",
			"Content-Type %q is not supported (send the zip as application/zip or as a multipart file)", mt)
	}
	// A retried upload of the same archive gets the same event ids
	// (docs/retries.md): the batch id is the client's Idempotency-Key, else
	// the archive's SHA-256; each file is its own batch within it.
	bid, err := n.batchID(c)
	if err != nil {
		return err
	}
	if bid == "" {
		sum := sha256.Sum256(data)
		bid = "sha256:" + hex.EncodeToString(sum[:])
	}
	wc := n.cfg.Workstation
	arch, err := readArchive(data, archiveLimits{maxEntries: wc.MaxEntries, maxTotal: wc.MaxUncompressedBytes, maxRatio: wc.MaxRatio})
	if err != nil {
		return err
	}
	dec := newTextDecoder(wc.TextEncoding)
	man, err := archiveManifest(arch, dec, wc.RepairJSON)
	if err != nil {
		return err
	}
	reply := archiveReply{MachineGUID: man.MachineGUID, ArchiveType: man.Type, Ignored: arch.ignored, Files: []fileResult{}}
	meta := n.s.Meta(c)
	var unavailable *ingest.Result // the last file's result that Kafka took none of
	var rateLimited time.Duration
	for _, name := range archiveFiles[1:] {
		text, ok := arch.files[name]
		if !ok {
			continue
		}
		version, items, adapt := n.archiveFileItems(name, text, man, dec, wc.RepairJSON, arch.quirks)
		res := n.ingestChunks(c, &ingest.Request{
			Family: event.Workstation, Endpoint: "/v1/workstation/archives", SourceKey: src.id, Strict: src.strict,
			BatchID: bid + "/" + name, Meta: meta, Adapt: adapt,
		}, items)
		if res.Unavailable != nil {
			unavailable = res
		}
		rateLimited = max(rateLimited, res.RateLimited)
		reply.Accepted += res.Accepted
		reply.Rejected += res.Rejected
		reply.Files = append(reply.Files, fileResult{Name: name, Version: version, Result: res})
	}
	switch {
	case rateLimited > 0 && reply.Accepted == 0:
		c.Response().Header().Set("Retry-After", ingest.RetryAfterHeader(rateLimited))
		return c.JSON(http.StatusTooManyRequests, reply)
	case unavailable != nil && reply.Accepted == 0:
		n.setRetryAfter(c, unavailable)
		return c.JSON(http.StatusServiceUnavailable, reply)
	case reply.Rejected > 0:
		return c.JSON(http.StatusMultiStatus, reply)
	}
	return c.JSON(http.StatusOK, reply)
}

// ingestChunks ingests items in batches of at most limits.max_events (an
// archive may hold more entries than one request may) and merges the
// results, indexes counting from the file's first entry.
func (n *Native) ingestChunks(c echo.Context, req *ingest.Request, items []ingest.Item) *ingest.Result {
	step := n.s.Limits().MaxEvents
	total := &ingest.Result{Errors: []event.Rejection{}}
	for off := 0; off < len(items); off += step {
		r := *req
		r.Items = items[off:min(off+step, len(items))]
		r.IndexOffset = off
		res := n.s.Ingest(ingestCtx(c), &r)
		total.Accepted += res.Accepted
		total.Rejected += res.Rejected
		for _, e := range res.Errors {
			e.Index += off
			total.Errors = append(total.Errors, e)
		}
		if res.Unavailable != nil {
			total.Unavailable = res.Unavailable
		}
		total.RateLimited = max(total.RateLimited, res.RateLimited)
		total.DLQFailed = total.DLQFailed || res.DLQFailed
	}
	return total
}

// archiveManifest reads and validates manifest.json.
func archiveManifest(a *archive, dec textDecoder, repair bool) (*adapter.WorkstationManifest, error) {
	b, ok := a.files["manifest.json"]
	if !ok {
		return nil, errorf(http.StatusBadRequest, "missing_manifest", "the archive has no manifest.json")
	}
	b, _, ok = fileText(b)
	if !ok {
		return nil, errorf(http.StatusBadRequest, "invalid_manifest", "manifest.json is not valid UTF-16")
	}
	if b, _, ok = dec.entry(b); !ok {
		return nil, errorf(http.StatusBadRequest, "invalid_manifest", "manifest.json is not UTF-8 and no text_encoding is configured")
	}
	if !json.Valid(b) && repair {
		if fixed, _, ok := repairJSON(b); ok {
			b = fixed
		}
	}
	m, err := decodeJSONObject(b)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "invalid_manifest", "manifest.json: %v", err)
	}
	man, rj := adapter.ParseWorkstationManifest(m)
	if rj != nil {
		return nil, errorf(http.StatusBadRequest, "invalid_manifest", "manifest.json: %s: %s", rj.Field, rj.Message)
	}
	return man, nil
}

// decodeJSONObject decodes one JSON object, numbers as json.Number.
func decodeJSONObject(b []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("not a JSON object: %v", err)
	}
	if d.More() {
		return nil, fmt.Errorf("data after the JSON object")
	}
	if m == nil {
		return nil, fmt.Errorf("not a JSON object")
	}
	return m, nil
}

// archiveFileItems frames one agent file into items and returns the
// adapter that builds their records with the manifest.
func (n *Native) archiveFileItems(name string, text []byte, man *adapter.WorkstationManifest, dec textDecoder, repair bool,
	archQuirks []string) (string, []ingest.Item, func(*adapter.Input) (*adapter.Output, *event.Rejection)) {
	text, fq, ok := fileText(text)
	if !ok {
		return "", []ingest.Item{ingest.RejectedItem(nil, event.Reject("invalid_encoding", "", "%s starts with a UTF-16 byte-order mark but is not valid UTF-16", name))}, nil
	}
	quirks := append([]string(nil), archQuirks...)
	if fq != "" {
		quirks = append(quirks, fq)
	}
	if name == "activity.json" {
		version, items := activityItems(text, dec, repair, quirks)
		return version, items, func(in *adapter.Input) (*adapter.Output, *event.Rejection) {
			return adapter.Workstation{}.Activity(man, "", version, in.Value)
		}
	}
	version, items := logItems(name, text, dec, quirks)
	return version, items, func(in *adapter.Input) (*adapter.Output, *event.Rejection) {
		l, rj := logLineFromJSON(in.Value)
		if rj != nil {
			return nil, rj
		}
		return adapter.Workstation{}.Log(man, "", version, l)
	}
}

// rawEntry is one top-level value of an activity file.
type rawEntry struct {
	raw  []byte
	line int    // 1-based line where it starts
	err  string // why it could not even be delimited
}

// splitActivity cuts activity.json into its header and entries: the
// leading {"version": ...} line, then records written one after the other
// (pretty-printed or one per line), in a JSON array, or separated by
// commas. Entries are delimited by matching braces outside strings, so a
// record with a missing comma inside is still one entry; text that is not
// an object becomes an entry of its own, up to the end of its line.
func splitActivity(b []byte) (version string, entries []rawEntry) {
	i, line := 0, 1
	advance := func(to int) {
		line += bytes.Count(b[i:to], []byte{'\n'})
		i = to
	}
	first := true
	for {
		j := i
		for j < len(b) && (b[j] == ' ' || b[j] == '\t' || b[j] == '\n' || b[j] == '\r' || b[j] == ',' || b[j] == '[' || b[j] == ']') {
			j++
		}
		advance(j)
		if i >= len(b) {
			return version, entries
		}
		if b[i] != '{' {
			end := bytes.IndexByte(b[i:], '\n')
			if end < 0 {
				end = len(b) - i
			}
			entries = append(entries, rawEntry{raw: b[i : i+end], line: line, err: "not a JSON object"})
			advance(i + end)
			first = false
			continue
		}
		end, ok := objectEnd(b, i)
		if !ok {
			entries = append(entries, rawEntry{raw: b[i:], line: line, err: "the object is not closed (truncated file?)"})
			return version, entries
		}
		if first {
			first = false
			if v, ok := adapter.FileVersion(string(b[i:end])); ok {
				version = v
				advance(end)
				continue
			}
		}
		entries = append(entries, rawEntry{raw: b[i:end], line: line})
		advance(end)
	}
}

// activityItems frames the entries of activity.json.
func activityItems(text []byte, dec textDecoder, repair bool, fileQuirks []string) (string, []ingest.Item) {
	version, entries := splitActivity(text)
	items := make([]ingest.Item, 0, len(entries))
	for _, e := range entries {
		where := "activity.json entry at line " + strconv.Itoa(e.line)
		if e.err != "" {
			items = append(items, ingest.RejectedItem(e.raw, event.Reject(event.ReasonInvalidJSON, "", "%s: %s", where, e.err)))
			continue
		}
		raw, q, ok := dec.entry(e.raw)
		if !ok {
			items = append(items, ingest.RejectedItem(e.raw, event.Reject("invalid_encoding", "", "%s is not UTF-8 and no text_encoding is configured", where)))
			continue
		}
		quirks := append([]string(nil), fileQuirks...)
		if q != "" {
			quirks = append(quirks, q)
		}
		if json.Valid(raw) {
			items = append(items, ingest.NewItem(raw, quirks...))
			continue
		}
		if repair {
			if fixed, rq, ok := repairJSON(raw); ok {
				items = append(items, ingest.NewItem(fixed, append(quirks, rq...)...))
				continue
			}
		}
		msg := syntaxError(raw)
		if repair {
			msg += " (not a missing or trailing comma, which would have been repaired)"
		}
		items = append(items, ingest.RejectedItem(raw, event.Reject(event.ReasonInvalidJSON, "", "%s is not valid JSON: %s", where, msg)))
	}
	return version, items
}

// syntaxError describes why b is not JSON, with the line within b.
func syntaxError(b []byte) string {
	var v any
	err := json.Unmarshal(b, &v)
	var se *json.SyntaxError
	if ok := asSyntax(err, &se); ok {
		off := int(se.Offset)
		if off > len(b) {
			off = len(b)
		}
		return fmt.Sprintf("%v (line %d of the entry)", se, bytes.Count(b[:off], []byte{'\n'})+1)
	}
	if err != nil {
		return err.Error()
	}
	return "unknown error"
}

// logItems frames the entries of an agent log file: one item per log line
// (continuation lines joined), the version header read.
func logItems(name string, text []byte, dec textDecoder, fileQuirks []string) (string, []ingest.Item) {
	version, lines, bad := adapter.ParseLogFile(string(text))
	items := make([]ingest.Item, 0, len(lines)+len(bad))
	// Keep file order: merge good and bad entries by line number.
	gi, bi := 0, 0
	for gi < len(lines) || bi < len(bad) {
		if bi < len(bad) && (gi >= len(lines) || bad[bi].LineNo < lines[gi].LineNo) {
			b := bad[bi]
			bi++
			txt, q, ok := dec.entry([]byte(b.Text))
			if !ok {
				items = append(items, ingest.RejectedItem([]byte(b.Text), event.Reject("invalid_encoding", "", "%s line %d is not UTF-8 and no text_encoding is configured", name, b.LineNo)))
				continue
			}
			raw, _ := marshalJSON(map[string]any{"file": name, "line_no": b.LineNo, "line": string(txt)})
			if q != "" {
				raw, _ = marshalJSON(map[string]any{"file": name, "line_no": b.LineNo, "line": string(txt), "transcoded": q})
			}
			items = append(items, ingest.RejectedItem(raw, event.Reject(event.ReasonInvalidField, "log.line", "%s line %d: %v", name, b.LineNo, b.Err)))
			continue
		}
		l := lines[gi]
		gi++
		quirks := append([]string(nil), fileQuirks...)
		fields := map[string]*string{"level": &l.Level, "component": &l.Component, "method": &l.Method, "message": &l.Message}
		okAll, transcoded := true, ""
		for _, k := range []string{"level", "component", "method", "message"} {
			p := fields[k]
			out, q, ok := dec.entry([]byte(*p))
			if !ok {
				okAll = false
				break
			}
			*p = string(out)
			if q != "" {
				transcoded = q
			}
		}
		if !okAll {
			items = append(items, ingest.RejectedItem([]byte(l.Message), event.Reject("invalid_encoding", "", "%s line %d is not UTF-8 and no text_encoding is configured", name, l.LineNo)))
			continue
		}
		if transcoded != "" {
			quirks = append(quirks, transcoded)
		}
		rec := map[string]any{"file": name, "line_no": l.LineNo, "level": l.Level, "component": l.Component, "method": l.Method, "message": l.Message}
		if l.PID >= 0 {
			rec["pid"] = l.PID
		}
		if l.TID >= 0 {
			rec["tid"] = l.TID
		}
		raw, err := marshalJSON(rec)
		if err != nil {
			items = append(items, ingest.RejectedItem([]byte(l.Message), event.Reject(event.ReasonInvalidField, "log.message", "%s line %d cannot be rendered: %v", name, l.LineNo, err)))
			continue
		}
		items = append(items, ingest.NewItem(raw, quirks...))
	}
	return version, items
}

// logLineFromJSON rebuilds the LogLine framed by logItems.
func logLineFromJSON(v map[string]any) (adapter.LogLine, *event.Rejection) {
	l := adapter.LogLine{PID: -1, TID: -1}
	for _, p := range []struct {
		key string
		dst *int64
	}{{"pid", &l.PID}, {"tid", &l.TID}} {
		if x, ok := v[p.key].(json.Number); ok {
			n, err := x.Int64()
			if err != nil || n < 0 {
				return l, event.Reject(event.ReasonInvalidField, "log."+p.key, "must be a non-negative integer")
			}
			*p.dst = n
		}
	}
	if x, ok := v["line_no"].(json.Number); ok {
		if n, err := x.Int64(); err == nil && n > 0 && n < 1<<31 {
			l.LineNo = int(n)
		}
	}
	l.Level, _ = v["level"].(string)
	l.Component, _ = v["component"].(string)
	l.Method, _ = v["method"].(string)
	msg, ok := v["message"].(string)
	if !ok {
		return l, event.Reject(event.ReasonMissingField, "log.message", "is required")
	}
	l.Message = msg
	return l, nil
}
