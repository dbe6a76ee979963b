// Package alerts turns gold into alerts: rules stated as data, evaluated
// on every one-minute step once a window's sources have closed it, with a
// life cycle (fired, quiet while it lasts, resolved, cooldown) kept in
// gold.alerts, and published to SNS through an outbox so an outage delays
// alerts but loses and doubles none.
package alerts

import (
	"bytes"
	"cmp"
	_ "embed"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/qoslake/qoslake/gold"
)

// Rule is one alert rule. A rule evaluates its metric over the last Window
// for every group of GroupBy, and compares each group's value with a limit
// its Condition derives from a fixed threshold, the group's own baseline or
// the volume-weighted mean of its peers (the other groups).
type Rule struct {
	Name        string    `yaml:"name"`
	Description string    `yaml:"description"`
	Metric      string    `yaml:"metric"`   // a gold metric (gold.LookupMetric)
	GroupBy     []string  `yaml:"group_by"` // dimensions of the metric's table
	Where       Dims      `yaml:"where"`    // only rows with these dimension values
	Window      Duration  `yaml:"window"`
	Condition   Condition `yaml:"condition"`
	// MinVolume is the metric's volume (requests, play attempts) a group
	// needs in the window to be judged at all.
	MinVolume int64 `yaml:"min_volume"`
	// For is how long the condition must hold before the alert fires;
	// ResolveFor how long the resolve condition must hold before it
	// resolves (default: For). Both count one-minute steps.
	For        Duration `yaml:"for"`
	ResolveFor Duration `yaml:"resolve_for"`
	// Cooldown is how long after resolving the same alert may not fire
	// again.
	Cooldown Duration `yaml:"cooldown"`
	Severity string   `yaml:"severity"`
	Team     string   `yaml:"team"`
	// Action is the suggested action; {dimension} is replaced by the
	// group's value of that dimension.
	Action  string `yaml:"action"`
	Runbook string `yaml:"runbook"`
	// DrillDown are the dimensions whose worst values an alert lists
	// (e.g. the ISPs worst affected at an edge).
	DrillDown []string `yaml:"drill_down"`

	line   int         // where the rule starts in its file
	metric gold.Metric // the resolved metric
}

// Dims are dimension values by dimension name.
type Dims map[string]string

// Severities, most urgent first.
var Severities = []string{"critical", "high", "warning", "info"}

// The ways a condition compares a value.
const (
	CompareThreshold = "threshold"
	CompareBaseline  = "baseline"
	ComparePeers     = "peers"
)

// Condition says when a group breaches and when it is clear again.
//
//   - compare: threshold — the limit is Above (or Below) itself;
//   - compare: baseline — the reference is the group's baseline
//     (gold.Baseline: the median of the same time of day over the previous
//     7 days, else the trailing hour's volume-weighted value);
//   - compare: peers — the reference is the volume-weighted mean of the
//     other groups' values over the same window.
//
// Against a reference, AbovePct sets the limit to reference × (1 +
// AbovePct/100) and Above to reference + Above (BelowPct and Below alike,
// downwards). Resolve (ResolvePct) is the limit the value must come back
// to before the alert resolves: hysteresis, so a value hovering at the limit
// does not flap. By default it is half the firing margin, or 90% of a
// fixed threshold (110% below).
type Condition struct {
	Compare    string   `yaml:"compare"`
	Above      *float64 `yaml:"above"`
	Below      *float64 `yaml:"below"`
	AbovePct   *float64 `yaml:"above_pct"`
	BelowPct   *float64 `yaml:"below_pct"`
	Resolve    *float64 `yaml:"resolve"`
	ResolvePct *float64 `yaml:"resolve_pct"`
}

// direction is "above" or "below": which side of the limit breaches.
func (c Condition) direction() string {
	if c.upward() {
		return "above"
	}
	return "below"
}

// upward reports whether the condition fires on high values.
func (c Condition) upward() bool { return c.Above != nil || c.AbovePct != nil }

// Limits returns the value at which a group breaches and the value it must
// come back to before it is clear, given the reference (ignored for a
// threshold). NaN when the reference is undefined.
func (c Condition) Limits(ref float64) (fire, clear float64) {
	sign := 1.0
	if !c.upward() {
		sign = -1
	}
	if c.Compare == CompareThreshold {
		fire = *cmpOr(c.Above, c.Below)
		clear = fire - sign*0.1*math.Abs(fire)
		if c.Resolve != nil {
			clear = *c.Resolve
		}
		return fire, clear
	}
	if math.IsNaN(ref) {
		return math.NaN(), math.NaN()
	}
	if pct := cmpOr(c.AbovePct, c.BelowPct); pct != nil {
		rp := *pct / 2
		if c.ResolvePct != nil {
			rp = *c.ResolvePct
		}
		return ref * (1 + sign**pct/100), ref * (1 + sign*rp/100)
	}
	margin := *cmpOr(c.Above, c.Below)
	rm := margin / 2
	if c.Resolve != nil {
		rm = *c.Resolve
	}
	return ref + sign*margin, ref + sign*rm
}

// Breaches reports whether v is past the firing limit.
func (c Condition) Breaches(v, fire float64) bool {
	if math.IsNaN(v) || math.IsNaN(fire) {
		return false
	}
	if c.upward() {
		return v > fire
	}
	return v < fire
}

// Clears reports whether v is back within the resolve limit. An undefined
// value (no traffic) is clear: an edge that stopped serving is no longer
// slow.
func (c Condition) Clears(v, clear float64) bool {
	if math.IsNaN(v) || math.IsNaN(clear) {
		return true
	}
	if c.upward() {
		return v <= clear
	}
	return v >= clear
}

func cmpOr(a, b *float64) *float64 {
	if a != nil {
		return a
	}
	return b
}

// Duration is a time.Duration written as "5m", "90s" or "1h30m" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return lineError{n.Line, fmt.Sprintf("%q is not a duration (like 90s, 5m, 1h)", n.Value)}
	}
	*d = Duration(v)
	return nil
}

// lineError is a problem with a value at a line of the file.
type lineError struct {
	line int
	msg  string
}

func (e lineError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

// D is the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalYAML writes the duration as Go writes it.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

//go:embed default_rules.yaml
var defaultRules []byte

// Defaults are the built-in rules, from default_rules.yaml: CDN edge
// latency over its baseline (team traffic), playback errors for one app
// and device type (team product), and an ISP's rebuffering over its peers
// (team support).
func Defaults() []Rule {
	rules, err := Parse("default_rules.yaml", defaultRules)
	if err != nil {
		panic(err) // a test keeps the embedded file valid
	}
	return rules
}

// DefaultRulesYAML is the file the built-in rules are read from.
func DefaultRulesYAML() []byte { return slices.Clone(defaultRules) }

// Load reads and validates a rules file.
func Load(path string) ([]Rule, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, b)
}

// file is a rules file.
type file struct {
	Rules []yaml.Node `yaml:"rules"`
}

// Parse reads rules from YAML and validates them. Every problem found is
// reported, each as "name:line: rule R: problem".
func Parse(name string, data []byte) ([]Rule, error) {
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(f.Rules) == 0 {
		return nil, fmt.Errorf("%s: no rules (want a top-level list \"rules:\")", name)
	}
	var errs []error
	var rules []Rule
	seen := map[string]int{}
	for _, n := range f.Rules {
		var r Rule
		if err := n.Decode(&r); err != nil {
			if le, ok := errors.AsType[lineError](err); ok {
				errs = append(errs, fmt.Errorf("%s:%d: %s", name, le.line, le.msg))
			} else {
				errs = append(errs, fmt.Errorf("%s:%d: %s", name, n.Line, strings.TrimPrefix(err.Error(), "yaml: ")))
			}
			continue
		}
		// yaml.v3's Node.Decode ignores KnownFields: check the keys here.
		if err := knownKeys(n); err != nil {
			errs = append(errs, fmt.Errorf("%s:%s", name, err))
			continue
		}
		r.line = n.Line
		for _, p := range r.validate() {
			errs = append(errs, fmt.Errorf("%s:%d: rule %s: %s", name, r.line, cmp.Or(r.Name, "(unnamed)"), p))
		}
		if first, dup := seen[r.Name]; dup && r.Name != "" {
			errs = append(errs, fmt.Errorf("%s:%d: rule %s: name used before, at line %d", name, r.line, r.Name, first))
		}
		seen[r.Name] = r.line
		rules = append(rules, r)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return rules, nil
}

// ruleKeys and conditionKeys are the fields a rule and its condition may
// have.
var (
	ruleKeys = []string{"name", "description", "metric", "group_by", "where", "window", "condition", "min_volume",
		"for", "resolve_for", "cooldown", "severity", "team", "action", "runbook", "drill_down"}
	conditionKeys = []string{"compare", "above", "below", "above_pct", "below_pct", "resolve", "resolve_pct"}
)

func knownKeys(n yaml.Node) error {
	var check func(n *yaml.Node, keys []string, what string) error
	check = func(n *yaml.Node, keys []string, what string) error {
		if n.Kind != yaml.MappingNode {
			return fmt.Errorf("%d: %s is not a mapping", n.Line, what)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if !slices.Contains(keys, k.Value) {
				return fmt.Errorf("%d: unknown %s field %q (known: %s)", k.Line, what, k.Value, strings.Join(keys, ", "))
			}
			if what == "rule" && k.Value == "condition" {
				if err := check(n.Content[i+1], conditionKeys, "condition"); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return check(&n, ruleKeys, "rule")
}

var namePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// validate lists what is wrong with the rule, and resolves its metric.
func (r *Rule) validate() []string {
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	if !namePattern.MatchString(r.Name) {
		add("name %q: want lower-case letters, digits and _, starting with a letter (it is an SNS attribute)", r.Name)
	}
	m, err := gold.LookupMetric(r.Metric)
	if err != nil {
		var names []string
		for _, x := range gold.Metrics() {
			names = append(names, x.Name)
		}
		add("metric %q is not a gold metric (known: %s)", r.Metric, strings.Join(names, ", "))
	} else {
		r.metric = m
		for _, d := range slices.Concat(r.GroupBy, slices.Collect(maps.Keys(r.Where)), r.DrillDown) {
			if !slices.Contains(m.Dimensions, d) {
				add("%q is not a dimension of %s (%s)", d, m.Table.FullName(), strings.Join(m.Dimensions, ", "))
			}
		}
	}
	if r.Window.D() < time.Minute || r.Window.D()%time.Minute != 0 {
		add("window %s: want whole minutes, at least 1m", r.Window.D())
	}
	for _, d := range []struct {
		name string
		v    Duration
	}{{"for", r.For}, {"resolve_for", r.ResolveFor}, {"cooldown", r.Cooldown}} {
		if d.v < 0 || d.v.D()%time.Minute != 0 {
			add("%s %s: want whole minutes (rules are evaluated every minute)", d.name, d.v.D())
		}
	}
	if r.MinVolume < 0 {
		add("min_volume %d is negative", r.MinVolume)
	}
	if !slices.Contains(Severities, r.Severity) {
		add("severity %q: want one of %s", r.Severity, strings.Join(Severities, ", "))
	}
	if !namePattern.MatchString(r.Team) {
		add("team %q: want lower-case letters, digits and _ (subscriptions filter on it)", r.Team)
	}
	for _, ref := range actionRefs.FindAllStringSubmatch(r.Action, -1) {
		if !slices.Contains(r.GroupBy, ref[1]) && r.Where[ref[1]] == "" {
			add("action names {%s}, which the rule neither groups by nor fixes in where", ref[1])
		}
	}
	p = append(p, r.Condition.validate()...)
	return p
}

var actionRefs = regexp.MustCompile(`\{([a-z_]+)\}`)

func (c Condition) validate() []string {
	var p []string
	set := 0
	for _, v := range []*float64{c.Above, c.Below, c.AbovePct, c.BelowPct} {
		if v != nil {
			set++
		}
	}
	switch c.Compare {
	case CompareThreshold:
		if set != 1 || (c.Above == nil && c.Below == nil) {
			p = append(p, "condition: a threshold takes one of above or below")
		}
		if c.ResolvePct != nil {
			p = append(p, "condition: a threshold resolves at resolve, not resolve_pct")
		}
	case CompareBaseline, ComparePeers:
		if set != 1 {
			p = append(p, "condition: takes one of above, below, above_pct, below_pct")
		}
		if c.Resolve != nil && (c.AbovePct != nil || c.BelowPct != nil) {
			p = append(p, "condition: a percentage margin resolves at resolve_pct, not resolve")
		}
		if c.ResolvePct != nil && (c.Above != nil || c.Below != nil) {
			p = append(p, "condition: an absolute margin resolves at resolve, not resolve_pct")
		}
	default:
		p = append(p, fmt.Sprintf("condition: compare %q: want threshold, baseline or peers", c.Compare))
	}
	for _, v := range []*float64{c.AbovePct, c.BelowPct, c.ResolvePct} {
		if v != nil && *v < 0 {
			p = append(p, "condition: percentages are margins and must not be negative")
		}
	}
	return p
}

// Dashboard path of the view an alert of this rule opens.
func (r Rule) view() string {
	switch {
	case strings.HasPrefix(r.Metric, "cdn."), slices.Contains(r.GroupBy, "edge_location"):
		return "/cdn"
	case slices.Contains(r.GroupBy, "isp") || slices.Contains(r.GroupBy, "country"):
		return "/network"
	case slices.Contains(r.GroupBy, "video_id"):
		return "/content"
	default:
		return "/apps"
	}
}

// ActionFor is the rule's suggested action for a group.
func (r Rule) ActionFor(dims Dims) string {
	return actionRefs.ReplaceAllStringFunc(r.Action, func(ref string) string {
		return cmp.Or(dims[ref[1:len(ref)-1]], "-")
	})
}
