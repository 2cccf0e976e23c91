package geo

import (
	"net/netip"
	"strings"
)

// Kind says what an IP string is, and so whether it can be looked up.
type Kind string

// The kinds of the sluice.Geo ip_kind field. Only public addresses are
// looked up; the others are marked, never errors.
const (
	Public      Kind = "public"
	Private     Kind = "private"  // RFC 1918, unique local, link local, shared (CGNAT) space
	Loopback    Kind = "loopback" // 127.0.0.0/8, ::1
	Reserved    Kind = "reserved" // unspecified, multicast, limited broadcast
	Unparseable Kind = "unparseable"
	Absent      Kind = "absent" // no IP at all
)

var (
	sharedSpace = netip.MustParsePrefix("100.64.0.0/10") // RFC 6598 carrier-grade NAT
	broadcast   = netip.MustParseAddr("255.255.255.255")
)

// Classify parses s, which may carry a port ("1.2.3.4:5678",
// "[2001:db8::1]:443"), brackets or a zone, and says what kind of address it
// is. IPv4-mapped IPv6 addresses are unmapped. The address is valid unless
// the kind is Unparseable or Absent.
func Classify(s string) (netip.Addr, Kind) {
	s = strings.TrimSpace(s)
	if s == "" {
		return netip.Addr{}, Absent
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err2 := netip.ParseAddrPort(s)
		switch {
		case err2 == nil:
			a = ap.Addr()
		case len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']':
			if a, err = netip.ParseAddr(s[1 : len(s)-1]); err != nil {
				return netip.Addr{}, Unparseable
			}
		default:
			return netip.Addr{}, Unparseable
		}
	}
	a = a.Unmap().WithZone("")
	return a, KindOf(a)
}

// KindOf classifies a parsed address.
func KindOf(a netip.Addr) Kind {
	switch {
	case !a.IsValid():
		return Unparseable
	case a.IsLoopback():
		return Loopback
	case a.IsUnspecified(), a.IsMulticast(), a == broadcast:
		return Reserved
	case a.IsPrivate(), a.IsLinkLocalUnicast(), sharedSpace.Contains(a):
		return Private
	}
	return Public
}
