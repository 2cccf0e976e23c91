package geo

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/oschwald/maxminddb-golang/v2"
	"go.uber.org/zap"
)

// Result is what a lookup found. Empty strings and a false HasLocation mean
// the database had nothing.
type Result struct {
	Kind           Kind
	CountryCode    string
	CountryName    string
	Region         string
	RegionCode     string
	City           string
	PostalCode     string
	TimeZone       string
	Latitude       float64
	Longitude      float64
	HasLocation    bool
	AccuracyRadius uint16 // km; 0 when unknown
	ASN            uint32 // 0 when unknown
	ASOrg          string
	CityDB         string // the database that answered the city lookup
	ASNDB          string
}

// DB looks addresses up in zero or more city and ASN databases. Each is a
// list of files tried in order (ip-location-db ships IPv4 and IPv6 in two
// files); a file whose metadata says IPv4 only is skipped for IPv6
// addresses. A DB with no files answers only the Kind.
//
// Lookups are safe for concurrent use and never block on a reload: Reload
// swaps in a newly opened reader atomically and leaves the old one to the
// garbage collector, which unmaps it once no lookup holds it (maxminddb's
// cleanup), so a lookup in flight never reads unmapped memory.
type DB struct {
	city []*file
	asn  []*file
	log  *zap.Logger
}

type file struct {
	path   string
	reader atomic.Pointer[maxminddb.Reader]
	name   atomic.Pointer[string] // <database_type>@<build date>
	stat   os.FileInfo            // of the open file; only Reload touches it
}

// Open opens every file. A file that cannot be opened is an error: a
// configured database that is missing at start is a deployment mistake.
func Open(city, asn []string, log *zap.Logger) (*DB, error) {
	if log == nil {
		log = zap.NewNop()
	}
	d := &DB{log: log}
	var errs []error
	for _, p := range city {
		f, err := openFile(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		d.city = append(d.city, f)
	}
	for _, p := range asn {
		f, err := openFile(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		d.asn = append(d.asn, f)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return d, nil
}

func openFile(path string) (*file, error) {
	f := &file{path: path}
	if err := f.open(); err != nil {
		return nil, err
	}
	return f, nil
}

// open (re)opens the file and swaps the reader in.
func (f *file) open() error {
	st, err := os.Stat(f.path)
	if err != nil {
		return fmt.Errorf("geoip database: %w", err)
	}
	r, err := maxminddb.Open(f.path)
	if err != nil {
		return fmt.Errorf("geoip database %s: %w", f.path, err)
	}
	name := r.Metadata.DatabaseType
	if r.Metadata.BuildEpoch > 0 {
		name += "@" + r.Metadata.BuildTime().UTC().Format(time.DateOnly)
	}
	f.stat = st
	f.name.Store(&name)
	f.reader.Store(r) // the old reader is unmapped by its GC cleanup
	return nil
}

// changed reports whether the file on disk is not the one open: another
// inode (replaced by rename), size or modification time.
func (f *file) changed() (bool, error) {
	st, err := os.Stat(f.path)
	if err != nil {
		return false, err
	}
	return !os.SameFile(st, f.stat) || st.Size() != f.stat.Size() || !st.ModTime().Equal(f.stat.ModTime()), nil
}

// Enabled reports whether any database is configured.
func (d *DB) Enabled() bool { return d != nil && (len(d.city) > 0 || len(d.asn) > 0) }

// HasASN reports whether an ASN database is configured.
func (d *DB) HasASN() bool { return d != nil && len(d.asn) > 0 }

// LookupString classifies s and, for a public address, looks it up.
func (d *DB) LookupString(s string, res *Result) {
	a, kind := Classify(s)
	*res = Result{Kind: kind}
	if kind == Public && d != nil {
		d.lookup(a, res)
	}
}

// Lookup classifies a and, for a public address, looks it up.
func (d *DB) Lookup(a netip.Addr, res *Result) {
	a = a.Unmap()
	*res = Result{Kind: KindOf(a)}
	if res.Kind == Public && d != nil {
		d.lookup(a, res)
	}
}

func (d *DB) lookup(a netip.Addr, res *Result) {
	for _, f := range d.city {
		r := f.reader.Load()
		if a.Is6() && r.Metadata.IPVersion == 4 {
			continue
		}
		var rec cityRecord
		lr := r.Lookup(a)
		if !lr.Found() {
			continue
		}
		if err := lr.Decode(&rec); err != nil {
			d.log.Debug("decoding geoip city record", zap.String("db", f.path), zap.Error(err))
			continue
		}
		res.CountryCode, res.CountryName = rec.countryCode, rec.countryName
		if res.CountryName == "" {
			res.CountryName = CountryName(rec.countryCode)
		}
		res.Region, res.RegionCode = rec.region, rec.regionCode
		res.City, res.PostalCode, res.TimeZone = rec.city, rec.postalCode, rec.timeZone
		res.Latitude, res.Longitude, res.HasLocation = rec.latitude, rec.longitude, rec.hasLocation
		res.AccuracyRadius = rec.accuracyRadius
		res.CityDB = *f.name.Load()
		break
	}
	for _, f := range d.asn {
		r := f.reader.Load()
		if a.Is6() && r.Metadata.IPVersion == 4 {
			continue
		}
		var rec asnRecord
		lr := r.Lookup(a)
		if !lr.Found() {
			continue
		}
		if err := lr.Decode(&rec); err != nil {
			d.log.Debug("decoding geoip asn record", zap.String("db", f.path), zap.Error(err))
			continue
		}
		res.ASN, res.ASOrg, res.ASNDB = rec.Number, rec.Org, *f.name.Load()
		break
	}
}

// Reload reopens every file that changed on disk. A file that cannot be
// reopened (missing, half written, corrupt) keeps its current reader; the
// error is returned and the next Reload tries again. It must not run
// concurrently with itself.
func (d *DB) Reload() (reloaded int, err error) {
	if d == nil {
		return 0, nil
	}
	var errs []error
	for _, f := range append(append([]*file(nil), d.city...), d.asn...) {
		changed, err := f.changed()
		if err != nil {
			errs = append(errs, fmt.Errorf("geoip database %s: %w", f.path, err))
			continue
		}
		if !changed {
			continue
		}
		if err := f.open(); err != nil {
			errs = append(errs, err)
			continue
		}
		reloaded++
		d.log.Info("geoip database reloaded", zap.String("path", f.path), zap.String("database", *f.name.Load()))
	}
	return reloaded, errors.Join(errs...)
}

// Watch calls Reload every interval until ctx ends.
func (d *DB) Watch(ctx context.Context, interval time.Duration) {
	if !d.Enabled() || interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := d.Reload(); err != nil {
				d.log.Warn("reloading geoip databases; keeping the loaded ones", zap.Error(err))
			}
		}
	}
}

// Close releases the readers now rather than at garbage collection. No
// lookup may run during or after Close.
func (d *DB) Close() error {
	if d == nil {
		return nil
	}
	var errs []error
	for _, f := range append(append([]*file(nil), d.city...), d.asn...) {
		if r := f.reader.Swap(nil); r != nil {
			errs = append(errs, r.Close())
		}
	}
	return errors.Join(errs...)
}
