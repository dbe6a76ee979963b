// Package geoip looks up where an address is (country, subdivision, city)
// and whose network it is (ASN, ISP or organisation) in MaxMind databases,
// with geoip2-golang, and reloads them when they change on disk. It also
// writes databases in the GeoIP2/GeoLite2 City and ASN layouts, with
// MaxMind's writer, for tests and the demo.
package geoip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/oschwald/geoip2-golang/v2"
)

// Info is what a lookup finds; empty fields are unknown.
type Info struct {
	Country     string // ISO 3166-1 alpha-2
	Subdivision string // ISO 3166-2 subdivision code (without the country)
	City        string // English name
	ASN         uint
	ISP         string // ISP, or the AS organisation with an ASN database
}

// DB is a pair of databases: City (or Country) and ASN (or ISP). Lookups
// are safe for concurrent use and never fail during a reload: the new
// databases are read whole into memory, then swapped in atomically; the old
// ones are left to the garbage collector, not unmapped under a reader.
type DB struct {
	cityPath, asnPath string
	cur               atomic.Pointer[readers]
	log               *slog.Logger
}

type readers struct {
	city, asn        *geoip2.Reader
	cityIsp          bool // the network database is an ISP database
	cityStat, asStat fileStamp
}

type fileStamp struct {
	size int64
	mod  time.Time
}

// Open reads the databases. Either path may be empty to skip that half; a
// path that cannot be read is an error naming it.
func Open(cityPath, asnPath string, log *slog.Logger) (*DB, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	db := &DB{cityPath: cityPath, asnPath: asnPath, log: log}
	r, err := db.load()
	if err != nil {
		return nil, err
	}
	db.cur.Store(r)
	return db, nil
}

func (db *DB) load() (*readers, error) {
	r := &readers{}
	var err error
	if db.cityPath != "" {
		if r.city, r.cityStat, err = open(db.cityPath); err != nil {
			return nil, err
		}
		if t := r.city.Metadata().DatabaseType; !strings.Contains(t, "City") && !strings.Contains(t, "Country") {
			return nil, fmt.Errorf("geoip city database %s is a %s database, want City or Country", db.cityPath, t)
		}
	}
	if db.asnPath != "" {
		if r.asn, r.asStat, err = open(db.asnPath); err != nil {
			return nil, err
		}
		t := r.asn.Metadata().DatabaseType
		switch {
		case strings.Contains(t, "ISP"):
			r.cityIsp = true
		case strings.Contains(t, "ASN"):
		default:
			return nil, fmt.Errorf("geoip network database %s is a %s database, want ASN or ISP", db.asnPath, t)
		}
	}
	return r, nil
}

func open(path string) (*geoip2.Reader, fileStamp, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("geoip database: %w", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("geoip database: %w", err)
	}
	r, err := geoip2.OpenBytes(b)
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("geoip database %s: %w", path, err)
	}
	return r, fileStamp{size: st.Size(), mod: st.ModTime()}, nil
}

// Lookup finds what the databases say of a (full, untruncated) address.
func (db *DB) Lookup(a netip.Addr) Info {
	r := db.cur.Load()
	var info Info
	if r.city != nil {
		if c, err := r.city.City(a); err == nil {
			info.Country = c.Country.ISOCode
			if len(c.Subdivisions) > 0 {
				info.Subdivision = c.Subdivisions[0].ISOCode
			}
			info.City = c.City.Names.English
		}
	}
	if r.asn != nil {
		if r.cityIsp {
			if v, err := r.asn.ISP(a); err == nil {
				info.ASN, info.ISP = v.AutonomousSystemNumber, v.ISP
				if info.ISP == "" {
					info.ISP = v.Organization
				}
			}
		} else if v, err := r.asn.ASN(a); err == nil {
			info.ASN, info.ISP = v.AutonomousSystemNumber, v.AutonomousSystemOrganization
		}
	}
	return info
}

// Reload reads the databases again if either file changed (size or
// modification time). A file that fails to load keeps the old databases in
// use and returns the error.
func (db *DB) Reload() (bool, error) {
	old := db.cur.Load()
	changed := false
	for _, f := range []struct {
		path  string
		stamp fileStamp
	}{{db.cityPath, old.cityStat}, {db.asnPath, old.asStat}} {
		if f.path == "" {
			continue
		}
		st, err := os.Stat(f.path)
		if err != nil {
			return false, fmt.Errorf("geoip database: %w", err)
		}
		if st.Size() != f.stamp.size || !st.ModTime().Equal(f.stamp.mod) {
			changed = true
		}
	}
	if !changed {
		return false, nil
	}
	r, err := db.load()
	if err != nil {
		return false, err
	}
	db.cur.Store(r)
	return true, nil
}

// Watch reloads the databases every interval until ctx ends (MaxMind
// publishes updates weekly; files are usually replaced by a rename).
func (db *DB) Watch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			switch ok, err := db.Reload(); {
			case err != nil && !errors.Is(err, context.Canceled):
				db.log.Warn("geoip reload failed, keeping the databases in use", "error", err)
			case ok:
				db.log.Info("geoip databases reloaded", "city", db.cityPath, "asn", db.asnPath)
			}
		}
	}
}
