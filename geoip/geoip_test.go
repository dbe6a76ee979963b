package geoip_test

import (
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qoslake/qoslake/geoip"
)

var nets = []geoip.Network{
	{Prefix: netip.MustParsePrefix("203.0.113.0/24"), Info: geoip.Info{Country: "DE", Subdivision: "BE", City: "Berlin", ASN: 64601, ISP: "Spreenet"}},
	{Prefix: netip.MustParsePrefix("2001:db8:4f2a::/48"), Info: geoip.Info{Country: "US", Subdivision: "VA", City: "Ashburn", ASN: 64605, ISP: "Potomac Cable"}},
}

func write(t *testing.T, dir string, nets []geoip.Network) (string, string) {
	t.Helper()
	city, asn := filepath.Join(dir, "GeoLite2-City.mmdb"), filepath.Join(dir, "GeoLite2-ASN.mmdb")
	if err := geoip.WriteCity(city, nets); err != nil {
		t.Fatal(err)
	}
	if err := geoip.WriteASN(asn, nets); err != nil {
		t.Fatal(err)
	}
	return city, asn
}

func TestLookupIPv4AndIPv6(t *testing.T) {
	city, asn := write(t, t.TempDir(), nets)
	db, err := geoip.Open(city, asn, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr string
		want geoip.Info
	}{
		{"203.0.113.77", nets[0].Info},
		{"2001:db8:4f2a:1200:9c1e:77ff:fe01:23ab", nets[1].Info},
		{"198.51.100.1", geoip.Info{}},
	} {
		if got := db.Lookup(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.addr, got, tc.want)
		}
	}
}

func TestOpenNamesTheBadDatabase(t *testing.T) {
	city, asn := write(t, t.TempDir(), nets)
	if _, err := geoip.Open(city, "/nonexistent/GeoLite2-ASN.mmdb", nil); err == nil {
		t.Error("missing ASN database accepted")
	}
	if _, err := geoip.Open(asn, "", nil); err == nil {
		t.Error("an ASN database accepted as the City database")
	}
}

// Replacing the files on disk swaps the data in, and lookups running during
// the swap never fail.
func TestReloadWithoutFailedLookups(t *testing.T) {
	dir := t.TempDir()
	city, asn := write(t, dir, nets)
	db, err := geoip.Open(city, asn, nil)
	if err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var failures atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				if db.Lookup(netip.MustParseAddr("203.0.113.9")).Country == "" {
					failures.Add(1)
				}
			}
		})
	}
	moved := []geoip.Network{{Prefix: nets[0].Prefix, Info: geoip.Info{Country: "FR", City: "Paris", ASN: 64603, ISP: "Seine Fibre"}}}
	time.Sleep(10 * time.Millisecond)
	write(t, dir, moved)
	ok, err := db.Reload()
	stop.Store(true)
	wg.Wait()
	if err != nil || !ok {
		t.Fatalf("reload: %v %v", ok, err)
	}
	if failures.Load() != 0 {
		t.Errorf("%d lookups failed during the reload", failures.Load())
	}
	if got := db.Lookup(netip.MustParseAddr("203.0.113.9")); got.Country != "FR" || got.ISP != "Seine Fibre" {
		t.Errorf("after reload: %+v", got)
	}
	if ok, _ := db.Reload(); ok {
		t.Error("reloaded with no change on disk")
	}
}
