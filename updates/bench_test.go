package updates

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/qoslake/qoslake/gold"
)

// A day of gold: one-minute rows for 50 videos × 2 connection types
// (144,000 player rows) and 10 edges (14,400 CDN rows), and 19,200
// sessions, committed an hour at a time.
const (
	benchVideos   = 50
	benchEdges    = 10
	benchSessions = 800 // per hour
)

func benchGold(b testing.TB) goldLake {
	b.Helper()
	g := openGold(b, b.TempDir())
	r := rand.New(rand.NewPCG(5, 6))
	videos := make([]string, benchVideos)
	for i := range videos {
		videos[i] = fmt.Sprintf("video-%03d", i)
	}
	for h := range 24 {
		mins := seq(h*60, h*60+60)
		appendRows(b, g.gold.PlayerMinute, gold.PlayerMinuteTable, playerRows(r, videos, mins...))
		var cdn []row
		for range benchEdges / 2 {
			cdn = append(cdn, cdnRows(r, mins...)...)
		}
		appendRows(b, g.gold.CDNMinute, gold.CDNMinuteTable, cdn)
		var sessions []row
		for i := range benchSessions {
			start := minute(h*60 + r.IntN(60))
			reason := []string{"stop", "error", "timeout", "open"}[r.IntN(4)]
			sessions = append(sessions, row{"session_key": fmt.Sprintf("s-%02d-%04d", h, i), "user_key": fmt.Sprintf("u-%05d", r.IntN(5000)),
				"video_id": videos[r.IntN(len(videos))], "session_start": start,
				"session_end": start.Add(time.Duration(r.IntN(1800)) * time.Second), "end_reason": reason})
		}
		appendRows(b, g.gold.Sessions, sessionsDef, sessions)
	}
	return g
}

// BenchmarkBuildUpdates measures building all four updates from a day of
// gold minute rows: "first" is a publisher's first build, which reads
// every file of gold.player_minute for total_views; "after_gold_commit"
// is the steady state, a build after gold replaced its newest minute and
// added the next one (the commit is not timed).
func BenchmarkBuildUpdates(b *testing.B) {
	g := benchGold(b)
	ctx := context.Background()
	b.Run("first", func(b *testing.B) {
		for b.Loop() {
			ups, _, err := newBuilder(g.gold).build(ctx, UpdateTypes, nil)
			if err != nil || len(ups) != len(UpdateTypes) {
				b.Fatalf("%d updates, %v", len(ups), err)
			}
		}
	})
	b.Run("after_gold_commit", func(b *testing.B) {
		bl := newBuilder(g.gold)
		if _, _, err := bl.build(ctx, UpdateTypes, nil); err != nil {
			b.Fatal(err)
		}
		r := rand.New(rand.NewPCG(7, 8))
		videos := []string{"video-000", "video-001", "video-002"}
		next := 24 * 60
		for b.Loop() {
			b.StopTimer()
			replaceMinutes(b, g.gold.PlayerMinute, gold.PlayerMinuteTable, []time.Time{minute(next - 1)},
				playerRows(r, videos, next-1, next))
			next++
			b.StartTimer()
			ups, _, err := bl.build(ctx, UpdateTypes, nil)
			if err != nil || len(ups) != len(UpdateTypes) {
				b.Fatalf("%d updates, %v", len(ups), err)
			}
		}
	})
}
