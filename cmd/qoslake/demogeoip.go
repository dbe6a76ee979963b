package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/qoslake/qoslake/simulate"
)

func demoGeoIPCommand() *command {
	return &command{
		name:    "demo-geoip",
		args:    "DIR",
		summary: "write demo GeoIP databases for the simulator's address ranges",
		help: `Writes qoslake-demo-City.mmdb and qoslake-demo-ASN.mmdb (GeoLite2 City
and ASN layouts, made with MaxMind's writer) to DIR. They map the
simulator's ISPs' ranges (10.0.0.0/8, 2001:db8::/32) to their countries,
cities and ISPs, for the demo: use real MaxMind databases in production.`,
		run: func(_ context.Context, m *Main, fs *flag.FlagSet) error {
			if fs.NArg() != 1 {
				return fmt.Errorf("%w: demo-geoip takes one folder", errUsage)
			}
			city, asn, err := simulate.WriteGeoIP(fs.Arg(0))
			if err != nil {
				return err
			}
			fmt.Fprintf(m.Stdout, "QOSLAKE_GEOIP_CITY=%s\nQOSLAKE_GEOIP_ASN=%s\n", city, asn)
			return nil
		},
	}
}
