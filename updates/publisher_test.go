package updates

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"
	"github.com/aws/smithy-go"

	"github.com/qoslake/qoslake/lake"
)

var reads = map[UpdateType][]string{
	ActiveUsers: {"gold.sessions"},
	RecentViews: {"gold.player_minute"},
	TotalViews:  {"gold.player_minute"},
	KPISummary:  {"gold.player_minute", "gold.cdn_minute"},
}

// fakeBuilder builds one small update per type asked, numbered in build
// order, and records what it was asked.
type fakeBuilder struct {
	videos int           // per update: a list this long, split as needed
	block  chan struct{} // when set, the first build waits for it
	fail   int           // the first builds that fail for failOf
	failOf UpdateType    // "": every type

	mu    sync.Mutex
	calls [][]UpdateType
	ids   []string
}

func (b *fakeBuilder) build(ctx context.Context, types []UpdateType, _ map[UpdateType]lake.Pins) ([]*update, []UpdateType, error) {
	b.mu.Lock()
	call := len(b.calls)
	b.calls = append(b.calls, slices.Clone(types))
	b.mu.Unlock()
	if call == 0 && b.block != nil {
		select {
		case <-b.block:
		case <-ctx.Done():
			return nil, types, ctx.Err()
		}
	}
	if call < b.fail && b.failOf == "" {
		return nil, types, errBuild
	}
	var out []*update
	var failed []UpdateType
	for _, t := range types {
		if call < b.fail && t == b.failOf {
			failed = append(failed, t)
			continue
		}
		id := fmt.Sprintf("%s-%d", t, call)
		env := envelope{SchemaVersion: SchemaVersion, UpdateType: t, UpdateID: id}
		videos := make([]VideoViews, b.videos)
		for i := range videos {
			videos[i] = VideoViews{VideoID: fmt.Sprintf("video-%06d-%s", i, t), Views: int64(i)}
		}
		msgs, err := listed(&env, videos, MaxMessageBytes, func(v json.RawMessage) any {
			return totalViewsBody{envelope: env, VideoCount: len(videos), Videos: v}
		})
		if err != nil {
			return nil, types, err
		}
		out = append(out, &update{typ: t, id: id, pins: lake.Pins{"gold.x": {SnapshotID: int64(call + 1)}}, msgs: msgs})
		b.mu.Lock()
		b.ids = append(b.ids, id)
		b.mu.Unlock()
	}
	if len(failed) > 0 {
		return out, failed, errBuild
	}
	return out, nil, nil
}

func (b *fakeBuilder) builds() [][]UpdateType {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.calls)
}

// publishedIDs are the update ids of the accepted messages, in order, once
// each.
func publishedIDs(t *testing.T, f *fakeSNS) []string {
	t.Helper()
	var out []string
	for _, b := range f.acceptedBodies() {
		var env envelope
		if err := json.Unmarshal([]byte(b), &env); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(out, env.UpdateID) {
			out = append(out, env.UpdateID)
		}
	}
	return out
}

func opts(obs Observer) Options {
	return Options{TopicARN: "arn:aws:sns:us-east-1:123456789012:qoslake-updates", Observer: obs}
}

func closeNow(t *testing.T, p *Publisher) {
	t.Helper()
	if err := p.Close(t.Context()); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// Notifications that arrive while an update is being built fold into one
// newer update per type: nothing queues up, and each fold is counted.
func TestLatestWins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeSNS{t: t}
		b := &fakeBuilder{block: make(chan struct{})}
		obs := newObserved()
		p := start(f, b.build, reads, opts(obs))
		p.Notify()
		synctest.Wait() // the first build is under way, blocked
		for range 5 {
			p.Notify("gold.player_minute")
		}
		p.Notify("gold.unrelated")
		close(b.block)
		closeNow(t, p)

		want := [][]UpdateType{UpdateTypes, {RecentViews, TotalViews, KPISummary}}
		if got := b.builds(); !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("builds = %v, want %v", got, want)
		}
		for _, tc := range []struct {
			t                     UpdateType
			published, superseded int
		}{{ActiveUsers, 1, 0}, {RecentViews, 2, 4}, {TotalViews, 2, 4}, {KPISummary, 2, 4}} {
			if got := obs.get(obs.published, tc.t); got != tc.published {
				t.Errorf("%s: %d published, want %d", tc.t, got, tc.published)
			}
			if got := obs.get(obs.superseded, tc.t); got != tc.superseded {
				t.Errorf("%s: %d superseded, want %d", tc.t, got, tc.superseded)
			}
		}
		if got := f.callCount(); got != 2 {
			t.Errorf("%d PublishBatch calls, want 2 (one per round, 4 and 3 entries)", got)
		}
	})
}

// However slow SNS is, Notify returns at once, and memory holds one
// pending update per type.
func TestNotifyNeverBlocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		f := &fakeSNS{t: t, respond: func(_ int, in *sns.PublishBatchInput) (*sns.PublishBatchOutput, error) {
			<-release
			return acceptAll(in), nil
		}}
		b := &fakeBuilder{}
		obs := newObserved()
		p := start(f, b.build, reads, opts(obs))
		p.Notify()
		synctest.Wait() // publishing, blocked in SNS
		for range 10_000 {
			p.Notify() // a deadlock here fails the bubble
		}
		p.mu.Lock()
		pending := len(p.dirty)
		p.mu.Unlock()
		if pending != len(UpdateTypes) {
			t.Errorf("%d pending updates, want %d (one per type)", pending, len(UpdateTypes))
		}
		close(release)
		closeNow(t, p)
		if got := len(b.builds()); got != 2 {
			t.Errorf("%d builds, want 2", got)
		}
		if got := obs.get(obs.superseded, KPISummary); got != 9_999 {
			t.Errorf("kpi_summary superseded %d times, want 9999", got)
		}
	})
}

func throttled() error {
	return &smithy.GenericAPIError{Code: "Throttling", Message: "Rate exceeded", Fault: smithy.FaultClient}
}

// Throttling and transient errors are retried with exponential backoff
// with jitter, up to the attempt limit; then the messages count as failed
// and the publisher goes on.
func TestRetryBackoff(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		failures  int // calls that fail before one succeeds
		attempts  int
		calls     int
		published bool
	}{
		{"throttled twice", throttled(), 2, 8, 3, true},
		{"server fault", &smithy.GenericAPIError{Code: "InternalError", Fault: smithy.FaultServer}, 1, 8, 2, true},
		{"retries exhausted", throttled(), 100, 3, 3, false},
		{"permanent error", &smithy.GenericAPIError{Code: "AuthorizationError", Fault: smithy.FaultClient}, 100, 8, 1, false},
		{"context canceled by SNS client", context.Canceled, 100, 8, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var times []time.Time
				f := &fakeSNS{t: t, respond: func(call int, in *sns.PublishBatchInput) (*sns.PublishBatchOutput, error) {
					times = append(times, time.Now())
					if call < tc.failures {
						return nil, tc.err
					}
					return acceptAll(in), nil
				}}
				obs := newObserved()
				o := opts(obs)
				o.MaxAttempts = tc.attempts
				p := start(f, (&fakeBuilder{}).build, map[UpdateType][]string{KPISummary: reads[KPISummary]}, o)
				p.Notify()
				closeNow(t, p)

				if len(times) != tc.calls {
					t.Fatalf("%d calls, want %d", len(times), tc.calls)
				}
				for i := 1; i < len(times); i++ {
					// Try i waited for backoff(i): the upper half of
					// 200 ms × 2^(i-1).
					d, full := times[i].Sub(times[i-1]), defaultMinBackoff<<(i-1)
					if d < full/2 || d > full {
						t.Errorf("wait before try %d: %s, want %s to %s", i+1, d, full/2, full)
					}
				}
				pub, failed := obs.get(obs.published, KPISummary), obs.get(obs.failed, KPISummary)
				if tc.published && (pub != 1 || failed != 0) {
					t.Errorf("published %d, failed %d; want 1, 0", pub, failed)
				}
				if !tc.published && (pub != 0 || failed != 1) {
					t.Errorf("published %d, failed %d; want 0, 1", pub, failed)
				}
				if got, want := obs.get(obs.retried, KPISummary), tc.calls-1; got != want {
					t.Errorf("retried %d, want %d", got, want)
				}
			})
		})
	}
}

// The backoff grows to its cap and stays there.
func TestBackoffIsCapped(t *testing.T) {
	p := &Publisher{minWait: defaultMinBackoff, maxWait: defaultMaxBackoff}
	for attempt := 1; attempt < 100; attempt++ {
		full := min(defaultMinBackoff<<min(attempt-1, 20), defaultMaxBackoff)
		if d := p.backoff(attempt); d < full/2 || d > full {
			t.Errorf("backoff(%d) = %s, want %s to %s", attempt, d, full/2, full)
		}
	}
}

// PublishBatch can fail some entries of a request: the retryable ones are
// sent again (alone), the ones SNS refuses for good are counted, and the
// others are published once.
func TestPartialBatchFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeSNS{t: t, respond: func(call int, in *sns.PublishBatchInput) (*sns.PublishBatchOutput, error) {
			switch call {
			case 0:
				return acceptExcept(in, map[string]snstypes.BatchResultErrorEntry{
					"recent_views-1": {Code: aws.String("InternalError"), SenderFault: false},
					"total_views-1":  {Code: aws.String("Throttling"), SenderFault: true},
					"kpi_summary-1":  {Code: aws.String("InvalidParameter"), Message: aws.String("bad"), SenderFault: true},
				}), nil
			case 1:
				// SNS answered for none: the outcome is unknown.
				return &sns.PublishBatchOutput{}, nil
			}
			return acceptAll(in), nil
		}}
		obs := newObserved()
		p := start(f, (&fakeBuilder{}).build, reads, opts(obs))
		p.Notify()
		closeNow(t, p)

		var sent [][]string
		for _, c := range f.calls {
			var ids []string
			for _, e := range c {
				ids = append(ids, aws.ToString(e.Id))
			}
			sent = append(sent, ids)
		}
		want := [][]string{
			{"active_users-1", "recent_views-1", "total_views-1", "kpi_summary-1"},
			{"recent_views-1", "total_views-1"},
			{"recent_views-1", "total_views-1"},
		}
		if !slices.EqualFunc(sent, want, func(a, b []string) bool { return slices.Equal(sorted(a), sorted(b)) }) {
			t.Errorf("requests = %v, want %v", sent, want)
		}
		for typ, want := range map[UpdateType][2]int{ActiveUsers: {1, 0}, RecentViews: {1, 0}, TotalViews: {1, 0}, KPISummary: {0, 1}} {
			if pub, failed := obs.get(obs.published, typ), obs.get(obs.failed, typ); pub != want[0] || failed != want[1] {
				t.Errorf("%s: published %d, failed %d; want %v", typ, pub, failed, want)
			}
		}
		// kpi_summary was not published whole: the next notification
		// publishes it even though the builder's pins have not moved.
		if _, ok := p.last[KPISummary]; ok {
			t.Error("kpi_summary recorded as published")
		}
	})
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

// A retry waiting out a throttle is dropped when a newer update of its type
// is pending: the newer state is published instead, and the dropped one is
// counted superseded.
func TestRetrySupersededByNewerUpdate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeSNS{t: t, respond: func(call int, in *sns.PublishBatchInput) (*sns.PublishBatchOutput, error) {
			if call == 0 {
				return nil, throttled()
			}
			return acceptAll(in), nil
		}}
		b := &fakeBuilder{}
		obs := newObserved()
		p := start(f, b.build, reads, opts(obs))
		p.Notify("gold.cdn_minute")
		synctest.Wait() // waiting out the backoff
		p.Notify("gold.cdn_minute")
		closeNow(t, p)

		if got, want := publishedIDs(t, f), []string{"kpi_summary-1"}; !slices.Equal(got, want) {
			t.Errorf("published %v, want %v (kpi_summary-0 superseded)", got, want)
		}
		if got := obs.get(obs.superseded, KPISummary); got != 1 {
			t.Errorf("superseded %d, want 1", got)
		}
		if got := obs.get(obs.failed, KPISummary); got != 0 {
			t.Errorf("failed %d, want 0", got)
		}
	})
}

// A failed read of gold is tried again after a backoff; the update is
// published once gold answers, and the updates that could be built are
// published meanwhile.
func TestBuildRetried(t *testing.T) {
	for _, tc := range []struct {
		name   string
		failOf UpdateType
		builds [][]UpdateType
	}{
		{"every type", "", [][]UpdateType{UpdateTypes, UpdateTypes, UpdateTypes}},
		{"one type", ActiveUsers, [][]UpdateType{UpdateTypes, {ActiveUsers}, {ActiveUsers}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fakeSNS{t: t}
				b := &fakeBuilder{fail: 2, failOf: tc.failOf}
				obs := newObserved()
				p := start(f, b.build, reads, opts(obs))
				began := time.Now()
				p.Notify()
				synctest.Wait()
				if tc.failOf != "" && f.callCount() != 1 {
					t.Errorf("%d requests while %s failed, want the other updates published at once", f.callCount(), tc.failOf)
				}
				closeNow(t, p)
				if got := b.builds(); !slices.EqualFunc(got, tc.builds, slices.Equal) {
					t.Errorf("builds %v, want %v", got, tc.builds)
				}
				if d := time.Since(began); d < defaultMinBackoff/2+defaultMinBackoff || d > 3*defaultMinBackoff {
					t.Errorf("built after %s, want two backoffs", d)
				}
				for _, typ := range UpdateTypes {
					if got := obs.get(obs.published, typ); got != 1 {
						t.Errorf("%s published %d times, want 1", typ, got)
					}
				}
				if obs.builds != 2 {
					t.Errorf("%d build failures counted, want 2", obs.builds)
				}
			})
		})
	}
}

// Close publishes what is pending before it returns; a second Close is a
// no-op, and Notify after Close does nothing.
func TestCloseFlushesPending(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeSNS{t: t}
		b := &fakeBuilder{block: make(chan struct{})}
		p := start(f, b.build, reads, opts(nil))
		p.Notify("gold.sessions")
		synctest.Wait()
		p.Notify() // pending while the first build runs
		go func() {
			synctest.Wait()
			close(b.block)
		}()
		closeNow(t, p)
		if got, want := publishedIDs(t, f), []string{"active_users-0", "active_users-1", "recent_views-1", "total_views-1", "kpi_summary-1"}; !slices.Equal(got, want) {
			t.Errorf("published %v, want %v", got, want)
		}
		closeNow(t, p)
		p.Notify()
		synctest.Wait()
		if got := len(b.builds()); got != 2 {
			t.Errorf("%d builds, want 2 (nothing after Close)", got)
		}
	})
}

// Close gives up at its deadline when SNS keeps throttling: the retries
// stop, the messages count as failed, and Close returns the deadline.
func TestCloseDeadlineCutsRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeSNS{t: t, respond: func(int, *sns.PublishBatchInput) (*sns.PublishBatchOutput, error) {
			return nil, throttled()
		}}
		obs := newObserved()
		o := opts(obs)
		o.MaxAttempts = 1_000
		p := start(f, (&fakeBuilder{}).build, reads, o)
		p.Notify()
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		began := time.Now()
		err := p.Close(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("close: %v, want the deadline", err)
		}
		if d := time.Since(began); d != 30*time.Second {
			t.Errorf("close took %s, want its 30 s deadline", d)
		}
		for _, typ := range UpdateTypes {
			if got := obs.get(obs.failed, typ); got != 1 {
				t.Errorf("%s: %d failed, want 1", typ, got)
			}
		}
		if err := p.Close(t.Context()); err != nil {
			t.Errorf("second close: %v", err)
		}
	})
}

// A big update goes out in parts within SNS's limits (checked by the fake
// on every request), each part once.
func TestBigUpdatesPublishedInParts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeSNS{t: t}
		b := &fakeBuilder{videos: 20_000}
		obs := newObserved()
		p := start(f, b.build, reads, opts(obs))
		p.Notify("gold.player_minute")
		closeNow(t, p)
		bodies := f.acceptedBodies()
		parts := map[string][]int{}
		for _, body := range bodies {
			var env envelope
			if err := json.Unmarshal([]byte(body), &env); err != nil {
				t.Fatal(err)
			}
			parts[env.UpdateID] = append(parts[env.UpdateID], env.Part)
			if len(parts[env.UpdateID]) == 1 && env.Parts < 3 {
				t.Errorf("%s: %d parts, want several", env.UpdateID, env.Parts)
			}
		}
		for id, ps := range parts {
			slices.Sort(ps)
			for i, part := range ps {
				if part != i+1 {
					t.Errorf("%s: parts %v, want 1..n once each", id, ps)
					break
				}
			}
		}
		if len(parts) != 3 {
			t.Errorf("%d updates published, want 3", len(parts))
		}
		if f.callCount() >= len(bodies) {
			t.Logf("%d requests for %d messages", f.callCount(), len(bodies))
		}
	})
}
