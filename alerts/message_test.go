package alerts

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

// TestMessageOfAnUndefinedValue: a value with no traffic behind it is null
// for machines and "n/a" for people, never a measured-looking 0; the
// subject fits SNS's limit in printable ASCII; attributes carry what teams
// filter on and skip empty values.
func TestMessageOfAnUndefinedValue(t *testing.T) {
	at := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	a := Alert{EventID: "r/g/x/resolved", AlertID: "r/g/x", State: Resolved, Rule: "isp_buffering", Team: "support",
		Severity: "warning", Metric: "session.rebuffering_ratio", Unit: "ratio",
		Dimensions:  map[string]string{"isp": strings.Repeat("Ünïcode ISP ", 20), "country": ""},
		WindowStart: at, WindowEnd: at.Add(5 * time.Minute), Value: math.NaN(), Reference: 0.01, Limit: math.NaN(),
		Compare: ComparePeers, ReferenceText: "group had no traffic in the window", Direction: "above",
		Since: at, FiredAt: at, ResolvedAt: at.Add(5 * time.Minute)}
	var doc map[string]any
	if err := json.Unmarshal(a.JSON(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["value"] != nil || doc["limit"] != nil || doc["reference"] != 0.01 {
		t.Errorf("JSON value %v, limit %v, reference %v: want null, null, 0.01", doc["value"], doc["limit"], doc["reference"])
	}
	var back Alert
	if err := json.Unmarshal(a.JSON(), &back); err != nil || !math.IsNaN(back.Value) || back.Reference != 0.01 {
		t.Errorf("read back: %+v, %v", back, err)
	}
	if text := a.Text(); !strings.Contains(text, "Value:  n/a") || strings.Contains(text, "Value:  0") {
		t.Errorf("email text:\n%s", text)
	}
	subj := a.Subject()
	if len(subj) > maxSubject || strings.ContainsFunc(subj, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
		t.Errorf("subject %q: %d characters", subj, len(subj))
	}
	attrs := a.attributes()
	if attrs["team"] != "support" || attrs["state"] != "resolved" || attrs["isp"] == "" {
		t.Errorf("attributes %v", attrs)
	}
	if _, ok := attrs["country"]; ok {
		t.Errorf("empty country sent as an attribute: %v", attrs)
	}
}
