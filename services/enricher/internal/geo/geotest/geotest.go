// Package geotest writes small MaxMind-format databases for tests, in the
// layouts the enricher reads: GeoIP2-City (nested), ip-location-db city
// (flat) and ASN.
package geotest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// City is one network of a city database.
type City struct {
	Network        string // CIDR
	CountryCode    string
	CountryName    string // GeoIP2 layout only; the flat layout has none
	Region         string
	RegionCode     string
	City           string
	PostalCode     string
	Latitude       float64
	Longitude      float64
	AccuracyRadius uint16
	TimeZone       string
}

// ASN is one network of an ASN database.
type ASN struct {
	Network string
	Number  uint32
	Org     string
}

// BuildEpoch is the build time of every database written: 2026-06-01, so
// the enrichment's city_db and asn_db read <type>@2026-06-01.
var BuildEpoch = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC).Unix()

// Known test data: public addresses with made-up but plausible answers.
var (
	London = City{Network: "81.2.69.0/24", CountryCode: "GB", CountryName: "United Kingdom", Region: "England",
		RegionCode: "ENG", City: "London", PostalCode: "EC1A", Latitude: 51.5142, Longitude: -0.0931,
		AccuracyRadius: 10, TimeZone: "Europe/London"}
	Zurich = City{Network: "2a02:168::/32", CountryCode: "CH", CountryName: "Switzerland", Region: "Zurich",
		RegionCode: "ZH", City: "Zurich", PostalCode: "8001", Latitude: 47.37, Longitude: 8.54,
		AccuracyRadius: 20, TimeZone: "Europe/Zurich"}
	LondonASN = ASN{Network: "81.2.69.0/24", Number: 20712, Org: "Andrews & Arnold Ltd"}
	ZurichASN = ASN{Network: "2a02:168::/32", Number: 13030, Org: "Init7 (Switzerland) Ltd."}
)

// WriteCity writes a GeoIP2-City layout database (IPv6 tree, IPv4 aliased)
// to dir/name and returns its path.
func WriteCity(dir, name string, cities ...City) (string, error) {
	t, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoIP2-City", RecordSize: 28, IPVersion: 6, BuildEpoch: BuildEpoch})
	if err != nil {
		return "", err
	}
	for _, c := range cities {
		rec := mmdbtype.Map{
			"country": mmdbtype.Map{"iso_code": mmdbtype.String(c.CountryCode),
				"names": mmdbtype.Map{"en": mmdbtype.String(c.CountryName), "de": mmdbtype.String("x")}},
			"subdivisions": mmdbtype.Slice{mmdbtype.Map{"iso_code": mmdbtype.String(c.RegionCode),
				"names": mmdbtype.Map{"en": mmdbtype.String(c.Region)}}},
			"city":   mmdbtype.Map{"geoname_id": mmdbtype.Uint32(1), "names": mmdbtype.Map{"en": mmdbtype.String(c.City)}},
			"postal": mmdbtype.Map{"code": mmdbtype.String(c.PostalCode)},
			"location": mmdbtype.Map{"latitude": mmdbtype.Float64(c.Latitude), "longitude": mmdbtype.Float64(c.Longitude),
				"accuracy_radius": mmdbtype.Uint16(c.AccuracyRadius), "time_zone": mmdbtype.String(c.TimeZone)},
		}
		if err := insert(t, c.Network, rec); err != nil {
			return "", err
		}
	}
	return write(t, dir, name)
}

// WriteFlatCity writes an ip-location-db layout city database (the files
// `make geoip` installs): country_code, state1, city, postcode, latitude,
// longitude, timezone, in an IPv4-only tree when v4 is set.
func WriteFlatCity(dir, name string, v4 bool, cities ...City) (string, error) {
	ver := 6
	if v4 {
		ver = 4
	}
	t, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: fmt.Sprintf("city ipv%d", ver), RecordSize: 28, IPVersion: ver, BuildEpoch: BuildEpoch})
	if err != nil {
		return "", err
	}
	for _, c := range cities {
		rec := mmdbtype.Map{
			"country_code": mmdbtype.String(c.CountryCode),
			"state1":       mmdbtype.String(c.Region),
			"state2":       mmdbtype.String(""),
			"city":         mmdbtype.String(c.City),
			"postcode":     mmdbtype.String(c.PostalCode),
			"latitude":     mmdbtype.Float32(float32(c.Latitude)),
			"longitude":    mmdbtype.Float32(float32(c.Longitude)),
			"timezone":     mmdbtype.String(c.TimeZone),
		}
		if err := insert(t, c.Network, rec); err != nil {
			return "", err
		}
	}
	return write(t, dir, name)
}

// WriteASN writes an ASN database.
func WriteASN(dir, name string, asns ...ASN) (string, error) {
	t, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoLite2-ASN", RecordSize: 24, IPVersion: 6, BuildEpoch: BuildEpoch})
	if err != nil {
		return "", err
	}
	for _, a := range asns {
		rec := mmdbtype.Map{
			"autonomous_system_number":       mmdbtype.Uint32(a.Number),
			"autonomous_system_organization": mmdbtype.String(a.Org),
		}
		if err := insert(t, a.Network, rec); err != nil {
			return "", err
		}
	}
	return write(t, dir, name)
}

func insert(t *mmdbwriter.Tree, cidr string, rec mmdbtype.Map) error {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return err
	}
	return t.Insert(n, rec)
}

// write writes the tree next to its destination and renames it into place,
// as a database update should be done.
func write(t *mmdbwriter.Tree, dir, name string) (string, error) {
	path := filepath.Join(dir, name)
	tmp, err := os.CreateTemp(dir, name+".*.tmp")
	if err != nil {
		return "", err
	}
	if _, err := t.WriteTo(tmp); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	return path, os.Rename(tmp.Name(), path)
}
