package updates

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"
	"github.com/aws/smithy-go"

	"github.com/qoslake/qoslake/lake"
)

// SNS is the part of the SNS API the publisher calls.
type SNS interface {
	PublishBatch(ctx context.Context, in *sns.PublishBatchInput, optFns ...func(*sns.Options)) (*sns.PublishBatchOutput, error)
}

// Observer is told what the publisher did, so the caller can export
// metrics without this package depending on a metrics library. updateType
// is an UpdateType.
type Observer interface {
	// Published: SNS accepted messages of an update type at time at.
	Published(updateType string, messages int, at time.Time)
	// Failed: messages given up on (refused by SNS, retries exhausted, or
	// cut off by Close's deadline).
	Failed(updateType string, messages int)
	// Retried: messages sent again after a throttle or a transient error.
	Retried(updateType string, messages int)
	// Superseded: a pending update replaced by a newer one of its type
	// before it was published (a notification folded into a later one, or
	// a retry dropped because newer content was waiting).
	Superseded(updateType string)
	// BuildFailed: reading gold for the pending updates failed.
	BuildFailed()
}

type nopObserver struct{}

func (nopObserver) Published(string, int, time.Time) {}
func (nopObserver) Failed(string, int)               {}
func (nopObserver) Retried(string, int)              {}
func (nopObserver) Superseded(string)                {}
func (nopObserver) BuildFailed()                     {}

// Options configure a Publisher.
type Options struct {
	// TopicARN is the updates topic. Required.
	TopicARN string
	// Recent is N, the window of active_users and recent_views (default 15
	// minutes, whole minutes).
	Recent time.Duration
	// MaxAttempts bounds the tries of a message, and of a build, before it
	// is given up (default 8). Backoff between tries is exponential with
	// jitter, from MinBackoff (default 200 ms) up to MaxBackoff (default
	// 20 s).
	MaxAttempts            int
	MinBackoff, MaxBackoff time.Duration
	Logger                 *slog.Logger
	Observer               Observer
	// Now is the clock of generated_at (default time.Now).
	Now func() time.Time
}

// Defaults.
const (
	DefaultRecent      = 15 * time.Minute
	DefaultMaxAttempts = 8
	defaultMinBackoff  = 200 * time.Millisecond
	defaultMaxBackoff  = 20 * time.Second
)

// Publisher publishes the gold updates. Notify never blocks; one goroutine
// builds and publishes what is pending, the newest state of each update
// type only. Close flushes what is pending and stops it.
type Publisher struct {
	sns      SNS
	topicARN string
	build    buildFunc
	enabled  []UpdateType            // the types published, in UpdateTypes order
	reads    map[UpdateType][]string // the gold tables each type reads
	log      *slog.Logger
	obs      Observer
	attempts int
	minWait  time.Duration
	maxWait  time.Duration
	now      func() time.Time

	mu     sync.Mutex
	dirty  map[UpdateType]bool // notified, not yet built
	closed bool

	wake      chan struct{} // capacity 1: a pending notification
	stop      chan struct{} // closed by Close
	done      chan struct{} // closed when the goroutine has ended
	cancel    context.CancelFunc
	closeOnce sync.Once

	// last are the pins of the last update of each type that was published
	// whole: a notification that finds gold where it was publishes nothing.
	// Only the goroutine touches it.
	last map[UpdateType]lake.Pins
}

// New starts a Publisher of the updates of g to the topic. An update type
// whose tables are missing from g (Sessions before gold.sessions exists) is
// not published.
func New(client SNS, g Gold, o Options) (*Publisher, error) {
	if o.TopicARN == "" {
		return nil, errors.New("updates: no topic ARN")
	}
	if o.Recent <= 0 {
		o.Recent = DefaultRecent
	}
	if o.Recent%time.Minute != 0 {
		return nil, fmt.Errorf("updates: recent window %s is not whole minutes (gold windows are one minute)", o.Recent)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	b := &builder{gold: g, recent: o.Recent, now: o.Now, limit: MaxMessageBytes}
	reads := map[UpdateType][]string{}
	for _, t := range UpdateTypes {
		for _, tbl := range g.tablesOf(t) {
			reads[t] = append(reads[t], tbl.Name())
		}
	}
	if len(reads) == 0 {
		return nil, errors.New("updates: no gold tables")
	}
	return start(client, b.build, reads, o), nil
}

// buildFunc computes the updates of types that gold changed since the pins
// of the last ones published; failed are the types it could not build.
type buildFunc func(ctx context.Context, types []UpdateType, last map[UpdateType]lake.Pins) (ups []*update, failed []UpdateType, err error)

// start runs a publisher over any build function (tests give their own),
// publishing the update types of reads.
func start(client SNS, build buildFunc, reads map[UpdateType][]string, o Options) *Publisher {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = defaultMinBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(o.MinBackoff, defaultMaxBackoff)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	// The goroutine outlives the caller's contexts on purpose: Close
	// decides how long it may go on.
	ctx, cancel := context.WithCancel(context.Background())
	p := &Publisher{
		sns: client, topicARN: o.TopicARN, build: build, reads: reads,
		log: o.Logger, obs: o.Observer, attempts: o.MaxAttempts,
		minWait: o.MinBackoff, maxWait: o.MaxBackoff, now: o.Now,
		dirty: map[UpdateType]bool{},
		wake:  make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		cancel: cancel,
		last:   map[UpdateType]lake.Pins{},
	}
	for _, t := range UpdateTypes {
		if len(reads[t]) > 0 {
			p.enabled = append(p.enabled, t)
		}
	}
	go p.run(ctx)
	return p
}

// Notify says that the named gold tables (e.g. "gold.player_minute") have
// committed; with no names, that any may have. It returns at once: the
// update types reading those tables are marked pending, and a pending one
// that was not built yet is superseded by this newer state. After Close it
// does nothing.
func (p *Publisher) Notify(tables ...string) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	for _, t := range p.enabled {
		if len(tables) > 0 && !slices.ContainsFunc(tables, func(name string) bool { return slices.Contains(p.reads[t], name) }) {
			continue
		}
		if p.dirty[t] {
			p.obs.Superseded(string(t))
		}
		p.dirty[t] = true
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default: // already woken
	}
}

// Close stops taking notifications, publishes what is pending, and waits
// for that until ctx ends; then it cuts retries short (the messages are
// counted failed) and returns ctx's error. It may be called more than once.
func (p *Publisher) Close(ctx context.Context) error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		close(p.stop)
	})
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		p.cancel()
		<-p.done
		return fmt.Errorf("close updates publisher: %w", ctx.Err())
	}
}

// run builds and publishes until Close, then flushes what is pending.
func (p *Publisher) run(ctx context.Context) {
	defer close(p.done)
	defer p.cancel()
	for {
		select {
		case <-p.wake:
			p.drain(ctx)
		case <-p.stop:
			p.drain(ctx)
			return
		}
	}
}

// drain builds and publishes until nothing is pending. The types whose
// build failed stay pending and are tried again after a backoff, up to the
// attempt limit; after that the next notification tries again.
func (p *Publisher) drain(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		types := p.take()
		if len(types) == 0 {
			return
		}
		ups, failed, err := p.build(ctx, types, p.last)
		p.publish(ctx, ups)
		if err == nil {
			failures = 0
			continue
		}
		p.mark(failed)
		if ctx.Err() != nil {
			return
		}
		failures++
		p.obs.BuildFailed()
		if failures >= p.attempts {
			p.log.Error("gold updates not built; waiting for the next gold commit",
				"update_types", failed, "attempts", failures, "error", err)
			return
		}
		p.log.Warn("gold updates not built; retrying", "update_types", failed, "attempt", failures, "error", err)
		if sleep(ctx, p.backoff(failures)) != nil {
			return
		}
	}
}

// take returns the pending update types and clears them.
func (p *Publisher) take() []UpdateType {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []UpdateType
	for _, t := range p.enabled {
		if p.dirty[t] {
			out = append(out, t)
			delete(p.dirty, t)
		}
	}
	return out
}

// mark makes types pending again (a build failed).
func (p *Publisher) mark(types []UpdateType) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range types {
		p.dirty[t] = true
	}
}

// pending reports whether a newer update of t waits to be built.
func (p *Publisher) pending(t UpdateType) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dirty[t]
}

// outgoing is a message of an update still to publish.
type outgoing struct {
	u *update
	m message
}

// publish sends the messages of the updates in batches within SNS limits,
// retrying throttles, transient errors and retryable per-entry failures
// with backoff. A retry of an update that a newer one is waiting to replace
// is dropped: the newer state is what to publish.
func (p *Publisher) publish(ctx context.Context, ups []*update) {
	var todo []outgoing
	left := map[*update]int{} // messages not yet accepted
	failed := map[*update]bool{}
	for _, u := range ups {
		for _, m := range u.msgs {
			todo = append(todo, outgoing{u, m})
		}
		left[u] = len(u.msgs)
	}
	for attempt := 1; len(todo) > 0; attempt++ {
		var retry []outgoing
		for _, batch := range batches(todo) {
			retry = append(retry, p.send(ctx, batch, left, failed)...)
		}
		if len(retry) == 0 {
			break
		}
		if attempt >= p.attempts || ctx.Err() != nil {
			reason := "retries exhausted"
			if ctx.Err() != nil {
				reason = "publisher closing"
			}
			p.giveUp(retry, failed, reason, nil)
			break
		}
		if sleep(ctx, p.backoff(attempt)) != nil {
			p.giveUp(retry, failed, "publisher closing", ctx.Err())
			break
		}
		todo = todo[:0]
		dropped := map[*update]bool{}
		for _, o := range retry {
			if p.pending(o.u.typ) {
				if !dropped[o.u] {
					dropped[o.u] = true
					p.obs.Superseded(string(o.u.typ))
					p.log.Info("gold update superseded while retrying", "update_type", o.u.typ, "update_id", o.u.id)
				}
				continue
			}
			todo = append(todo, o)
		}
		for t, n := range countByType(todo) {
			p.obs.Retried(string(t), n)
		}
	}
	for _, u := range ups {
		if left[u] == 0 && !failed[u] {
			p.last[u.typ] = u.pins
			p.log.Debug("gold update published", "update_type", u.typ, "update_id", u.id, "messages", len(u.msgs))
		}
	}
}

// send publishes one batch and returns the messages to try again; it
// counts what was published and what failed for good.
func (p *Publisher) send(ctx context.Context, batch []outgoing, left map[*update]int, failed map[*update]bool) []outgoing {
	in := &sns.PublishBatchInput{TopicArn: aws.String(p.topicARN)}
	byID := make(map[string]outgoing, len(batch))
	for _, o := range batch {
		id := o.m.entryID()
		byID[id] = o
		in.PublishBatchRequestEntries = append(in.PublishBatchRequestEntries, snstypes.PublishBatchRequestEntry{
			Id: aws.String(id), Message: aws.String(string(o.m.body)), MessageAttributes: o.m.attrs,
		})
	}
	out, err := p.sns.PublishBatch(ctx, in)
	if err != nil {
		if ctx.Err() == nil && transient(err) {
			p.log.Warn("publish gold updates: transient error, retrying", "messages", len(batch), "error", err)
			return batch
		}
		if ctx.Err() != nil {
			return batch // counted by the caller, which stops
		}
		p.giveUp(batch, failed, "refused", err)
		return nil
	}
	now := p.now()
	published := map[UpdateType]int{}
	for _, s := range out.Successful {
		o, ok := byID[aws.ToString(s.Id)]
		if !ok {
			continue
		}
		delete(byID, aws.ToString(s.Id))
		left[o.u]--
		published[o.u.typ]++
	}
	for t, n := range published {
		p.obs.Published(string(t), n, now)
	}
	var again []outgoing
	for _, f := range out.Failed {
		o, ok := byID[aws.ToString(f.Id)]
		if !ok {
			continue
		}
		delete(byID, aws.ToString(f.Id))
		entryErr := fmt.Errorf("%s: %s", aws.ToString(f.Code), aws.ToString(f.Message))
		if f.SenderFault && !retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(&smithy.GenericAPIError{Code: aws.ToString(f.Code)}).Bool() {
			p.giveUp([]outgoing{o}, failed, "refused", entryErr)
			continue
		}
		again = append(again, o)
	}
	// An entry SNS reported neither way (moto drops some errors): its
	// outcome is unknown, and sending state twice does no harm.
	for _, o := range byID {
		again = append(again, o)
	}
	return again
}

// giveUp counts and logs messages that will not be published.
func (p *Publisher) giveUp(msgs []outgoing, failed map[*update]bool, reason string, err error) {
	for t, n := range countByType(msgs) {
		p.obs.Failed(string(t), n)
	}
	for _, o := range msgs {
		failed[o.u] = true
	}
	args := []any{"messages", len(msgs), "reason", reason}
	if err != nil {
		args = append(args, "error", err)
	}
	for _, o := range msgs[:1] {
		args = append(args, "update_type", o.u.typ, "update_id", o.u.id)
	}
	p.log.Error("gold updates not published", args...)
}

func countByType(msgs []outgoing) map[UpdateType]int {
	out := map[UpdateType]int{}
	for _, o := range msgs {
		out[o.u.typ]++
	}
	return out
}

// batches packs messages, in order, into PublishBatch requests of at most
// MaxBatchEntries messages and MaxBatchBytes bytes.
func batches(msgs []outgoing) [][]outgoing {
	var out [][]outgoing
	var cur []outgoing
	size := 0
	for _, o := range msgs {
		n := o.m.size()
		if len(cur) > 0 && (len(cur) == MaxBatchEntries || size+n > MaxBatchBytes) {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, o)
		size += n
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// transient reports errors worth trying again: throttling, server faults
// and cut connections (the SDK's own retryables), and network timeouts.
func transient(err error) bool {
	if retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err) == aws.TrueTernary {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorFault() == smithy.FaultServer {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// backoff is the wait before try attempt+1: exponential from minWait,
// capped at maxWait, with jitter over its upper half so that publishers
// throttled together do not retry together.
func (p *Publisher) backoff(attempt int) time.Duration {
	d := p.minWait << min(attempt-1, 20)
	if d > p.maxWait || d <= 0 {
		d = p.maxWait
	}
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
