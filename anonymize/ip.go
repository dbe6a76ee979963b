// Package anonymize makes personal data safe to keep: client IP addresses
// truncated to their network (IPv4 /24, IPv6 /48) and user ids replaced by
// a keyed hash (HMAC-SHA-256) with a key id, so keys can rotate. It is pure:
// no I/O but loading the key.
package anonymize

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ErrNotAnAddress is returned for text that is not an IP address. It is
// never passed through.
var ErrNotAnAddress = errors.New("not an IP address")

// TruncateIP parses an address in any textual form (dotted IPv4, with or
// without leading zeros; IPv6 full, compressed, mixed case, with an
// embedded IPv4 or a zone; IPv4-mapped IPv6; in brackets) and returns its
// network: IPv4 keeps its first 24 bits, IPv6 its first 48. An IPv4-mapped
// IPv6 address is treated as IPv4 and zones are dropped.
func TruncateIP(s string) (netip.Addr, error) {
	a, err := ParseIP(s)
	if err != nil {
		return netip.Addr{}, err
	}
	return Truncate(a), nil
}

// Truncate returns the network of a parsed address (see TruncateIP).
func Truncate(a netip.Addr) netip.Addr {
	a = a.Unmap().WithZone("")
	bits := 48
	if a.Is4() {
		bits = 24
	}
	p, _ := a.Prefix(bits)
	return p.Addr()
}

// ParseIP parses an address in any textual form TruncateIP accepts. The
// geo lookup uses the full address it returns; only Truncate's result is
// ever stored.
func ParseIP(s string) (netip.Addr, error) {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]") {
		t = t[1 : len(t)-1]
	}
	if a, err := netip.ParseAddr(t); err == nil {
		return a.Unmap(), nil
	}
	// netip refuses IPv4 octets with leading zeros (they are ambiguous in
	// some C libraries, which read them as octal); CDN and proxy logs mean
	// them as decimal.
	if a, ok := parseDecimalIPv4(t); ok {
		return a, nil
	}
	return netip.Addr{}, fmt.Errorf("%w: %q", ErrNotAnAddress, limit(s, 64))
}

func parseDecimalIPv4(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return netip.Addr{}, false
	}
	var b [4]byte
	for i, p := range parts {
		if p == "" || len(p) > 3 {
			return netip.Addr{}, false
		}
		n, err := strconv.ParseUint(p, 10, 8)
		if err != nil {
			return netip.Addr{}, false
		}
		b[i] = byte(n)
	}
	return netip.AddrFrom4(b), true
}

func limit(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// TruncateList truncates a comma-separated address list such as
// x-forwarded-for ("192.0.2.44, 10.0.0.1"). Entries that are not addresses
// are left out, never passed through; the count of those is returned.
func TruncateList(s string) (string, int) {
	var out []string
	bad := 0
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" || part == "-" {
			continue
		}
		a, err := TruncateIP(part)
		if err != nil {
			bad++
			continue
		}
		out = append(out, a.String())
	}
	return strings.Join(out, ", "), bad
}
