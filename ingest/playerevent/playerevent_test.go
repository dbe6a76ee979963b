package playerevent_test

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qoslake/qoslake/ingest/playerevent"
)

var now = time.Date(2026, 3, 2, 18, 0, 0, 0, time.UTC)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name    string
		data    string
		types   []string
		reasons []string
	}{
		{"one event", `{"metrictype":"play","timestamp":1772474400000,"user_id":"u"}`, []string{"play"}, nil},
		{"array", `[{"metrictype":"play","timestamp":1772474400000},{"metrictype":"stop","timestamp":1772474401000}]`, []string{"play", "stop"}, nil},
		{"bad event in array keeps the good ones", `[{"metrictype":"play","timestamp":1772474400000},{"metrictype":"nope","timestamp":1},{"metrictype":"stop"}]`,
			[]string{"play"}, []string{"unknown_event_type", "missing_timestamp"}},
		{"malformed json", `{"metrictype":"play",`, nil, []string{"malformed_json"}},
		{"malformed array", `[{"metrictype":"play"`, nil, []string{"malformed_json"}},
		{"invalid utf-8", "{\"metrictype\":\"play\",\"x\":\"\xff\xfe\",\"timestamp\":1772474400000}", nil, []string{"invalid_utf8"}},
		{"missing type", `{"timestamp":1772474400000}`, nil, []string{"missing_event_type"}},
		{"type not a string", `{"metrictype":7,"timestamp":1772474400000}`, nil, []string{"missing_event_type"}},
		{"missing timestamp", `{"metrictype":"play"}`, nil, []string{"missing_timestamp"}},
		{"timestamp in seconds", `{"metrictype":"play","timestamp":1772474400}`, nil, []string{"absurd_timestamp"}},
		{"timestamp in the far future", `{"metrictype":"play","timestamp":4102444800000}`, nil, []string{"absurd_timestamp"}},
		{"timestamp a string", `{"metrictype":"play","timestamp":"soon"}`, nil, []string{"absurd_timestamp"}},
		{"not an object", `"play"`, nil, []string{"not_an_object"}},
		{"empty", `  `, nil, []string{"empty_record"}},
		{"empty array", `[]`, nil, []string{"empty_record"}},
		{"sdk form", `{"MetricType":"PLAY","at":0,"duration":597,"user_id":"u","video_id":"v","TimeStamp":1772474400000}` + "\n", []string{"play"}, nil},
		{"keys and values in any case", `[{"METRICTYPE":"FirstFrame","TIMESTAMP":1772474400000},{"metricType":"sTOP","timeStamp":1772474400000}]`, []string{"firstframe", "stop"}, nil},
		{"unknown type in upper case", `{"MetricType":"TELEPORT","TimeStamp":1772474400000}`, nil, []string{"unknown_event_type"}},
		{"sdk timestamp is a number, never a string", `{"MetricType":"PLAY","TimeStamp":"1772474400000"}`, nil, []string{"absurd_timestamp"}},
		{"ndjson", `{"MetricType":"PLAY","TimeStamp":1772474400000}` + "\n" + `{"MetricType":"STOP","TimeStamp":1772474401000}` + "\n", []string{"play", "stop"}, nil},
		{"ndjson with a bad line keeps the others", "{\"metrictype\":\"play\",\"timestamp\":1772474400000}\n\n{\"metrictype\":\n[{\"metrictype\":\"stop\",\"timestamp\":1772474401000},3]\r\n{\"metrictype\":\"seek\"}",
			[]string{"play", "stop"}, []string{"malformed_json", "not_an_object", "missing_timestamp"}},
		{"pretty-printed object", "{\n  \"MetricType\": \"PAUSE\",\n  \"TimeStamp\": 1772474400000\n}\n", []string{"pause"}, nil},
		{"oversized", `{"metrictype":"play","timestamp":1772474400000,"pad":"` + strings.Repeat("x", 2<<20) + `"}`, nil, []string{"oversized_record"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs, rejs := playerevent.Parse([]byte(tc.data), now, playerevent.DefaultLimits)
			var types, reasons []string
			for _, e := range evs {
				types = append(types, e.Type)
				if !json.Valid(e.Payload) {
					t.Errorf("payload %q is not the event's JSON", e.Payload)
				}
			}
			for _, r := range rejs {
				reasons = append(reasons, r.Reason)
				if r.Detail == "" || len(r.Raw) == 0 {
					t.Errorf("reject %+v lacks detail or raw bytes", r)
				}
			}
			if strings.Join(types, ",") != strings.Join(tc.types, ",") || strings.Join(reasons, ",") != strings.Join(tc.reasons, ",") {
				t.Errorf("events %v rejects %v, want %v and %v", types, reasons, tc.types, tc.reasons)
			}
		})
	}
}

// Events of one record are numbered across arrays and NDJSON lines, rejects
// included, and each payload is its own line without the newline.
func TestParseNumbersEvents(t *testing.T) {
	rec := `{"MetricType":"PLAY","TimeStamp":1772474400000}` + "\n" + `[{"MetricType":"STREAM","TimeStamp":1772474400001},{"MetricType":"NOPE","TimeStamp":1}]` + "\n" + `{"MetricType":"STOP","TimeStamp":1772474400002}` + "\n"
	evs, rejs := playerevent.Parse([]byte(rec), now, playerevent.DefaultLimits)
	var got []string
	for _, e := range evs {
		got = append(got, fmt.Sprintf("%d:%s", e.Index, e.Type))
	}
	if strings.Join(got, " ") != "0:play 1:stream 3:stop" || len(rejs) != 1 || rejs[0].Index != 2 {
		t.Fatalf("events %v rejects %+v", got, rejs)
	}
	if string(evs[2].Payload) != `{"MetricType":"STOP","TimeStamp":1772474400002}` {
		t.Errorf("payload %q", evs[2].Payload)
	}
}

func TestTypeNamesAreTheTypes(t *testing.T) {
	evs, _ := playerevent.Parse([]byte(`[{"MetricType":"PLAY","TimeStamp":1772474400000},{"MetricType":"FirstFrame","TimeStamp":1772474400000},{"MetricType":"SEEK","TimeStamp":1772474400000},{"MetricType":"BUFFER","TimeStamp":1772474400000},{"MetricType":"STREAM","TimeStamp":1772474400000},{"MetricType":"STEP","TimeStamp":1772474400000},{"MetricType":"PAUSE","TimeStamp":1772474400000},{"MetricType":"ERROR","TimeStamp":1772474400000},{"MetricType":"STOP","TimeStamp":1772474400000}]`), now, playerevent.DefaultLimits)
	seen := map[string]bool{}
	for _, e := range evs {
		seen[e.Type] = true
	}
	if len(seen) != len(playerevent.Types) {
		t.Errorf("upper-case types read as %v", seen)
	}
	for typ := range seen {
		if !playerevent.Types[typ] {
			t.Errorf("%q is not canonical", typ)
		}
	}
}

func TestParseKeepsPayloadAndTime(t *testing.T) {
	raw := `{"metrictype":"buffer","buffer_type":"firstbuffer","timestamp":1586339633498}`
	evs, _ := playerevent.Parse([]byte(raw), now, playerevent.DefaultLimits)
	if len(evs) != 1 || string(evs[0].Payload) != raw || !evs[0].Time.Equal(time.UnixMilli(1586339633498)) {
		t.Fatalf("got %+v", evs)
	}
}

type schemaForm struct {
	Required   []string                   `json:"required"`
	Properties map[string]json.RawMessage `json:"properties"`
	Examples   []json.RawMessage          `json:"examples"`
}

// The published schema describes what the parser accepts: in each form,
// the event type enum is exactly the parser's types (in that form's case),
// the two forms have the same fields but for case, and every example is
// accepted as a record of its own (JSON.stringify(event)+"\n") with the type
// it names. Every event type has an example in each form.
func TestSchemaMatchesParser(t *testing.T) {
	b, err := os.ReadFile("schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var sc struct {
		Defs map[string]schemaForm `json:"$defs"`
	}
	if err := json.Unmarshal(b, &sc); err != nil {
		t.Fatal(err)
	}
	forms := map[string]struct{ typeKey, timeKey string }{
		"sdk":       {"MetricType", "TimeStamp"},
		"lowercase": {"metrictype", "timestamp"},
	}
	lowered := map[string][]string{}
	for name, keys := range forms {
		f, ok := sc.Defs[name]
		if !ok {
			t.Fatalf("schema has no $defs/%s", name)
		}
		if strings.Join(f.Required, ",") != keys.typeKey+","+keys.timeKey {
			t.Errorf("%s requires %v", name, f.Required)
		}
		var typ struct {
			Enum []string `json:"enum"`
		}
		if err := json.Unmarshal(f.Properties[keys.typeKey], &typ); err != nil {
			t.Fatalf("%s.%s: %v", name, keys.typeKey, err)
		}
		enum := map[string]bool{}
		for _, e := range typ.Enum {
			canon := strings.ToLower(e)
			if !playerevent.Types[canon] || (name == "sdk") != (e == strings.ToUpper(e)) {
				t.Errorf("%s: schema type %q is not a parser type in this form's case", name, e)
			}
			enum[canon] = true
		}
		if len(enum) != len(playerevent.Types) {
			t.Errorf("%s lists %v, parser accepts %v", name, typ.Enum, playerevent.Types)
		}
		for p := range f.Properties {
			lowered[name] = append(lowered[name], strings.ToLower(p))
		}
		slices.Sort(lowered[name])
		seen := map[string]bool{}
		for _, ex := range f.Examples {
			var fields map[string]any
			if err := json.Unmarshal(ex, &fields); err != nil {
				t.Fatal(err)
			}
			for k := range fields {
				if _, ok := f.Properties[k]; !ok {
					t.Errorf("%s example %s: field %s is not in the schema", name, ex, k)
				}
			}
			evs, rejs := playerevent.Parse(append(ex, '\n'), now, playerevent.DefaultLimits)
			if len(rejs) > 0 || len(evs) != 1 {
				t.Errorf("%s example %s rejected: %+v", name, ex, rejs)
				continue
			}
			if want := strings.ToLower(fields[keys.typeKey].(string)); evs[0].Type != want {
				t.Errorf("%s example typed %s, want %s", name, evs[0].Type, want)
			}
			seen[evs[0].Type] = true
		}
		for typ := range playerevent.Types {
			if !seen[typ] {
				t.Errorf("%s form has no example of %s", name, typ)
			}
		}
	}
	if !slices.Equal(lowered["sdk"], lowered["lowercase"]) {
		t.Errorf("forms differ in fields:\n%v\n%v", lowered["sdk"], lowered["lowercase"])
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"metrictype":"play","timestamp":1772474400000}`))
	f.Add([]byte(`[{"metrictype":"stop","timestamp":1772474400000}, 3]`))
	f.Add([]byte(`{"MetricType":"PLAY","TimeStamp":1772474400000}` + "\n" + `{"MetricType":"STOP","TimeStamp":1772474400000}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		evs, rejs := playerevent.Parse(data, now, playerevent.DefaultLimits)
		if len(evs) == 0 && len(rejs) == 0 {
			t.Fatalf("%q: neither accepted nor rejected", data)
		}
		// Whatever is accepted is valid JSON by the standard library's
		// reading, and a JSON object.
		for _, e := range evs {
			if !json.Valid(e.Payload) || e.Payload[0] != '{' {
				t.Fatalf("%q: accepted invalid event %q", data, e.Payload)
			}
		}
	})
}
