package silver

import (
	"strings"
	"sync"

	"github.com/ua-parser/uap-go/uaparser"
)

// Agent is what a user agent string says of the client.
type Agent struct {
	Browser    string // browser family (Chrome, Mobile Safari, ...)
	OS         string // OS family (iOS, Android, Windows, ...)
	DeviceType string // mobile, tablet, desktop, tv, bot, other
	Bot        bool
}

// Agents parses user agents with ua-parser (the maintained regex set
// shared by the ua-parser ports). The regexes are slow and user agents
// repeat, so results are cached per string; the cache is bounded.
type Agents struct {
	p *uaparser.Parser

	mu    sync.RWMutex
	cache map[string]Agent
	max   int
}

// NewAgents compiles the parser; cacheSize bounds distinct cached agents.
func NewAgents(cacheSize int) (*Agents, error) {
	p, err := uaparser.New(uaparser.WithCacheSize(16))
	if err != nil {
		return nil, err
	}
	return &Agents{p: p, cache: make(map[string]Agent, cacheSize), max: cacheSize}, nil
}

// Parse returns what ua says.
func (a *Agents) Parse(ua string) Agent {
	if ua == "" || ua == "-" {
		return Agent{}
	}
	a.mu.RLock()
	v, ok := a.cache[ua]
	a.mu.RUnlock()
	if ok {
		return v
	}
	v = a.parse(ua)
	a.mu.Lock()
	if len(a.cache) >= a.max {
		// Crude but bounded: start over. Real traffic has a few thousand
		// distinct agents, which fit.
		clear(a.cache)
	}
	a.cache[ua] = v
	a.mu.Unlock()
	return v
}

func (a *Agents) parse(ua string) Agent {
	browser := a.p.ParseUserAgent(ua).Family
	os := a.p.ParseOs(ua).Family
	device := a.p.ParseDevice(ua)
	v := Agent{Browser: browser, OS: os}
	lower := strings.ToLower(ua)
	switch {
	case device.Family == "Spider" || strings.Contains(lower, "bot") || strings.Contains(lower, "spider") || strings.Contains(lower, "crawler"):
		v.Bot, v.DeviceType = true, "bot"
	case strings.Contains(lower, "apple tv") || strings.Contains(lower, "appletv") || strings.Contains(lower, "roku") ||
		strings.Contains(lower, "smart-tv") || strings.Contains(lower, "smarttv") || strings.Contains(lower, "tizen") ||
		strings.Contains(lower, "webos") || strings.Contains(lower, "aft") && strings.Contains(lower, "amazon") || os == "tvOS":
		v.DeviceType = "tv"
	case strings.Contains(lower, "ipad") || strings.Contains(lower, "tablet") || device.Family == "iPad":
		v.DeviceType = "tablet"
	case strings.Contains(lower, "mobile") || strings.Contains(lower, "iphone") || os == "Android" || os == "iOS":
		v.DeviceType = "mobile"
	case os == "Windows" || os == "Mac OS X" || os == "Linux" || os == "Ubuntu" || os == "Chrome OS" || os == "Fedora":
		v.DeviceType = "desktop"
	default:
		v.DeviceType = "other"
	}
	if v.Browser == "Other" {
		v.Browser = ""
	}
	if v.OS == "Other" {
		v.OS = ""
	}
	return v
}
