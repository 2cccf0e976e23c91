package ingest

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"strings"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/event"
)

// Source is a configured client of the gateway and its key.
type Source struct {
	ID       string        `yaml:"id"`
	Key      config.Secret `yaml:"key"`
	Families []string      `yaml:"families"` // empty: every family
	// Origins lists the origins (scheme://host[:port], or "*") of the pages
	// allowed to use a browser key (CORS, cors.go).
	Origins []string `yaml:"origins"`
	// Browser marks a public key that web pages embed: usable from the
	// Origins, and as ?key= (sendBeacon cannot set headers). Never trusted.
	Browser bool `yaml:"browser"`
	// Strict rejects event types the adapter does not know.
	Strict bool `yaml:"strict"`
	// Trusted sources are servers that may vouch for a user (edX /event
	// username); browser keys never are.
	Trusted bool `yaml:"trusted"`
	// LoopbackOnly accepts the key only from loopback addresses (the
	// standalone development key).
	LoopbackOnly bool `yaml:"loopback_only"`
	// RateLimit bounds the events and bytes per second the key may send
	// (429 past it); zero rates are unlimited.
	RateLimit RateLimit `yaml:"rate_limit"`
}

// Allows reports whether the source may send the family.
func (s *Source) Allows(f event.Family) bool {
	if len(s.Families) == 0 {
		return true
	}
	for _, x := range s.Families {
		if x == string(f) || x == "*" {
			return true
		}
	}
	return false
}

// Keys finds sources by key, comparing in constant time.
type Keys struct {
	sources  []*Source
	digests  [][32]byte
	limiters map[*Source]*sourceLimiter
}

// NewKeys indexes the sources.
func NewKeys(sources []Source) *Keys {
	k := &Keys{limiters: map[*Source]*sourceLimiter{}}
	for i := range sources {
		s := sources[i]
		k.sources = append(k.sources, &s)
		k.digests = append(k.digests, sha256.Sum256([]byte(s.Key.Value())))
		if l := newSourceLimiter(s.RateLimit); l != nil {
			k.limiters[&s] = l
		}
	}
	return k
}

// limiter returns the source's rate limiter, nil when it has none.
func (k *Keys) limiter(s *Source) *sourceLimiter { return k.limiters[s] }

// Lookup returns the source whose key is key, or nil. Every configured key
// is compared, in constant time, so timing reveals nothing about which.
func (k *Keys) Lookup(key string, remoteIP string) *Source {
	if key == "" {
		return nil
	}
	d := sha256.Sum256([]byte(key))
	var found *Source
	for i, kd := range k.digests {
		if subtle.ConstantTimeCompare(d[:], kd[:]) == 1 {
			found = k.sources[i]
		}
	}
	if found != nil && found.LoopbackOnly {
		ip := net.ParseIP(remoteIP)
		if ip == nil || !ip.IsLoopback() {
			return nil
		}
	}
	return found
}

// presentedKey reads the key from `Authorization: Bearer <key>` or the
// X-Sluice-Key header.
func presentedKey(r *http.Request) string {
	if a := r.Header.Get("Authorization"); a != "" {
		if scheme, rest, ok := strings.Cut(a, " "); ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(rest)
		}
	}
	return r.Header.Get("X-Sluice-Key")
}
