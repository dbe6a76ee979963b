package anonymize_test

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/qoslake/qoslake/anonymize"
)

func TestTruncateIP(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"203.0.113.77", "203.0.113.0"},
		{"203.0.113.0", "203.0.113.0"},
		{"255.255.255.255", "255.255.255.0"},
		{"0.0.0.0", "0.0.0.0"},
		{"010.001.002.003", "10.1.2.0"},
		{" 198.51.100.23 ", "198.51.100.0"},
		{"2001:db8:4f2a:1200:9c1e:77ff:fe01:23ab", "2001:db8:4f2a::"},
		{"2001:0DB8:4F2A:1200:9C1E:77FF:FE01:23AB", "2001:db8:4f2a::"},
		{"2001:db8::1", "2001:db8::"},
		{"2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::"},
		{"::1", "::"},
		{"::", "::"},
		{"fe80::1%eth0", "fe80::"},
		{"fe80::1ff:fe23:4567:890a%3", "fe80::"},
		{"::ffff:192.0.2.128", "192.0.2.0"},
		{"::FFFF:c000:0280", "192.0.2.0"},
		{"64:ff9b::192.0.2.33", "64:ff9b::"},
		{"2001:db8:1:2:3:4:192.0.2.33", "2001:db8:1::"},
		{"[2001:db8:aaaa:bbbb::1]", "2001:db8:aaaa::"},
	} {
		got, err := anonymize.TruncateIP(tc.in)
		if err != nil || got.String() != tc.want {
			t.Errorf("TruncateIP(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestTruncateIPRejectsNonAddresses(t *testing.T) {
	for _, in := range []string{"", "-", "localhost", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.4:80", "2001:db8::g", "1::2::3", "::ffff:1.2.3", "01.02.03.1234", "[1.2.3.4", "example.com", "1.2.3.-4"} {
		a, err := anonymize.TruncateIP(in)
		if !errors.Is(err, anonymize.ErrNotAnAddress) || a.IsValid() {
			t.Errorf("TruncateIP(%q) = %v, %v; want ErrNotAnAddress", in, a, err)
		}
	}
}

func TestTruncateList(t *testing.T) {
	got, bad := anonymize.TruncateList("192.0.2.44,%2010.0.0.1, 10.0.0.1 , bogus, 2001:db8:1:2::5")
	if got != "192.0.2.0, 10.0.0.0, 2001:db8:1::" || bad != 2 {
		t.Errorf("got %q with %d bad, want 3 networks and 2 bad", got, bad)
	}
}

func FuzzTruncateIP(f *testing.F) {
	for _, s := range []string{"203.0.113.77", "2001:db8::1", "::ffff:1.2.3.4", "fe80::1%eth0", "010.1.1.1", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := anonymize.TruncateIP(s)
		if err != nil {
			if a.IsValid() {
				t.Fatalf("%q: error with an address", s)
			}
			return
		}
		// A truncated address is a network address: truncating it again
		// changes nothing, it has no zone, and nothing below the prefix.
		if again := anonymize.Truncate(a); again != a {
			t.Fatalf("%q: %v truncates again to %v", s, a, again)
		}
		if a.Zone() != "" || a.Is4In6() {
			t.Fatalf("%q: %v keeps a zone or a mapping", s, a)
		}
		bits := 48
		if a.Is4() {
			bits = 24
		}
		b := a.AsSlice()
		for i := bits / 8; i < len(b); i++ {
			if b[i] != 0 {
				t.Fatalf("%q: %v keeps host bits", s, a)
			}
		}
		if _, err := netip.ParseAddr(a.String()); err != nil {
			t.Fatalf("%q: %v does not print as an address", s, a)
		}
	})
}
