// Command asn2mmdb converts ip-location-db ASN CSV files
// (ip_range_start,ip_range_end,autonomous_system_number,autonomous_system_organization)
// into one MaxMind-format database in the GeoLite2-ASN layout, which the
// enricher reads. `make geoip` runs it: the ASN data on the npm registry
// is published as CSV only.
//
// Usage: asn2mmdb -o asn.mmdb asn-ipv4.csv asn-ipv6.csv
package main

import (
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

func main() {
	out := flag.String("o", "asn.mmdb", "output database")
	desc := flag.String("description", "ip-location-db asn (RouteViews and DB-IP, CC BY 4.0)", "database description")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: asn2mmdb -o asn.mmdb asn-ipv4.csv [asn-ipv6.csv ...]")
		os.Exit(2)
	}
	if err := run(*out, *desc, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "asn2mmdb:", err)
		os.Exit(1)
	}
}

func run(out, desc string, inputs []string) error {
	t, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType: "ip-location-db-ASN",
		Description:  map[string]string{"en": desc},
		RecordSize:   24,
		IPVersion:    6,
		BuildEpoch:   time.Now().Unix(),
	})
	if err != nil {
		return err
	}
	rows, skipped := 0, 0
	for _, in := range inputs {
		r, s, err := load(t, in)
		if err != nil {
			return fmt.Errorf("%s: %w", in, err)
		}
		rows += r
		skipped += s
	}
	// Write next to the destination and rename: an enricher watching the
	// file reloads a complete database, never a half-written one.
	tmp, err := os.CreateTemp(filepath.Dir(out), filepath.Base(out)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := t.WriteTo(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return err
	}
	fmt.Printf("asn2mmdb: %s: %d ranges (%d skipped: reserved or malformed)\n", out, rows, skipped)
	return nil
}

func load(t *mmdbwriter.Tree, path string) (rows, skipped int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	cr := csv.NewReader(f)
	cr.FieldsPerRecord = 4
	cr.ReuseRecord = true
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return rows, skipped, nil
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			skipped++
			continue
		}
		if err != nil {
			return rows, skipped, err
		}
		start, end := net.ParseIP(rec[0]), net.ParseIP(rec[1])
		asn, aerr := strconv.ParseUint(rec[2], 10, 32)
		if start == nil || end == nil || aerr != nil {
			skipped++
			continue
		}
		v := mmdbtype.Map{
			"autonomous_system_number":       mmdbtype.Uint32(asn),
			"autonomous_system_organization": mmdbtype.String(rec[3]),
		}
		if err := t.InsertRange(start, end, v); err != nil {
			skipped++ // a reserved network, which the writer refuses
			continue
		}
		rows++
	}
}
