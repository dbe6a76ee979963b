package alerts

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/url"
	"slices"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"
)

// Alert is one state change of an alert with every fact a person or a
// machine needs to act on it: the JSON document machines receive, and what
// the email says in words.
type Alert struct {
	// EventID names this state change (AlertID and State): a consumer
	// that may see a message twice (SNS delivers at least once) drops
	// repeats by it.
	EventID string `json:"event_id"`
	// AlertID names the incident, the same in its fired and resolved
	// messages.
	AlertID     string `json:"alert_id"`
	State       string `json:"state"` // fired or resolved
	Rule        string `json:"rule"`
	Description string `json:"description"`
	Team        string `json:"team"`
	Severity    string `json:"severity"`
	Metric      string `json:"metric"`
	Unit        string `json:"unit"`
	// Dimensions are the group's values (and the rule's fixed where
	// values): where the trouble is.
	Dimensions map[string]string `json:"dimensions"`
	// WindowStart and WindowEnd bound the window evaluated at the step
	// that changed the state.
	WindowStart time.Time `json:"window_start"`
	WindowEnd   time.Time `json:"window_end"`
	Value       float64   `json:"value"`
	Volume      int64     `json:"volume"`
	// Compare is threshold, baseline or peers; Reference the baseline or
	// the peers' value (the threshold itself for threshold), described in
	// words by ReferenceText; Limit the value the condition fires past.
	// Value, Reference and Limit are null in JSON when undefined (no
	// traffic, no baseline).
	Compare       string  `json:"compare"`
	Reference     float64 `json:"reference"`
	ReferenceText string  `json:"reference_text"`
	Limit         float64 `json:"limit"`
	// Direction is above or below: which side of Limit breaches.
	Direction string `json:"direction"`
	// Since is when the condition started to hold; FiredAt when the alert
	// fired; ResolvedAt when it resolved (resolved messages only).
	Since      time.Time `json:"since"`
	FiredAt    time.Time `json:"fired_at"`
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
	// Worst are the worst affected values of the rule's drill-down
	// dimensions inside the group, worst first.
	Worst     []Worst `json:"worst,omitempty"`
	Action    string  `json:"action"`
	Runbook   string  `json:"runbook,omitempty"`
	Dashboard string  `json:"dashboard,omitempty"`
}

// Worst is one affected value of a drill-down dimension.
type Worst struct {
	Dimension string  `json:"dimension"`
	Of        string  `json:"value"`
	Value     float64 `json:"metric_value"`
	Volume    int64   `json:"volume"`
}

// Where says where the trouble is in words: "edge_location FRA56-P3".
func (a Alert) Where() string {
	keys := slices.Sorted(maps.Keys(a.Dimensions))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+" "+orDash(a.Dimensions[k]))
	}
	if len(parts) == 0 {
		return "all traffic"
	}
	return strings.Join(parts, ", ")
}

// Delta is the value against its reference in words: "+520% vs baseline".
func (a Alert) Delta() string {
	if a.Compare == CompareThreshold || a.Reference == 0 || math.IsNaN(a.Reference) {
		return fmt.Sprintf("limit %s", formatValue(a.Limit, a.Unit))
	}
	return fmt.Sprintf("%+.0f%% vs %s", 100*(a.Value-a.Reference)/a.Reference, a.Compare)
}

// maxSubject is SNS's limit on an email subject (ASCII, no line breaks).
const maxSubject = 100

// Subject is the email subject: state, severity, rule, where, value.
func (a Alert) Subject() string {
	s := fmt.Sprintf("[%s %s] %s: %s %s (%s)", strings.ToUpper(a.State), a.Severity, a.Rule, a.Where(),
		formatValue(a.Value, a.Unit), a.Delta())
	return subjectSafe(s)
}

// subjectSafe keeps printable ASCII (SNS refuses anything else in a
// subject) and cuts to maxSubject characters.
func subjectSafe(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 0x20 && r < 0x7f:
			b.WriteRune(r)
		case r == '\n' || r == '\t':
			b.WriteByte(' ')
		default:
			b.WriteByte('?')
		}
	}
	out := b.String()
	if len(out) > maxSubject {
		out = out[:maxSubject-3] + "..."
	}
	return out
}

var emailTemplate = template.Must(template.New("email").Funcs(template.FuncMap{
	"value": formatValue, "upper": strings.ToUpper, "time": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
	"dash": orDash, "volumeUnit": volumeUnit,
}).Parse(`{{upper .State}}: {{.Description}}

What:   {{.Rule}} ({{.Severity}}, team {{.Team}})
Where:  {{.Where}}
Value:  {{value .Value .Unit}} over {{time .WindowStart}} - {{time .WindowEnd}} ({{.Volume}} {{volumeUnit .}})
{{if eq .Compare "threshold"}}Limit:  {{value .Limit .Unit}}
{{else}}Versus: {{value .Reference .Unit}}, the {{.ReferenceText}} ({{.Delta}}; fires {{.Direction}} {{value .Limit .Unit}})
{{end}}Since:  {{time .Since}}{{if eq .State "resolved"}}, fired {{time .FiredAt}}, resolved {{time .ResolvedAt}}{{end}}
{{if .Worst}}
Worst affected:
{{range .Worst}}  {{.Dimension}} {{dash .Of}}: {{value .Value $.Unit}} ({{.Volume}})
{{end}}{{end}}
{{if eq .State "fired"}}Suggested action: {{.Action}}
{{else}}The condition has cleared; no action needed.
{{end}}{{if .Dashboard}}Dashboard: {{.Dashboard}}
{{end}}{{if .Runbook}}Runbook:   {{.Runbook}}
{{end}}
Alert {{.AlertID}}
`))

// Text is the plain-text email.
func (a Alert) Text() string {
	var b bytes.Buffer
	if err := emailTemplate.Execute(&b, a); err != nil {
		return fmt.Sprintf("%s\n\n(email rendering failed: %v)", a.Subject(), err)
	}
	return b.String()
}

// volumeUnit names what an alert's volume counts.
func volumeUnit(a Alert) string {
	if strings.HasPrefix(a.Metric, "cdn.") {
		return "requests"
	}
	return "samples"
}

// formatValue shows a metric value with its unit.
func formatValue(v float64, unit string) string {
	switch {
	case math.IsNaN(v):
		return "n/a"
	case unit == "ratio":
		return fmt.Sprintf("%.2f%%", 100*v)
	case unit == "ms":
		return fmt.Sprintf("%.0f ms", v)
	case unit == "bps":
		return fmt.Sprintf("%.2f Mbit/s", v/1e6)
	case unit == "":
		return fmt.Sprintf("%.3g", v)
	default:
		return fmt.Sprintf("%.3g %s", v, unit)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// DashboardLink is the drill-down URL of an alert: the rule's view,
// filtered to the group, over the hour around the window.
func DashboardLink(base string, r Rule, dims map[string]string, start, end time.Time) string {
	if base == "" {
		return ""
	}
	q := url.Values{}
	for k, v := range dims {
		q.Set(k, v)
	}
	q.Set("from", start.Add(-30*time.Minute).UTC().Format(time.RFC3339))
	q.Set("to", end.Add(30*time.Minute).UTC().Format(time.RFC3339))
	q.Set("alert", r.Name)
	return strings.TrimSuffix(base, "/") + r.view() + "?" + q.Encode()
}

// JSON is the document machines receive.
func (a Alert) JSON() []byte {
	b, err := json.Marshal(a)
	if err != nil {
		panic(err) // an Alert always marshals: undefined values are null
	}
	return b
}

// MarshalJSON writes undefined (NaN or infinite) values as null, which
// JSON can hold and a consumer cannot mistake for a measured 0.
func (a Alert) MarshalJSON() ([]byte, error) {
	type plain Alert
	return json.Marshal(struct {
		plain
		Value     *float64 `json:"value"`
		Reference *float64 `json:"reference"`
		Limit     *float64 `json:"limit"`
	}{plain(a), defined(a.Value), defined(a.Reference), defined(a.Limit)})
}

// UnmarshalJSON reads what MarshalJSON writes, null as NaN.
func (a *Alert) UnmarshalJSON(b []byte) error {
	type plain Alert
	aux := struct {
		*plain
		Value     *float64 `json:"value"`
		Reference *float64 `json:"reference"`
		Limit     *float64 `json:"limit"`
	}{plain: (*plain)(a)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	a.Value, a.Reference, a.Limit = orNaN(aux.Value), orNaN(aux.Reference), orNaN(aux.Limit)
	return nil
}

// defined is v, or nil when it is NaN or infinite.
func defined(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

func orNaN(v *float64) float64 {
	if v == nil {
		return math.NaN()
	}
	return *v
}

// snsMessage is the MessageStructure=json body: the email protocol gets
// the text, every machine protocol the JSON document.
func (a Alert) snsMessage() (string, error) {
	doc := string(a.JSON())
	text := a.Text()
	body := map[string]string{
		"default": text, "email": text, "email-json": doc,
		"sqs": doc, "lambda": doc, "http": doc, "https": doc, "firehose": doc, "application": doc,
	}
	b, err := json.Marshal(body)
	return string(b), err
}

// attributeName is a dimension as an SNS attribute name.
func attributeName(dim string) string { return dim }

// attributes are the message attributes teams filter on: rule, team,
// severity, state, event id, and the group's dimension values (SNS allows
// ten; the dimensions come after the fixed five and are cut to fit).
func (a Alert) attributes() map[string]string {
	out := map[string]string{
		"rule": a.Rule, "team": a.Team, "severity": a.Severity, "state": a.State, "event_id": a.EventID,
	}
	for _, k := range slices.Sorted(maps.Keys(a.Dimensions)) {
		if len(out) == 10 {
			break
		}
		v := a.Dimensions[k]
		if v == "" || !utf8.ValidString(v) {
			continue // SNS refuses an empty attribute value
		}
		out[attributeName(k)] = v
	}
	return out
}
