// Package privacy applies a family's privacy policy to a decoded record
// before it is written to its enriched topic: the client IP kept, truncated
// (IPv4 /24, IPv6 /48) or replaced by a keyed HMAC, and named fields
// dropped or HMAC'd. Field paths are checked against the family's Avro
// schema when the policy is compiled, so a misspelt or impossible path is a
// configuration error at start, not a dead letter at run time.
package privacy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/services/enricher/internal/enrich"
)

// IP actions.
const (
	IPKeep     = "keep"
	IPTruncate = "truncate"
	IPHMAC     = "hmac"
)

// Key is an HMAC key with the id written next to every value it hashed, so
// a key can be rotated: values hashed under different keys never look
// alike, and data teams see which key made each.
type Key struct {
	ID     string
	Secret []byte
}

// Rules is a family's policy as configured.
type Rules struct {
	IP   string   // keep, truncate or hmac ("" is keep)
	Drop []string // field paths, e.g. username, context.user_id, envelope.user_agent
	HMAC []string
}

// Policy is a compiled family policy. It is safe for concurrent use.
type Policy struct {
	family  event.Family
	ip      string
	key     Key
	ipPaths []*path
	drop    []*path
	hmac    []*path
	dropRaw bool
}

// ipFields are the fields holding a client IP, per family; the IP action
// applies to each (and envelope.ip everywhere). Enrichment copies are
// listed too: a policy must not be undone by the copy.
var ipFields = map[event.Family][]string{
	event.EdX:        {"ip"},
	event.CrowdFrame: {"details.ip", "enrichment.crowdframe.ip"},
}

// mirrors are the enrichment fields that copy (or are derived from) a
// record field. A rule on the record field applies to its copies; a
// derived field (a URL built from parts, a selector) is dropped whenever
// one of its parts is dropped or hashed.
var mirrors = map[event.Family]map[string][]mirror{
	event.EdX: {
		"context.course_id": {{"enrichment.edx.course_id", false}},
		"context.org_id":    {{"enrichment.edx.org_id", false}},
	},
	event.CrowdFrame: {
		"details.ua": {{"enrichment.crowdframe.ua", false}},
	},
	event.Weaklayer: {
		"install.label":            {{"enrichment.weaklayer.install_label", false}},
		"install.userAgent":        {{"enrichment.weaklayer.install_user_agent", false}},
		"window_location.hostname": {{"enrichment.weaklayer.hostname", false}, {"enrichment.weaklayer.url", true}},
		"window_location.path":     {{"enrichment.weaklayer.url", true}},
		"window_location.search":   {{"enrichment.weaklayer.url", true}},
		"window_location.hash":     {{"enrichment.weaklayer.url", true}},
	},
	event.Workstation: {
		"manifest.user.name":       {{"enrichment.workstation.user_name", false}},
		"manifest.user.login":      {{"enrichment.workstation.user_login", false}},
		"manifest.user.domain":     {{"enrichment.workstation.user_domain", false}},
		"manifest.computer.name":   {{"enrichment.workstation.computer_name", false}},
		"manifest.computer.domain": {{"enrichment.workstation.computer_domain", false}},
	},
	event.Clicks: {
		"session":           {{"enrichment.clicks.session", false}},
		"page":              {{"enrichment.clicks.page", false}},
		"info.target.id":    {{"enrichment.clicks.target_id", false}, {"enrichment.clicks.target", true}},
		"info.target.name":  {{"enrichment.clicks.target_name", false}, {"enrichment.clicks.target", true}},
		"info.target.class": {{"enrichment.clicks.target_classes", true}, {"enrichment.clicks.target", true}},
	},
}

type mirror struct {
	path    string
	derived bool // drop the mirror whatever the rule
}

// Compile checks rules against the family's composed schema text and
// returns the policy. key is needed when anything is hashed.
func Compile(f event.Family, schema string, r Rules, key Key) (*Policy, error) {
	sch, err := parseSchema(schema)
	if err != nil {
		return nil, fmt.Errorf("privacy %s: %w", f, err)
	}
	p := &Policy{family: f, ip: r.IP, key: key}
	if p.ip == "" {
		p.ip = IPKeep
	}
	var errs []error
	switch p.ip {
	case IPKeep, IPTruncate, IPHMAC:
	default:
		errs = append(errs, fmt.Errorf("ip: %q is not keep, truncate or hmac", r.IP))
	}
	needKey := p.ip == IPHMAC || len(r.HMAC) > 0
	if needKey && (key.ID == "" || len(key.Secret) < 16) {
		errs = append(errs, errors.New("hmac needs a key id and a key of at least 16 bytes (privacy.hmac_key_id, privacy.hmac_key)"))
	}
	if strings.ContainsRune(key.ID, ':') {
		errs = append(errs, errors.New("the hmac key id must not contain ':'"))
	}
	add := func(list *[]*path, raw string, hashing bool) {
		pt, err := sch.compile(raw, hashing)
		if err != nil {
			errs = append(errs, err)
			return
		}
		*list = append(*list, pt)
	}
	if p.ip != IPKeep {
		for _, fld := range append([]string{"envelope.ip"}, ipFields[f]...) {
			add(&p.ipPaths, fld, true)
		}
	}
	for _, d := range r.Drop {
		add(&p.drop, d, false)
		for _, m := range mirrors[f][d] {
			add(&p.drop, m.path, false)
		}
	}
	for _, h := range r.HMAC {
		add(&p.hmac, h, true)
		for _, m := range mirrors[f][h] {
			if m.derived {
				add(&p.drop, m.path, false)
			} else {
				add(&p.hmac, m.path, true)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("privacy %s: %w", f, err)
	}
	// The raw bytes would undo every rule: drop them whenever there is one.
	if p.ip != IPKeep || len(p.drop) > 0 || len(p.hmac) > 0 {
		p.dropRaw = true
		raw, err := sch.compile("envelope.raw", false)
		if err != nil {
			return nil, fmt.Errorf("privacy %s: %w", f, err)
		}
		p.drop = append(p.drop, raw)
	}
	p.drop = dedupe(p.drop)
	p.hmac = dedupe(p.hmac)
	return p, nil
}

func dedupe(ps []*path) []*path {
	seen := map[string]bool{}
	out := ps[:0]
	for _, p := range ps {
		if !seen[p.text] {
			seen[p.text] = true
			out = append(out, p)
		}
	}
	return out
}

// Changes reports whether the policy changes anything (then the record is
// re-encoded rather than copied).
func (p *Policy) Changes() bool {
	return p.ip != IPKeep || len(p.drop) > 0 || len(p.hmac) > 0
}

// Apply applies the policy to native (with its enrichment already set) and
// returns the sluice.Privacy union value saying what was done.
func (p *Policy) Apply(native map[string]any) any {
	dropped, hashed := []any{}, []any{}
	usedKey := false
	for _, pt := range p.ipPaths {
		pt.update(native, func(v string) (string, bool) {
			switch p.ip {
			case IPTruncate:
				return TruncateIP(v), true
			case IPHMAC:
				usedKey = true
				return p.sum(v), true
			}
			return v, true
		})
	}
	for _, pt := range p.hmac {
		if pt.update(native, func(v string) (string, bool) { return p.sum(v), true }) {
			hashed = append(hashed, pt.text)
			usedKey = true
		}
	}
	for _, pt := range p.drop {
		if pt.clear(native) {
			dropped = append(dropped, pt.text)
		}
	}
	out := map[string]any{"ip": p.ip, "dropped": dropped, "hashed": hashed, "key_id": nil}
	if usedKey {
		out["key_id"] = avro.String(p.key.ID)
	}
	return avro.Record(enrich.PrivacyName, out)
}

// sum is <key id>:<base64url HMAC-SHA256 of v>.
func (p *Policy) sum(v string) string {
	m := hmac.New(sha256.New, p.key.Secret)
	m.Write([]byte(v))
	return p.key.ID + ":" + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// TruncateIP zeroes the host part of an address: IPv4 to its /24, IPv6 to
// its /48. A port is dropped with it. An unparseable value becomes "", which
// the caller stores as null.
func TruncateIP(s string) string {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		ap, err2 := netip.ParseAddrPort(strings.TrimSpace(s))
		if err2 != nil {
			return ""
		}
		a = ap.Addr()
	}
	a = a.Unmap().WithZone("")
	bits := 48
	if a.Is4() {
		bits = 24
	}
	pf, err := a.Prefix(bits)
	if err != nil {
		return ""
	}
	return pf.Addr().String()
}

// path is a compiled field path.
type path struct {
	text  string
	segs  []string
	leaf  leafKind
	toStr bool // hashing a non-string union value: write the string branch
}

type leafKind int

const (
	leafNullable leafKind = iota // a union with null: cleared to null
	leafString                   // cleared to ""
	leafBytes
	leafArray
	leafMap
)

// parent walks to the record holding the leaf. Records and union branches
// are stepped through alike.
func (pt *path) parent(native map[string]any) map[string]any {
	cur := native
	for _, s := range pt.segs[:len(pt.segs)-1] {
		cur = enrich.Rec(cur[s])
		if cur == nil {
			return nil
		}
	}
	return cur
}

// update replaces a string value (plain or in a union) by fn's result; a
// non-string union value (edX user_id as a long) is replaced by the string
// branch when the union has one. It reports whether a value was there.
func (pt *path) update(native map[string]any, fn func(string) (string, bool)) bool {
	par := pt.parent(native)
	if par == nil {
		return false
	}
	last := pt.segs[len(pt.segs)-1]
	switch v := par[last].(type) {
	case string:
		if v == "" {
			return false
		}
		nv, _ := fn(v)
		par[last] = nv
		return true
	case map[string]any:
		if len(v) != 1 {
			return false
		}
		if s, ok := v["string"].(string); ok {
			nv, _ := fn(s)
			if nv == "" {
				par[last] = nil
			} else {
				par[last] = avro.String(nv)
			}
			return true
		}
		if !pt.toStr {
			return false
		}
		for _, x := range v {
			var s string
			switch t := x.(type) {
			case int64:
				s = strconv.FormatInt(t, 10)
			case int32:
				s = strconv.FormatInt(int64(t), 10)
			case float64:
				s = strconv.FormatFloat(t, 'g', -1, 64)
			case bool:
				s = strconv.FormatBool(t)
			default:
				return false
			}
			nv, _ := fn(s)
			par[last] = avro.String(nv)
			return true
		}
	}
	return false
}

// clear drops the leaf. It reports whether there was a value to drop.
func (pt *path) clear(native map[string]any) bool {
	par := pt.parent(native)
	if par == nil {
		return false
	}
	last := pt.segs[len(pt.segs)-1]
	v, ok := par[last]
	if !ok || v == nil {
		return false
	}
	switch pt.leaf {
	case leafNullable:
		par[last] = nil
	case leafString:
		if v == "" {
			return false
		}
		par[last] = ""
	case leafBytes:
		par[last] = []byte{}
	case leafArray:
		if a, _ := v.([]any); len(a) == 0 {
			return false
		}
		par[last] = []any{}
	case leafMap:
		if m, _ := v.(map[string]any); len(m) == 0 {
			return false
		}
		par[last] = map[string]any{}
	}
	return true
}
