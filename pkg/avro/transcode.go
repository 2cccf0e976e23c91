package avro

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"
)

// Transcoder renders Avro binary bodies of one schema as JSON directly,
// without building native values: the same bytes as DecodeBody followed by
// AppendJSON, several times faster and without allocating per field. On
// the way it picks out the values at a few dotted field paths (unions are
// stepped through), so that a sink needs no native value at all.
//
// A Transcoder is safe for concurrent use.
type Transcoder struct {
	root  *tnode
	trie  *capture
	paths []string
	pool  sync.Pool // *mapScratch
}

// tnode is a schema node compiled for transcoding.
type tnode struct {
	kind     tkind
	keys     [][]byte // record: each field's `"name":` (`,"name":` after the first)
	names    []string // record: field names
	fields   []*tnode // record
	branches []*tnode // union
	items    *tnode   // array and map
}

type tkind uint8

const (
	tRecord tkind = iota
	tUnion
	tArray
	tMap
	tNull
	tBoolean
	tInt
	tLong
	tTimestampMicros
	tTimestampMillis
	tFloat
	tDouble
	tString
	tBytes
)

// capture is a node of the path trie.
type capture struct {
	index  int                 // value index of a path ending here, -1 for none
	fields map[string]*capture // by field name
	// byRecord gives, for each record this node can be, the capture of
	// each of its fields by position (nil where nothing is captured), so
	// that the walk needs no lookup per field.
	byRecord map[*tnode][]*capture
}

// bind fills byRecord for the records c can meet at n, through unions.
func (c *capture) bind(n *tnode, seen map[[2]any]bool) {
	if c == nil || seen[[2]any{c, n}] {
		return
	}
	seen[[2]any{c, n}] = true
	switch n.kind {
	case tUnion:
		for _, b := range n.branches {
			c.bind(b, seen)
		}
	case tRecord:
		subs := make([]*capture, len(n.fields))
		found := false
		for i, name := range n.names {
			if sub := c.fields[name]; sub != nil {
				subs[i] = sub
				found = true
				sub.bind(n.fields[i], seen)
			}
		}
		if found {
			if c.byRecord == nil {
				c.byRecord = map[*tnode][]*capture{}
			}
			c.byRecord[n] = subs
		}
	}
}

// ErrTranscode is wrapped by every error of Transcoder.AppendJSON: the body
// does not match the schema.
var ErrTranscode = errors.New("avro: body does not match the schema")

// NewTranscoder builds a transcoder that captures the values at paths
// (e.g. "envelope.received_at"). It fails for schemas with constructs it
// does not render (enum, fixed, logical types other than timestamp-millis
// and timestamp-micros); callers then use DecodeBody and AppendJSON.
func (c *Codec) NewTranscoder(paths ...string) (*Transcoder, error) {
	root, err := compile(c.shape, map[*node]*tnode{})
	if err != nil {
		return nil, err
	}
	t := &Transcoder{root: root, paths: paths, trie: &capture{index: -1}}
	for i, p := range paths {
		n := t.trie
		for _, name := range strings.Split(p, ".") {
			if n.fields == nil {
				n.fields = map[string]*capture{}
			}
			next := n.fields[name]
			if next == nil {
				next = &capture{index: -1}
				n.fields[name] = next
			}
			n = next
		}
		n.index = i
	}
	t.trie.bind(root, map[[2]any]bool{})
	return t, nil
}

// Paths returns the captured paths, in value order.
func (t *Transcoder) Paths() []string { return t.paths }

// compile builds the transcoding tree of n; done holds the records being
// or already compiled (records may refer to themselves).
func compile(n *node, done map[*node]*tnode) (*tnode, error) {
	unsupported := func() (*tnode, error) { return nil, fmt.Errorf("avro: transcoding %s is not supported", n.name) }
	switch n.kind {
	case "record":
		if t, ok := done[n]; ok {
			return t, nil
		}
		t := &tnode{kind: tRecord}
		done[n] = t
		for i, f := range n.fields {
			var k []byte
			if i > 0 {
				k = append(k, ',')
			}
			k = appendString(k, f.name)
			ft, err := compile(f.node, done)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f.name, err)
			}
			t.keys = append(t.keys, append(k, ':'))
			t.names = append(t.names, f.name)
			t.fields = append(t.fields, ft)
		}
		return t, nil
	case "union":
		t := &tnode{kind: tUnion}
		for _, b := range n.branches {
			bt, err := compile(b, done)
			if err != nil {
				return nil, err
			}
			t.branches = append(t.branches, bt)
		}
		return t, nil
	case "array", "map":
		items, err := compile(n.items, done)
		if err != nil {
			return nil, err
		}
		k := tArray
		if n.kind == "map" {
			k = tMap
		}
		return &tnode{kind: k, items: items}, nil
	case "long":
		switch n.logical {
		case "":
			return &tnode{kind: tLong}, nil
		case "timestamp-micros":
			return &tnode{kind: tTimestampMicros}, nil
		case "timestamp-millis":
			return &tnode{kind: tTimestampMillis}, nil
		}
		return unsupported()
	}
	if n.logical != "" {
		return unsupported()
	}
	k, ok := map[string]tkind{"null": tNull, "boolean": tBoolean, "int": tInt, "float": tFloat, "double": tDouble,
		"string": tString, "bytes": tBytes}[n.kind]
	if !ok {
		return unsupported()
	}
	return &tnode{kind: k}, nil
}

// AppendJSON appends the JSON of body (an Avro binary body, without the
// wire-format header) to dst, and sets vals[i] to the value at the i-th
// path: string, []byte (aliasing body), bool, int32, int64, float32,
// float64, time.Time, or map[string]any for a map; nil when the path is
// null or absent. vals must have one element per path.
func (t *Transcoder) AppendJSON(dst, body []byte, vals []any) ([]byte, error) {
	if len(vals) < len(t.paths) {
		return nil, fmt.Errorf("avro: %d values for %d paths", len(vals), len(t.paths))
	}
	clear(vals)
	start := len(dst)
	out, rest, err := t.walk(dst, t.root, body, t.trie, vals)
	if err != nil {
		return dst[:start], err
	}
	if len(rest) != 0 {
		return dst[:start], fmt.Errorf("%w: %d trailing bytes after record", ErrTranscode, len(rest))
	}
	return out, nil
}

var errShort = fmt.Errorf("%w: unexpected end of data", ErrTranscode)

func readLong(src []byte) (int64, []byte, error) {
	var u uint64
	for shift, i := uint(0), 0; i < len(src) && i < 10; i, shift = i+1, shift+7 {
		b := src[i]
		u |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return int64(u>>1) ^ -int64(u&1), src[i+1:], nil
		}
	}
	return 0, nil, errShort
}

func readBytes(src []byte) ([]byte, []byte, error) {
	n, src, err := readLong(src)
	if err != nil {
		return nil, nil, err
	}
	if n < 0 || n > int64(len(src)) {
		return nil, nil, fmt.Errorf("%w: length %d with %d bytes left", ErrTranscode, n, len(src))
	}
	return src[:n:n], src[n:], nil
}

// walk renders one value of n from src and returns the rest of src.
func (t *Transcoder) walk(dst []byte, n *tnode, src []byte, c *capture, vals []any) ([]byte, []byte, error) {
	capIdx := -1
	if c != nil {
		capIdx = c.index
	}
	switch n.kind {
	case tRecord:
		dst = append(dst, '{')
		var subs []*capture
		if c != nil {
			subs = c.byRecord[n]
		}
		var err error
		for i, f := range n.fields {
			dst = append(dst, n.keys[i]...)
			var sub *capture
			if subs != nil {
				sub = subs[i]
			}
			if dst, src, err = t.walk(dst, f, src, sub, vals); err != nil {
				return nil, nil, err
			}
		}
		return append(dst, '}'), src, nil
	case tUnion:
		i, rest, err := readLong(src)
		if err != nil {
			return nil, nil, err
		}
		if i < 0 || i >= int64(len(n.branches)) {
			return nil, nil, fmt.Errorf("%w: union branch %d of %d", ErrTranscode, i, len(n.branches))
		}
		return t.walk(dst, n.branches[i], rest, c, vals)
	case tNull:
		return append(dst, "null"...), src, nil
	case tBoolean:
		if len(src) < 1 {
			return nil, nil, errShort
		}
		v := src[0] != 0
		if capIdx >= 0 {
			vals[capIdx] = v
		}
		if v {
			return append(dst, "true"...), src[1:], nil
		}
		return append(dst, "false"...), src[1:], nil
	case tInt, tLong:
		v, rest, err := readLong(src)
		if err != nil {
			return nil, nil, err
		}
		if capIdx >= 0 {
			if n.kind == tInt {
				vals[capIdx] = int32(v)
			} else {
				vals[capIdx] = v
			}
		}
		return strconv.AppendInt(dst, v, 10), rest, nil
	case tTimestampMicros, tTimestampMillis:
		v, rest, err := readLong(src)
		if err != nil {
			return nil, nil, err
		}
		var ts time.Time
		if n.kind == tTimestampMicros {
			ts = time.UnixMicro(v).UTC()
		} else {
			ts = time.UnixMilli(v).UTC()
		}
		if capIdx >= 0 {
			vals[capIdx] = ts
		}
		dst = append(dst, '"')
		dst = appendRFC3339(dst, ts)
		return append(dst, '"'), rest, nil
	case tFloat:
		if len(src) < 4 {
			return nil, nil, errShort
		}
		f := math.Float32frombits(uint32(src[0]) | uint32(src[1])<<8 | uint32(src[2])<<16 | uint32(src[3])<<24)
		if capIdx >= 0 {
			vals[capIdx] = f
		}
		return appendFloat(dst, float64(f), 32), src[4:], nil
	case tDouble:
		if len(src) < 8 {
			return nil, nil, errShort
		}
		var u uint64
		for i := 7; i >= 0; i-- {
			u = u<<8 | uint64(src[i])
		}
		f := math.Float64frombits(u)
		if capIdx >= 0 {
			vals[capIdx] = f
		}
		return appendFloat(dst, f, 64), src[8:], nil
	case tString:
		b, rest, err := readBytes(src)
		if err != nil {
			return nil, nil, err
		}
		if capIdx >= 0 {
			vals[capIdx] = string(b)
		}
		return appendStringFast(dst, b), rest, nil
	case tBytes:
		b, rest, err := readBytes(src)
		if err != nil {
			return nil, nil, err
		}
		if capIdx >= 0 {
			vals[capIdx] = b
		}
		if utf8.Valid(b) {
			return appendStringFast(dst, b), rest, nil
		}
		dst = append(dst, `{"base64":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, b)
		return append(dst, `"}`...), rest, nil
	case tArray:
		dst = append(dst, '[')
		first := true
		for {
			count, rest, err := readBlockCount(src)
			if err != nil {
				return nil, nil, err
			}
			src = rest
			if count == 0 {
				return append(dst, ']'), src, nil
			}
			for ; count > 0; count-- {
				if !first {
					dst = append(dst, ',')
				}
				first = false
				if dst, src, err = t.walk(dst, n.items, src, nil, vals); err != nil {
					return nil, nil, err
				}
			}
		}
	case tMap:
		return t.walkMap(dst, n, src, capIdx, vals)
	}
	return nil, nil, fmt.Errorf("avro: transcoding kind %d is not supported", n.kind)
}

// safeASCII marks the bytes a JSON string holds as they are.
var safeASCII = func() (t [256]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\'
	}
	return t
}()

// appendStringFast is appendString for bytes, with a fast path over runs
// of plain ASCII; anything else goes to appendString.
func appendStringFast(dst, b []byte) []byte {
	i := 0
	for i < len(b) && safeASCII[b[i]] {
		i++
	}
	if i == len(b) {
		dst = append(dst, '"')
		dst = append(dst, b...)
		return append(dst, '"')
	}
	return appendString(dst, bytesString(b))
}

// appendRFC3339 appends t (UTC) as time.RFC3339Nano does, without the
// general formatter.
func appendRFC3339(dst []byte, t time.Time) []byte {
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(dst, time.RFC3339Nano)
	}
	hour, min, sec := t.Clock()
	dst = append(dst, byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-',
		byte('0'+int(month)/10), byte('0'+int(month)%10), '-', byte('0'+day/10), byte('0'+day%10), 'T',
		byte('0'+hour/10), byte('0'+hour%10), ':', byte('0'+min/10), byte('0'+min%10), ':', byte('0'+sec/10), byte('0'+sec%10))
	if ns := t.Nanosecond(); ns != 0 {
		var frac [10]byte
		frac[0] = '.'
		for i := 9; i >= 1; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 10
		for frac[n-1] == '0' {
			n--
		}
		dst = append(dst, frac[:n]...)
	}
	return append(dst, 'Z')
}

// readBlockCount reads an array or map block's count; a negative count is
// followed by the block's size in bytes, which is skipped.
func readBlockCount(src []byte) (int64, []byte, error) {
	count, src, err := readLong(src)
	if err != nil {
		return 0, nil, err
	}
	if count < 0 {
		if _, src, err = readLong(src); err != nil {
			return 0, nil, err
		}
		count = -count
	}
	// Null items take no bytes, so the data left does not bound the count.
	if count > 1<<24 {
		return 0, nil, fmt.Errorf("%w: block of %d items", ErrTranscode, count)
	}
	return count, src, nil
}

type mapEntry struct {
	key        string
	start, end int // of the rendered value in the scratch buffer
}

type mapScratch struct {
	buf     []byte
	entries []mapEntry
}

// walkMap renders a map with its keys sorted, as AppendJSON does.
func (t *Transcoder) walkMap(dst []byte, n *tnode, src []byte, capIdx int, vals []any) ([]byte, []byte, error) {
	sc, _ := t.pool.Get().(*mapScratch)
	if sc == nil {
		sc = &mapScratch{}
	}
	defer t.pool.Put(sc)
	sc.buf, sc.entries = sc.buf[:0], sc.entries[:0]
	var captured map[string]any
	if capIdx >= 0 {
		captured = map[string]any{}
	}
	scratch := make([]any, 1)
	valCap := &capture{index: 0}
	for {
		count, rest, err := readBlockCount(src)
		if err != nil {
			return nil, nil, err
		}
		src = rest
		if count == 0 {
			break
		}
		for ; count > 0; count-- {
			k, rest, err := readBytes(src)
			if err != nil {
				return nil, nil, err
			}
			src = rest
			e := mapEntry{key: string(k), start: len(sc.buf)}
			c := (*capture)(nil)
			if captured != nil {
				c = valCap
				scratch[0] = nil
			}
			if sc.buf, src, err = t.walk(sc.buf, n.items, src, c, scratch); err != nil {
				return nil, nil, err
			}
			e.end = len(sc.buf)
			sc.entries = append(sc.entries, e)
			if captured != nil {
				captured[e.key] = scratch[0]
			}
		}
	}
	slices.SortFunc(sc.entries, func(a, b mapEntry) int { return strings.Compare(a.key, b.key) })
	dst = append(dst, '{')
	for i, e := range sc.entries {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, e.key)
		dst = append(dst, ':')
		dst = append(dst, sc.buf[e.start:e.end]...)
	}
	if capIdx >= 0 {
		vals[capIdx] = captured
	}
	return append(dst, '}'), src, nil
}

// bytesString views b as a string for appendString, which only reads it.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
