package playerevent_test

import (
	"encoding/json"
	"os"
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

func TestParseKeepsPayloadAndTime(t *testing.T) {
	raw := `{"metrictype":"buffer","buffer_type":"firstbuffer","timestamp":1586339633498}`
	evs, _ := playerevent.Parse([]byte(raw), now, playerevent.DefaultLimits)
	if len(evs) != 1 || string(evs[0].Payload) != raw || !evs[0].Time.Equal(time.UnixMilli(1586339633498)) {
		t.Fatalf("got %+v", evs)
	}
}

// The published schema is valid JSON and names every event type accepted.
func TestSchemaMatchesParser(t *testing.T) {
	b, err := os.ReadFile("schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var sc struct {
		Defs struct {
			Event struct {
				Properties struct {
					Metrictype struct {
						Enum []string `json:"enum"`
					} `json:"metrictype"`
				} `json:"properties"`
			} `json:"event"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(b, &sc); err != nil {
		t.Fatal(err)
	}
	enum := sc.Defs.Event.Properties.Metrictype.Enum
	if len(enum) != len(playerevent.Types) {
		t.Errorf("schema lists %v, parser accepts %v", enum, playerevent.Types)
	}
	for _, e := range enum {
		if !playerevent.Types[e] {
			t.Errorf("schema type %s not accepted", e)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"metrictype":"play","timestamp":1772474400000}`))
	f.Add([]byte(`[{"metrictype":"stop","timestamp":1772474400000}, 3]`))
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
