package sinkhec

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/event"
)

// Indexed fields the sink always adds, so that duplicates of at-least-once
// delivery can be removed at search time (dedup kafka.topic kafka.partition
// kafka.offset).
const (
	FieldTopic     = "kafka.topic"
	FieldPartition = "kafka.partition"
	FieldOffset    = "kafka.offset"
)

// formatter renders enriched events as HEC event objects.
type formatter struct {
	families map[event.Family]*mapping
}

type mapping struct {
	family                          event.Family
	index, source, sourcetype, host string
	explicit                        Mapping // as configured, to tell set from defaulted
	// paths are the values an event of the family needs, in the order of
	// the vals given to appendEvent: see the idx* constants, then the
	// host field (when set), then the indexed fields.
	paths     []string
	hostIdx   int // -1 without host_field
	fieldIdx  int // index of the first mapped field
	fieldName []string
}

// Value indexes common to every family.
const (
	idxClientTime = iota
	idxReceivedAt
	idxCommon
)

// Value indexes of the hec family, after the common ones.
const (
	idxHECEvent = idxCommon + iota
	idxHECTime
	idxHECHost
	idxHECSource
	idxHECSourcetype
	idxHECIndex
	idxHECFields
	idxHECEnd
)

func newFormatter(cfg Config) *formatter {
	f := &formatter{families: map[event.Family]*mapping{}}
	given := map[string]Mapping{}
	for _, m := range cfg.Families {
		given[m.Family] = m
	}
	for _, fam := range event.Families {
		g := given[string(fam)]
		m := &mapping{family: fam, explicit: g, index: g.Index, source: g.Source, sourcetype: g.Sourcetype, host: g.Host, hostIdx: -1}
		if m.index == "" {
			m.index = cfg.Index
		}
		if m.source == "" {
			m.source = event.EnrichedTopic(fam)
		}
		if m.sourcetype == "" {
			m.sourcetype = "sluice:" + string(fam)
		}
		m.paths = []string{"envelope.client_time", "envelope.received_at"}
		if fam == event.HEC {
			m.paths = append(m.paths, "event_json", "time", "host", "source", "sourcetype", "index", "fields")
		}
		if g.HostField != "" {
			m.hostIdx = len(m.paths)
			m.paths = append(m.paths, g.HostField)
		}
		m.fieldIdx = len(m.paths)
		for _, p := range g.Fields {
			m.paths = append(m.paths, p)
			m.fieldName = append(m.fieldName, p)
		}
		f.families[fam] = m
	}
	return f
}

// values fills vals (len(m.paths)) from a native value, for schemas the
// transcoder does not take.
func (m *mapping) values(native any, vals []any) {
	for i, p := range m.paths {
		vals[i], _ = lookup(native, strings.Split(p, "."))
	}
}

// appendEvent appends the HEC event object of one enriched event: body is
// the event rendered as JSON, vals the values at m.paths.
func (m *mapping) appendEvent(dst []byte, topic string, partition int32, offset int64, vals []any, body []byte, recTime time.Time) []byte {
	t := eventTime(vals, recTime)
	index, source, sourcetype, host := m.index, m.source, m.sourcetype, m.host
	var hecFields map[string]any
	if m.family == event.HEC {
		// An event that came in through the gateway's HEC endpoint goes out
		// as it came: its own event, time and metadata, unless mapped.
		if ej, ok := vals[idxHECEvent].(string); ok && json.Valid([]byte(ej)) {
			body = []byte(ej)
		}
		if v, ok := vals[idxHECTime].(float64); ok {
			t = time.Unix(0, int64(v*1e9)).UTC()
		}
		pick := func(set string, own any, def string) string {
			if set != "" {
				return set
			}
			if s, ok := own.(string); ok && s != "" {
				return s
			}
			return def
		}
		index = pick(m.explicit.Index, vals[idxHECIndex], index)
		source = pick(m.explicit.Source, vals[idxHECSource], source)
		sourcetype = pick(m.explicit.Sourcetype, vals[idxHECSourcetype], sourcetype)
		host = pick(m.explicit.Host, vals[idxHECHost], host)
		hecFields, _ = vals[idxHECFields].(map[string]any)
	}
	if m.hostIdx >= 0 {
		if s, ok := scalarString(vals[m.hostIdx]); ok && s != "" {
			host = s
		}
	}
	dst = append(dst, `{"time":`...)
	dst = appendTime(dst, t)
	for _, kv := range [...]struct{ k, v string }{{"host", host}, {"source", source}, {"sourcetype", sourcetype}, {"index", index}} {
		if kv.v != "" {
			dst = append(dst, ',', '"')
			dst = append(dst, kv.k...)
			dst = append(dst, '"', ':')
			dst = avro.AppendJSONString(dst, kv.v)
		}
	}
	dst = append(dst, `,"fields":{"`+FieldTopic+`":`...)
	dst = avro.AppendJSONString(dst, topic)
	dst = append(dst, `,"`+FieldPartition+`":"`...)
	dst = strconv.AppendInt(dst, int64(partition), 10)
	dst = append(dst, `","`+FieldOffset+`":"`...)
	dst = strconv.AppendInt(dst, offset, 10)
	dst = append(dst, '"')
	if len(hecFields) > 0 {
		keys := make([]string, 0, len(hecFields))
		for k := range hecFields {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			s, ok := hecFields[k].(string)
			if !ok || k == FieldTopic || k == FieldPartition || k == FieldOffset {
				continue
			}
			dst = append(dst, ',')
			dst = avro.AppendJSONString(dst, k)
			dst = append(dst, ':')
			// Arrays of strings were kept as JSON text.
			if strings.HasPrefix(s, "[") && json.Valid([]byte(s)) {
				dst = append(dst, s...)
			} else {
				dst = avro.AppendJSONString(dst, s)
			}
		}
	}
	for i, name := range m.fieldName {
		s, ok := scalarString(vals[m.fieldIdx+i])
		if !ok {
			continue
		}
		dst = append(dst, ',')
		dst = avro.AppendJSONString(dst, name)
		dst = append(dst, ':')
		dst = avro.AppendJSONString(dst, s)
	}
	dst = append(dst, `},"event":`...)
	dst = append(dst, body...)
	return append(dst, '}')
}

// eventTime is the device's time of the event, else when the gateway
// received it, else the record's timestamp.
func eventTime(vals []any, recTime time.Time) time.Time {
	if t, ok := vals[idxClientTime].(time.Time); ok && !t.IsZero() {
		return t
	}
	if t, ok := vals[idxReceivedAt].(time.Time); ok && !t.IsZero() {
		return t
	}
	return recTime
}

// appendTime appends t as epoch seconds with microseconds, as HEC reads
// "<sec>.<fraction>".
func appendTime(dst []byte, t time.Time) []byte {
	us := t.UnixMicro()
	if us < 0 {
		return strconv.AppendFloat(dst, float64(us)/1e6, 'f', 6, 64)
	}
	dst = strconv.AppendInt(dst, us/1e6, 10)
	frac := us % 1e6
	dst = append(dst, '.')
	for d := int64(100000); d > 0; d /= 10 {
		dst = append(dst, byte('0'+frac/d%10))
	}
	return dst
}

// lookup follows a dotted path through a decoded Avro value, stepping
// through union wrappers.
func lookup(v any, path []string) (any, bool) {
	for _, k := range path {
		m, ok := unwrap(v).(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[k]; !ok {
			return nil, false
		}
	}
	v = unwrap(v)
	return v, v != nil
}

// unwrap returns the value of a decoded union ({"string": "x"} → "x"):
// a one-key map whose key is an Avro type name.
func unwrap(v any) any {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return v
	}
	for k, x := range m {
		switch {
		case k == "string" || k == "int" || k == "long" || k == "float" || k == "double" || k == "boolean" ||
			k == "bytes" || k == "array" || k == "map" || strings.Contains(k, "."):
			return x
		}
	}
	return v
}

// scalarString renders a scalar as an indexed field value.
func scalarString(v any) (string, bool) {
	switch t := v.(type) {
	case string:
		return t, true
	case []byte:
		return string(t), true
	case bool:
		return strconv.FormatBool(t), true
	case int32:
		return strconv.FormatInt(int64(t), 10), true
	case int64:
		return strconv.FormatInt(t, 10), true
	case float32:
		return strconv.FormatFloat(float64(t), 'g', -1, 32), true
	case float64:
		return strconv.FormatFloat(t, 'g', -1, 64), true
	case time.Time:
		return t.UTC().Format(time.RFC3339Nano), true
	}
	return "", false
}
