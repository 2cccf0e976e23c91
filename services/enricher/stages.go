package enricher

import (
	"context"
	"errors"
	"fmt"

	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/services/enricher/internal/enrich"
	"github.com/sluicehq/sluice/services/enricher/internal/geo"
	"github.com/sluicehq/sluice/services/enricher/internal/privacy"
	"github.com/sluicehq/sluice/services/enricher/internal/resolve"
	"github.com/sluicehq/sluice/services/enricher/internal/state"
	"github.com/sluicehq/sluice/services/enricher/internal/useragent"
)

// newChain builds the enrichment stages in their order: context resolution
// (which also picks the IP and user agent that describe the client), geo,
// user agent and derived time. The privacy policy is applied by the
// handler after the chain, so that geo sees the full IP and nothing the
// policy removes reaches the enriched topic.
func newChain(cfg Config, db *geo.DB, store *state.Store) enrich.Chain {
	return enrich.Chain{
		resolve.New(store),
		geoStage{db: db},
		uaStage{p: useragent.New(cfg.UserAgent.CacheSize)},
		resolve.DerivedTime{MaxSkew: cfg.Time.MaxSkew},
	}
}

// compilePolicies checks every family's privacy policy against its schema.
func compilePolicies(cfg PrivacyConfig) (map[event.Family]*privacy.Policy, error) {
	key := privacy.Key{ID: cfg.HMACKeyID, Secret: []byte(cfg.HMACKey.Value())}
	out := map[event.Family]*privacy.Policy{}
	var errs []error
	for _, f := range event.Families {
		text, err := schemas.Latest(string(f))
		if err != nil {
			return nil, err
		}
		fp := cfg.Family(f)
		p, err := privacy.Compile(f, text, privacy.Rules{IP: fp.IP, Drop: fp.Drop, HMAC: fp.HMAC}, key)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[f] = p
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("enricher: %w", errors.Join(errs...))
	}
	return out, nil
}

// geoStage looks the event's client IP up.
type geoStage struct{ db *geo.DB }

func (g geoStage) Process(_ context.Context, e *enrich.Event) error {
	var r geo.Result
	g.db.LookupString(e.IP, &r)
	out := &enrich.Geo{IPKind: string(r.Kind), IPSource: e.IPSource}
	if r.Kind == geo.Public {
		out.CountryCode, out.CountryName = r.CountryCode, r.CountryName
		out.Region, out.RegionCode, out.City, out.PostalCode = r.Region, r.RegionCode, r.City, r.PostalCode
		out.TimeZone = r.TimeZone
		out.HasLocation, out.Latitude, out.Longitude = r.HasLocation, r.Latitude, r.Longitude
		out.AccuracyRadius = int32(r.AccuracyRadius)
		out.ASN, out.ASOrg = int64(r.ASN), r.ASOrg
		out.CityDB, out.ASNDB = r.CityDB, r.ASNDB
	}
	e.Enr.Geo = out
	return nil
}

// uaStage parses the event's user agent.
type uaStage struct{ p *useragent.Parser }

func (u uaStage) Process(_ context.Context, e *enrich.Event) error {
	if e.UA == "" {
		return nil
	}
	in := u.p.Parse(e.UA)
	e.Enr.UserAgent = &enrich.UserAgent{
		Source:         e.UASource,
		Browser:        in.Browser,
		BrowserVersion: in.BrowserVersion,
		OS:             in.OS,
		OSVersion:      in.OSVersion,
		DeviceType:     in.DeviceType,
		Bot:            in.Bot,
	}
	return nil
}
