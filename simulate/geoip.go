package simulate

import (
	"path/filepath"

	"github.com/qoslake/qoslake/geoip"
)

// GeoIPNetworks are the simulated ISPs as GeoIP records, IPv4 and IPv6.
func GeoIPNetworks() []geoip.Network {
	var out []geoip.Network
	for _, n := range Networks {
		info := geoip.Info{Country: n.Country, Subdivision: n.Subdivision, City: n.City, ASN: n.ASN, ISP: n.ISP}
		out = append(out, geoip.Network{Prefix: n.V4, Info: info}, geoip.Network{Prefix: n.V6, Info: info})
	}
	return out
}

// WriteGeoIP writes demo City and ASN databases mapping the simulator's
// address ranges to their places and ISPs, and returns their paths.
func WriteGeoIP(dir string) (city, asn string, err error) {
	city, asn = filepath.Join(dir, "qoslake-demo-City.mmdb"), filepath.Join(dir, "qoslake-demo-ASN.mmdb")
	if err := geoip.WriteCity(city, GeoIPNetworks()); err != nil {
		return "", "", err
	}
	if err := geoip.WriteASN(asn, GeoIPNetworks()); err != nil {
		return "", "", err
	}
	return city, asn, nil
}
