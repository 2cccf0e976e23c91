package geo

import (
	"fmt"

	"github.com/oschwald/maxminddb-golang/v2/mmdbdata"
)

// cityRecord is what Sluice reads from a city database. It understands two
// layouts:
//
//   - MaxMind's GeoIP2/GeoLite2-City (also DB-IP's own .mmdb files):
//     country{iso_code,names}, subdivisions[{iso_code,names}], city{names},
//     postal{code}, location{latitude,longitude,accuracy_radius,time_zone};
//   - ip-location-db's flat layout (the npm packages `make geoip` installs):
//     country_code, state1, city, postcode, latitude, longitude, timezone.
//
// The key "city" is a map in the first and a string in the second, so the
// record decodes itself rather than through struct tags.
type cityRecord struct {
	countryCode, countryName string
	region, regionCode       string
	city, postalCode         string
	timeZone                 string
	latitude, longitude      float64
	hasLocation              bool
	accuracyRadius           uint16
}

var _ mmdbdata.Unmarshaler = (*cityRecord)(nil)

// UnmarshalMaxMindDB implements mmdbdata.Unmarshaler.
func (c *cityRecord) UnmarshalMaxMindDB(d *mmdbdata.Decoder) error {
	*c = cityRecord{}
	var lat, lon float64
	var hasLat, hasLon bool
	return eachKey(d, func(key string) error {
		var err error
		switch key {
		case "country":
			c.countryCode, c.countryName, err = readNamed(d, "iso_code")
		case "country_code":
			c.countryCode, err = readString(d)
		case "subdivisions":
			err = readFirstSubdivision(d, c)
		case "state1":
			c.region, err = readString(d)
		case "city":
			c.city, err = readCity(d)
		case "postal":
			err = eachKey(d, func(k string) error {
				if k == "code" {
					var e error
					c.postalCode, e = readString(d)
					return e
				}
				return d.SkipValue()
			})
		case "postcode":
			c.postalCode, err = readString(d)
		case "location":
			err = eachKey(d, func(k string) error {
				var e error
				switch k {
				case "latitude":
					lat, e = readNumber(d)
					hasLat = e == nil
				case "longitude":
					lon, e = readNumber(d)
					hasLon = e == nil
				case "accuracy_radius":
					var r float64
					r, e = readNumber(d)
					if e == nil && r > 0 && r < 65536 {
						c.accuracyRadius = uint16(r)
					}
				case "time_zone":
					c.timeZone, e = readString(d)
				default:
					e = d.SkipValue()
				}
				return e
			})
		case "latitude":
			lat, err = readNumber(d)
			hasLat = err == nil
		case "longitude":
			lon, err = readNumber(d)
			hasLon = err == nil
		case "timezone":
			c.timeZone, err = readString(d)
		default:
			err = d.SkipValue()
		}
		if err == nil && hasLat && hasLon {
			c.latitude, c.longitude, c.hasLocation = lat, lon, true
		}
		return err
	})
}

// asnRecord is the layout MaxMind's GeoLite2-ASN and ip-location-db share.
type asnRecord struct {
	Number uint32 `maxminddb:"autonomous_system_number"`
	Org    string `maxminddb:"autonomous_system_organization"`
}

// eachKey calls fn for each key of the map at d; fn must consume the value.
func eachKey(d *mmdbdata.Decoder, fn func(key string) error) error {
	keys, _, err := d.ReadMap()
	if err != nil {
		return err
	}
	for k, err := range keys {
		if err != nil {
			return err
		}
		if err := fn(string(k)); err != nil {
			return err
		}
	}
	return nil
}

func readString(d *mmdbdata.Decoder) (string, error) {
	k, err := d.PeekKind()
	if err != nil {
		return "", err
	}
	if k != mmdbdata.KindString {
		return "", d.SkipValue()
	}
	return d.ReadString()
}

// readNumber reads any numeric kind as a float64; other kinds are skipped
// and reported as an error so the caller leaves the field unset.
func readNumber(d *mmdbdata.Decoder) (float64, error) {
	k, err := d.PeekKind()
	if err != nil {
		return 0, err
	}
	switch k {
	case mmdbdata.KindFloat64:
		return d.ReadFloat64()
	case mmdbdata.KindFloat32:
		f, err := d.ReadFloat32()
		return float64(f), err
	case mmdbdata.KindUint16:
		v, err := d.ReadUint16()
		return float64(v), err
	case mmdbdata.KindUint32:
		v, err := d.ReadUint32()
		return float64(v), err
	case mmdbdata.KindInt32:
		v, err := d.ReadInt32()
		return float64(v), err
	case mmdbdata.KindUint64:
		v, err := d.ReadUint64()
		return float64(v), err
	}
	if err := d.SkipValue(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("number expected, found kind %v", k)
}

// readNamed reads a {<codeKey>: "...", names: {en: "..."}} map.
func readNamed(d *mmdbdata.Decoder, codeKey string) (code, name string, err error) {
	err = eachKey(d, func(k string) error {
		var e error
		switch k {
		case codeKey:
			code, e = readString(d)
		case "names":
			name, e = readEnglish(d)
		default:
			e = d.SkipValue()
		}
		return e
	})
	return code, name, err
}

func readEnglish(d *mmdbdata.Decoder) (string, error) {
	var en string
	err := eachKey(d, func(k string) error {
		if k == "en" {
			var e error
			en, e = readString(d)
			return e
		}
		return d.SkipValue()
	})
	return en, err
}

// readCity reads the city as the flat layout's string or GeoIP2's map.
func readCity(d *mmdbdata.Decoder) (string, error) {
	k, err := d.PeekKind()
	if err != nil {
		return "", err
	}
	switch k {
	case mmdbdata.KindString:
		return d.ReadString()
	case mmdbdata.KindMap:
		var name string
		err := eachKey(d, func(k string) error {
			if k == "names" {
				var e error
				name, e = readEnglish(d)
				return e
			}
			return d.SkipValue()
		})
		return name, err
	}
	return "", d.SkipValue()
}

func readFirstSubdivision(d *mmdbdata.Decoder, c *cityRecord) error {
	items, _, err := d.ReadSlice()
	if err != nil {
		return err
	}
	first := true
	for err := range items {
		if err != nil {
			return err
		}
		if !first {
			if err := d.SkipValue(); err != nil {
				return err
			}
			continue
		}
		first = false
		code, name, err := readNamed(d, "iso_code")
		if err != nil {
			return err
		}
		c.regionCode, c.region = code, name
	}
	return nil
}
