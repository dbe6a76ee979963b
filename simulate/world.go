// Package simulate generates realistic streaming traffic for the demo, the
// tests and the benchmarks: viewers in sessions emitting player events as
// the AWS reference player SDK sends them (or in the lower-cased form of its
// Databricks notebooks), and the CloudFront log lines of the segment
// requests that served them, with x-edge-request-id (mixed case) equal to
// the player's cdn_tracking_id. A summary states the true start time,
// stalls, watch time and switches of every session. Incidents
// (scenarios) can be switched on and off. For a seed and a start time the
// output is the same every run.
package simulate

import "net/netip"

// Network is an ISP's address range in a place. The demo GeoIP databases
// map exactly these ranges, so enrichment can be checked against them.
type Network struct {
	Country     string // ISO 3166-1 alpha-2
	Subdivision string
	City        string
	ASN         uint
	ISP         string
	V4, V6      netip.Prefix
	Edges       []string // CloudFront edge locations serving this place
}

// Networks are the simulated ISPs. IPv4 ranges are in 10.0.0.0/8 and IPv6
// ranges in the documentation prefix 2001:db8::/32: no real viewer's
// address is ever attributed to a made-up ISP.
var Networks = []Network{
	{"DE", "BE", "Berlin", 64601, "Spreenet", p("10.1.0.0/16"), p("2001:db8:1::/48"), []string{"FRA56-P3", "TXL50-C1"}},
	{"DE", "BY", "Munich", 64602, "Isar Telekom", p("10.2.0.0/16"), p("2001:db8:2::/48"), []string{"FRA56-P3", "MUC50-P2"}},
	{"FR", "IDF", "Paris", 64603, "Seine Fibre", p("10.3.0.0/16"), p("2001:db8:3::/48"), []string{"CDG50-C1", "CDG52-P4"}},
	{"GB", "ENG", "London", 64604, "Thames Broadband", p("10.4.0.0/16"), p("2001:db8:4::/48"), []string{"LHR61-P5", "LHR3-C2"}},
	{"US", "VA", "Ashburn", 64605, "Potomac Cable", p("10.5.0.0/16"), p("2001:db8:5::/48"), []string{"IAD89-C2", "IAD55-P1"}},
	{"US", "CA", "San Jose", 64606, "Bay Wireless", p("10.6.0.0/16"), p("2001:db8:6::/48"), []string{"SFO5-P2", "SJC50-C1"}},
	{"JP", "13", "Tokyo", 64607, "Sakura Hikari", p("10.7.0.0/16"), p("2001:db8:7::/48"), []string{"NRT57-P1", "NRT20-C3"}},
	{"BR", "SP", "Sao Paulo", 64608, "Paulista Net", p("10.8.0.0/16"), p("2001:db8:8::/48"), []string{"GRU3-P1", "GRU50-C1"}},
}

func p(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// Client is a kind of player: app, device, OS, browser and user agent.
type Client struct {
	App, Version, Device, OS, Browser, UserAgent string
}

// Clients are the simulated player apps.
var Clients = []Client{
	{"web", "5.2.0", "desktop", "Windows", "Chrome", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"},
	{"web", "5.2.0", "desktop", "Mac OS X", "Safari", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"},
	{"android", "8.14.1", "mobile", "Android", "Chrome Mobile", "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36"},
	{"ios", "8.13.0", "mobile", "iOS", "Mobile Safari", "AppleCoreMedia/1.0.0.21E236 (iPhone; U; CPU OS 17_4 like Mac OS X; en_us)"},
	{"tvos", "3.4.2", "tv", "tvOS", "AppleCoreMedia", "AppleCoreMedia/1.0.0.21L227 (Apple TV; U; CPU OS 17_4 like Mac OS X; en_us)"},
	{"roku", "2.9.0", "tv", "Roku OS", "Roku", "Roku/DVP-13.0 (13.0.0.4167-C9)"},
}

// Video is something to watch.
type Video struct {
	ID       string
	Playlist string // live or vod
	Duration int    // seconds
}

// Videos are the simulated catalogue.
var Videos = []Video{
	{"bigbuckbunny", "vod", 597},
	{"tearsofsteel", "vod", 735},
	{"sintel", "vod", 888},
	{"elephantsdream", "vod", 654},
	{"channel1", "live", 0},
	{"channel2", "live", 0},
}

// Rendition is one rung of the bitrate ladder.
type Rendition struct {
	Resolution string
	Bitrate    int // bits per second
	Path       string
	FPS        string // the playlist's FRAME-RATE; "" where it has none
}

// Ladder is the bitrate ladder, lowest first.
var Ladder = []Rendition{
	{"416x234", 365_000, "234p", ""},
	{"640x360", 1_330_203, "360p", "29.970"},
	{"854x480", 2_400_000, "480p", "29.970"},
	{"1280x720", 4_500_000, "720p", "29.970"},
	{"1920x1080", 7_800_000, "1080p", "29.970"},
}

var connections = []string{"wifi", "wifi", "wifi", "ethernet", "4g", "4g", "5g", "3g", "not available"}
