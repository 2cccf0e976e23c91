package geo_test

import (
	"math"
	"net/netip"
	"testing"

	"github.com/sluicehq/sluice/services/enricher/internal/geo"
	"github.com/sluicehq/sluice/services/enricher/internal/geo/geotest"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		in   string
		kind geo.Kind
		addr string
	}{
		{"", geo.Absent, ""},
		{"  ", geo.Absent, ""},
		{"81.2.69.142", geo.Public, "81.2.69.142"},
		{"81.2.69.142:5678", geo.Public, "81.2.69.142"},
		{"[2a02:168::1]:443", geo.Public, "2a02:168::1"},
		{"[2a02:168::1]", geo.Public, "2a02:168::1"},
		{"::ffff:81.2.69.142", geo.Public, "81.2.69.142"},
		{"10.1.2.3", geo.Private, "10.1.2.3"},
		{"192.168.0.1", geo.Private, "192.168.0.1"},
		{"172.16.5.4", geo.Private, "172.16.5.4"},
		{"100.64.0.1", geo.Private, "100.64.0.1"},
		{"169.254.1.1", geo.Private, "169.254.1.1"},
		{"fd00::1", geo.Private, "fd00::1"},
		{"fe80::1%eth0", geo.Private, "fe80::1"},
		{"127.0.0.1", geo.Loopback, "127.0.0.1"},
		{"::1", geo.Loopback, "::1"},
		{"0.0.0.0", geo.Reserved, "0.0.0.0"},
		{"224.0.0.1", geo.Reserved, "224.0.0.1"},
		{"255.255.255.255", geo.Reserved, "255.255.255.255"},
		{"not an ip", geo.Unparseable, ""},
		{"1.2.3", geo.Unparseable, ""},
		{"unknown", geo.Unparseable, ""},
	} {
		a, k := geo.Classify(tc.in)
		if k != tc.kind {
			t.Errorf("Classify(%q) kind = %s, want %s", tc.in, k, tc.kind)
		}
		if tc.addr != "" && a.String() != tc.addr {
			t.Errorf("Classify(%q) addr = %s, want %s", tc.in, a, tc.addr)
		}
	}
}

func TestLookupGeoIP2Layout(t *testing.T) {
	dir := t.TempDir()
	city, err := geotest.WriteCity(dir, "city.mmdb", geotest.London, geotest.Zurich)
	if err != nil {
		t.Fatal(err)
	}
	asn, err := geotest.WriteASN(dir, "asn.mmdb", geotest.LondonASN, geotest.ZurichASN)
	if err != nil {
		t.Fatal(err)
	}
	db, err := geo.Open([]string{city}, []string{asn}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if !db.Enabled() || !db.HasASN() {
		t.Fatal("databases not enabled")
	}

	var r geo.Result
	db.LookupString("81.2.69.142", &r)
	want := geotest.London
	if r.Kind != geo.Public || r.CountryCode != "GB" || r.CountryName != "United Kingdom" || r.City != "London" ||
		r.Region != "England" || r.RegionCode != "ENG" || r.PostalCode != want.PostalCode || r.TimeZone != "Europe/London" ||
		!r.HasLocation || r.Latitude != want.Latitude || r.Longitude != want.Longitude || r.AccuracyRadius != 10 {
		t.Errorf("London lookup = %+v", r)
	}
	if r.ASN != 20712 || r.ASOrg != "Andrews & Arnold Ltd" {
		t.Errorf("London ASN = %d %q", r.ASN, r.ASOrg)
	}
	if r.CityDB != "GeoIP2-City@2026-06-01" || r.ASNDB != "GeoLite2-ASN@2026-06-01" {
		t.Errorf("databases %q %q", r.CityDB, r.ASNDB)
	}

	db.Lookup(netip.MustParseAddr("2a02:168:1::9"), &r)
	if r.CountryCode != "CH" || r.City != "Zurich" || r.ASN != 13030 {
		t.Errorf("Zurich lookup = %+v", r)
	}

	// Public but not in the database: kind only.
	db.LookupString("8.8.8.8", &r)
	if r.Kind != geo.Public || r.CountryCode != "" || r.ASN != 0 {
		t.Errorf("unknown public lookup = %+v", r)
	}
	// Not looked up at all.
	db.LookupString("10.0.0.1", &r)
	if r.Kind != geo.Private || r.City != "" {
		t.Errorf("private lookup = %+v", r)
	}
}

// TestLookupFlatLayout reads ip-location-db's layout, as `make geoip`
// installs it: IPv4 and IPv6 in two files, country code only, float32
// coordinates.
func TestLookupFlatLayout(t *testing.T) {
	dir := t.TempDir()
	v4, err := geotest.WriteFlatCity(dir, "city-ipv4.mmdb", true, geotest.London)
	if err != nil {
		t.Fatal(err)
	}
	v6, err := geotest.WriteFlatCity(dir, "city-ipv6.mmdb", false, geotest.Zurich)
	if err != nil {
		t.Fatal(err)
	}
	db, err := geo.Open([]string{v4, v6}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var r geo.Result
	db.LookupString("81.2.69.142", &r)
	if r.CountryCode != "GB" || r.CountryName != "United Kingdom" || r.City != "London" || r.Region != "England" ||
		!r.HasLocation || math.Abs(r.Latitude-51.5142) > 1e-4 || r.CityDB != "city ipv4@2026-06-01" {
		t.Errorf("flat v4 lookup = %+v", r)
	}
	// The IPv4-only file is skipped for IPv6, not an error.
	db.LookupString("2a02:168::1", &r)
	if r.CountryCode != "CH" || r.CountryName != "Switzerland" || r.City != "Zurich" || r.CityDB != "city ipv6@2026-06-01" {
		t.Errorf("flat v6 lookup = %+v", r)
	}
	if db.HasASN() {
		t.Error("HasASN without an ASN database")
	}
}

func TestOpenMissingFile(t *testing.T) {
	if _, err := geo.Open([]string{t.TempDir() + "/nope.mmdb"}, nil, nil); err == nil {
		t.Fatal("opening a missing database succeeded")
	}
}

// TestReload replaces the database file (by rename, as `make geoip` does)
// and checks that the next lookup sees the new data without a restart.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	path, err := geotest.WriteCity(dir, "city.mmdb", geotest.London)
	if err != nil {
		t.Fatal(err)
	}
	db, err := geo.Open([]string{path}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n, err := db.Reload(); n != 0 || err != nil {
		t.Fatalf("Reload of an unchanged file = %d, %v", n, err)
	}
	var r geo.Result
	db.LookupString("2a02:168::1", &r)
	if r.City != "" {
		t.Fatalf("Zurich found before the update: %+v", r)
	}
	moved := geotest.London
	moved.City = "Manchester"
	if _, err := geotest.WriteCity(dir, "city.mmdb", moved, geotest.Zurich); err != nil {
		t.Fatal(err)
	}
	if n, err := db.Reload(); n != 1 || err != nil {
		t.Fatalf("Reload after the update = %d, %v", n, err)
	}
	db.LookupString("2a02:168::1", &r)
	if r.City != "Zurich" {
		t.Errorf("after reload Zurich = %+v", r)
	}
	db.LookupString("81.2.69.142", &r)
	if r.City != "Manchester" {
		t.Errorf("after reload London = %+v", r)
	}

	// A broken replacement keeps the loaded database.
	if err := writeFile(path, []byte("not a database")); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Reload(); err == nil {
		t.Error("Reload of a corrupt file reported no error")
	}
	db.LookupString("81.2.69.142", &r)
	if r.City != "Manchester" {
		t.Errorf("after a failed reload = %+v", r)
	}
}

func TestCountryName(t *testing.T) {
	if geo.CountryName("DE") != "Germany" || geo.CountryName("US") != "United States" || geo.CountryName("ZZ") != "" {
		t.Error("country names")
	}
}
