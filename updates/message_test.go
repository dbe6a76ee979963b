package updates

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// manyVideos are n videos whose ids need escaping in JSON and are not all
// ASCII, so sizes are bytes of the encoded body, not characters.
func manyVideos(n int) []VideoViews {
	out := make([]VideoViews, n)
	for i := range out {
		out[i] = VideoViews{VideoID: fmt.Sprintf("vidéo-%07d-<&>-%s", i, strings.Repeat("x", i%40)), Views: int64(n - i)}
	}
	return out
}

func encodeViews(t *testing.T, videos []VideoViews, limit int) []message {
	t.Helper()
	asOf := time.Date(2026, 3, 2, 12, 5, 0, 0, time.UTC)
	env := envelope{SchemaVersion: SchemaVersion, UpdateType: TotalViews, UpdateID: "id-1", GeneratedAt: asOf,
		AsOfEventTime: &asOf, GoldSnapshots: map[string]string{"gold.player_minute": "5981772093164411802"}}
	msgs, err := listed(&env, videos, limit, func(v json.RawMessage) any {
		return totalViewsBody{envelope: env, VideoCount: len(videos), Views: 42, Videos: v}
	})
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

// A list too long for one message is split into parts of whole entries,
// each within the limit with its attributes, in order, each carrying the
// rest of the body and its part number.
func TestListSplitsWithinMessageLimit(t *testing.T) {
	videos := manyVideos(50_000)
	msgs := encodeViews(t, videos, MaxMessageBytes)
	if len(msgs) < 5 {
		t.Fatalf("%d parts, want the list split", len(msgs))
	}
	var got []VideoViews
	for i, m := range msgs {
		if m.size() > MaxMessageBytes {
			t.Errorf("part %d: %d bytes, over %d", i+1, m.size(), MaxMessageBytes)
		}
		if i < len(msgs)-1 && m.size() < MaxMessageBytes*95/100 {
			t.Errorf("part %d: %d bytes; parts but the last should be nearly full", i+1, m.size())
		}
		var body struct {
			envelope
			VideoCount int          `json:"video_count"`
			Views      int64        `json:"views"`
			Videos     []VideoViews `json:"videos"`
		}
		if err := json.Unmarshal(m.body, &body); err != nil {
			t.Fatalf("part %d: %v", i+1, err)
		}
		if body.Part != i+1 || body.Parts != len(msgs) || body.UpdateID != "id-1" || body.VideoCount != len(videos) || body.Views != 42 {
			t.Errorf("part %d: part %d of %d, update %s, %d videos, %d views", i+1, body.Part, body.Parts, body.UpdateID, body.VideoCount, body.Views)
		}
		for name, want := range map[string]string{AttrUpdateType: "total_views", AttrUpdateID: "id-1",
			AttrPart: strconv.Itoa(i + 1), AttrParts: strconv.Itoa(len(msgs))} {
			if v := aws.ToString(m.attrs[name].StringValue); v != want {
				t.Errorf("part %d: attribute %s = %q, want %q", i+1, name, v, want)
			}
		}
		got = append(got, body.Videos...)
	}
	if !slices.Equal(got, videos) {
		t.Errorf("parts hold %d videos, want the %d in order", len(got), len(videos))
	}
}

func TestListEdgeCases(t *testing.T) {
	t.Run("empty list is one part", func(t *testing.T) {
		msgs := encodeViews(t, nil, MaxMessageBytes)
		if len(msgs) != 1 || !strings.Contains(string(msgs[0].body), `"videos":[]`) {
			t.Errorf("got %d parts: %s", len(msgs), msgs[0].body)
		}
	})
	t.Run("exact fit", func(t *testing.T) {
		// Whatever the limit, every part fits and nothing is lost.
		videos := manyVideos(300)
		for limit := 1200; limit < 1400; limit++ {
			msgs := encodeViews(t, videos, limit)
			n := 0
			for _, m := range msgs {
				if m.size() > limit {
					t.Fatalf("limit %d: part of %d bytes", limit, m.size())
				}
				n += strings.Count(string(m.body), `"video_id"`)
			}
			if n != len(videos) {
				t.Fatalf("limit %d: %d videos in the parts, want %d", limit, n, len(videos))
			}
		}
	})
	t.Run("entry larger than a message", func(t *testing.T) {
		env := envelope{UpdateType: TotalViews, UpdateID: "x"}
		_, err := listed(&env, []VideoViews{{VideoID: strings.Repeat("v", MaxMessageBytes)}}, MaxMessageBytes,
			func(v json.RawMessage) any { return totalViewsBody{envelope: env, Videos: v} })
		if err == nil {
			t.Error("no error")
		}
	})
}

// Requests hold at most 10 messages and 256 KiB.
func TestBatchesWithinRequestLimits(t *testing.T) {
	msg := func(bytes int) outgoing {
		return outgoing{u: &update{typ: KPISummary}, m: message{typ: KPISummary, body: make([]byte, bytes)}}
	}
	repeat := func(n, bytes int) []outgoing {
		out := make([]outgoing, n)
		for i := range out {
			out[i] = msg(bytes)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		msgs []outgoing
		want []int // messages per request
	}{
		{"small messages, ten a request", repeat(25, 100), []int{10, 10, 5}},
		{"100 KiB messages, two a request", repeat(5, 100*1024), []int{2, 2, 1}},
		{"full messages, one a request", repeat(3, MaxMessageBytes), []int{1, 1, 1}},
		{"mixed", append(append(repeat(3, 1000), msg(MaxMessageBytes)), repeat(12, 1000)...), []int{3, 1, 10, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []int
			for _, b := range batches(tc.msgs) {
				got = append(got, len(b))
				size := 0
				for _, o := range b {
					size += o.m.size()
				}
				if size > MaxBatchBytes {
					t.Errorf("request of %d bytes", size)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("requests of %v messages, want %v", got, tc.want)
			}
		})
	}
}
