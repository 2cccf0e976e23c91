// Package useragent parses User-Agent strings into browser, OS, device type
// and bot flag, with a bounded LRU cache in front of the parser: the same
// few thousand agents make up nearly all of a site's traffic, and a parse
// costs far more than a cache hit.
package useragent

import (
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"
	ua "github.com/mileusna/useragent"
)

// Device types.
const (
	Desktop = "desktop"
	Mobile  = "mobile"
	Tablet  = "tablet"
	Bot     = "bot"
	Unknown = "unknown"
)

// Info is a parsed user agent.
type Info struct {
	Browser        string
	BrowserVersion string
	OS             string
	OSVersion      string
	DeviceType     string
	Bot            bool
}

// MaxLen bounds the agent text that is parsed and cached; longer agents
// (seen in attacks, never from real browsers) are cut.
const MaxLen = 512

// Parser parses with a cache. It is safe for concurrent use.
type Parser struct {
	cache *lru.Cache[string, Info]
}

// New returns a parser caching up to size agents (size < 1: no cache).
func New(size int) *Parser {
	p := &Parser{}
	if size > 0 {
		c, err := lru.New[string, Info](size)
		if err == nil { // only fails for size <= 0
			p.cache = c
		}
	}
	return p
}

// Parse parses s.
func (p *Parser) Parse(s string) Info {
	if len(s) > MaxLen {
		s = s[:MaxLen]
	}
	if p.cache != nil {
		if in, ok := p.cache.Get(s); ok {
			return in
		}
	}
	in := parse(s)
	if p.cache != nil {
		// Clone: s may share memory with a large decoded record that the
		// cache would otherwise keep alive.
		p.cache.Add(strings.Clone(s), in)
	}
	return in
}

// Len returns the number of cached agents.
func (p *Parser) Len() int {
	if p.cache == nil {
		return 0
	}
	return p.cache.Len()
}

func parse(s string) Info {
	u := ua.Parse(s)
	in := Info{
		Browser:        u.Name,
		BrowserVersion: u.Version,
		OS:             u.OS,
		OSVersion:      u.OSVersion,
		Bot:            u.Bot,
	}
	switch {
	case u.Bot:
		in.DeviceType = Bot
	case u.Tablet:
		in.DeviceType = Tablet
	case u.Mobile:
		in.DeviceType = Mobile
	case u.Desktop:
		in.DeviceType = Desktop
	default:
		in.DeviceType = Unknown
	}
	return in
}
