package enricher

import (
	"context"
	"errors"
	"fmt"

	"github.com/sluicehq/sluice/pkg/avro"
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
// user agent, derived time, and the privacy policy last, so that geo sees
// the full IP and nothing the policy removes reaches the enriched topic.
func newChain(cfg Config, db *geo.DB, store *state.Store) (enrich.Chain, error) {
	policies, err := compilePolicies(cfg.Privacy)
	if err != nil {
		return nil, err
	}
	return enrich.Chain{
		resolve.New(store),
		geoStage{db: db},
		uaStage{p: useragent.New(cfg.UserAgent.CacheSize)},
		resolve.DerivedTime{MaxSkew: cfg.Time.MaxSkew},
		privacyStage{policies: policies},
	}, nil
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
	out := map[string]any{"ip_kind": string(r.Kind), "ip_source": avro.OptString(e.IPSource)}
	if r.Kind == geo.Public {
		out["country_code"] = avro.OptString(r.CountryCode)
		out["country_name"] = avro.OptString(r.CountryName)
		out["region"] = avro.OptString(r.Region)
		out["region_code"] = avro.OptString(r.RegionCode)
		out["city"] = avro.OptString(r.City)
		out["postal_code"] = avro.OptString(r.PostalCode)
		out["time_zone"] = avro.OptString(r.TimeZone)
		if r.HasLocation {
			out["latitude"], out["longitude"] = avro.Double(r.Latitude), avro.Double(r.Longitude)
		}
		if r.AccuracyRadius > 0 {
			out["accuracy_radius"] = avro.Int(int32(r.AccuracyRadius))
		}
		if r.ASN > 0 {
			out["asn"] = avro.Long(int64(r.ASN))
		}
		out["as_org"] = avro.OptString(r.ASOrg)
		out["city_db"] = avro.OptString(r.CityDB)
		out["asn_db"] = avro.OptString(r.ASNDB)
	}
	e.Out["geo"] = avro.Record(enrich.GeoName, out)
	return nil
}

// uaStage parses the event's user agent.
type uaStage struct{ p *useragent.Parser }

func (u uaStage) Process(_ context.Context, e *enrich.Event) error {
	if e.UA == "" {
		return nil
	}
	in := u.p.Parse(e.UA)
	e.Out["user_agent"] = avro.Record(enrich.UserAgentName, map[string]any{
		"source":          e.UASource,
		"browser":         avro.OptString(in.Browser),
		"browser_version": avro.OptString(in.BrowserVersion),
		"os":              avro.OptString(in.OS),
		"os_version":      avro.OptString(in.OSVersion),
		"device_type":     in.DeviceType,
		"bot":             in.Bot,
	})
	return nil
}

// privacyStage applies the family's policy.
type privacyStage struct {
	policies map[event.Family]*privacy.Policy
}

func (p privacyStage) Process(_ context.Context, e *enrich.Event) error {
	pol := p.policies[e.Family]
	if pol == nil {
		return nil
	}
	if pol.Changes() {
		e.Modified = true
	}
	e.Out["privacy"] = pol.Apply(e.Native)
	return nil
}
