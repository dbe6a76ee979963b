package geoip

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// Network is one range and what the databases say of it.
type Network struct {
	Prefix netip.Prefix
	Info
}

// WriteCity writes a database in the GeoLite2-City layout.
func WriteCity(path string, nets []Network) error {
	return write(path, "GeoLite2-City", nets, func(n Network) mmdbtype.Map {
		m := mmdbtype.Map{
			"country": mmdbtype.Map{"iso_code": mmdbtype.String(n.Country), "names": mmdbtype.Map{"en": mmdbtype.String(n.Country)}},
		}
		if n.Subdivision != "" {
			m["subdivisions"] = mmdbtype.Slice{mmdbtype.Map{"iso_code": mmdbtype.String(n.Subdivision)}}
		}
		if n.City != "" {
			m["city"] = mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String(n.City)}}
		}
		return m
	})
}

// WriteASN writes a database in the GeoLite2-ASN layout.
func WriteASN(path string, nets []Network) error {
	return write(path, "GeoLite2-ASN", nets, func(n Network) mmdbtype.Map {
		return mmdbtype.Map{
			"autonomous_system_number":       mmdbtype.Uint32(n.ASN),
			"autonomous_system_organization": mmdbtype.String(n.ISP),
		}
	})
}

func write(path, dbType string, nets []Network, record func(Network) mmdbtype.Map) error {
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType: dbType,
		Description:  map[string]string{"en": "qoslake " + dbType + " for tests and the demo"},
		// The simulator uses private and documentation ranges.
		IncludeReservedNetworks: true,
		IPVersion:               6,
		RecordSize:              28,
	})
	if err != nil {
		return err
	}
	for _, n := range nets {
		_, ipnet, err := net.ParseCIDR(n.Prefix.String())
		if err != nil {
			return err
		}
		if err := tree.Insert(ipnet, record(n)); err != nil {
			return fmt.Errorf("insert %s: %w", n.Prefix, err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	// Write beside, then rename: a reader never sees a half-written file.
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := tree.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
