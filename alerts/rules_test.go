package alerts

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDefaultRulesAreValid keeps the embedded defaults loadable, with the
// three rules of the seed use case and their teams.
func TestDefaultRulesAreValid(t *testing.T) {
	rules, err := Parse("default_rules.yaml", defaultRules)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rules {
		got[r.Name] = r.Team
	}
	want := map[string]string{"edge_latency": "traffic", "playback_errors": "product", "isp_buffering": "support"}
	if len(got) != len(want) {
		t.Errorf("default rules %v, want %v", got, want)
	}
	for n, team := range want {
		if got[n] != team {
			t.Errorf("rule %s: team %q, want %q", n, got[n], team)
		}
	}
}

// TestBadRulesNameFileLineAndProblem checks that validation reports every
// problem with the file, the line of the rule (or field) and what is wrong.
func TestBadRulesNameFileLineAndProblem(t *testing.T) {
	const bad = `rules:
  - name: slow_edges
    metric: cdn.time_taken_mean_ms
    group_by: [edge]
    window: 5m
    condition: {compare: baseline, above_pct: 10}
    severity: high
    team: traffic
  - name: errors
    metric: player.nonsense
    window: 90s
    condition: {compare: sideways, above: 1}
    severity: loud
    team: product
  - name: typo
    metric: player.error_ratio
    windw: 5m
  - name: slow_edges
    metric: cdn.time_taken_mean_ms
    window: 5m
    for: 30s
    condition: {compare: threshold, above: 100}
    severity: info
    team: traffic
    action: shift {edge_location}
  - name: late
    metric: player.error_ratio
    window: 5m
    cooldown: soon
`
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil {
		t.Fatal("bad rules loaded")
	}
	msg := err.Error()
	for _, want := range []string{
		path + `:2: rule slow_edges: "edge" is not a dimension of gold.cdn_minute`,
		path + `:9: rule errors: metric "player.nonsense" is not a gold metric`,
		path + `:9: rule errors: window 1m30s: want whole minutes`,
		path + `:9: rule errors: condition: compare "sideways"`,
		path + `:9: rule errors: severity "loud"`,
		path + `:17: unknown rule field "windw"`,
		path + `:18: rule slow_edges: name used before, at line 2`,
		path + `:18: rule slow_edges: for 30s: want whole minutes`,
		path + `:29: "soon" is not a duration`,
		path + `:18: rule slow_edges: action names {edge_location}, which the rule neither groups by nor fixes in where`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not say %q; it says:\n%s", want, msg)
		}
	}
}
