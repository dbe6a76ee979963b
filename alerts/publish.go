package alerts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"

	"github.com/qoslake/qoslake/lake"
)

// SNSAPI is the part of SNS the publisher calls.
type SNSAPI interface {
	Publish(context.Context, *sns.PublishInput, ...func(*sns.Options)) (*sns.PublishOutput, error)
}

// Publisher sends gold.alerts' state changes to the alerts topic in seq
// order, each once: the change was committed before (the outbox), and the
// published position moves only after SNS accepted it. One process
// publishes at a time — it holds a lease in gold.alerts' checkpoint,
// renewed with each position move — so two pipelines running at once do
// not send a change twice.
//
// The one way a change is sent twice is a crash after SNS accepted it and
// before the position moved: it is sent again on restart, with the same
// event_id attribute for consumers to drop it by. An outage of SNS only
// delays: the changes wait in gold.alerts until it accepts them.
type Publisher struct {
	Alerts   *lake.Table
	SNS      SNSAPI
	TopicARN string
	// Owner names this process in the lease (host and pid, say).
	Owner string
	// Lease is how long a lease lasts without renewal (default 1 minute):
	// a publisher that died is taken over after it.
	Lease  time.Duration
	Logger *slog.Logger
	// Now is the clock of the lease (default time.Now).
	Now func() time.Time
	// Observer, if set, is told of each published change.
	Observer Observer
}

// Observer is told what the runner and the publisher did; metrics
// implements it.
type Observer interface {
	// AlertStates reports, after a rule's steps are committed, how many of
	// its groups are in each life cycle state (Pending, Firing, Cooldown).
	AlertStates(rule string, byState map[string]int)
	AlertPublished(a Alert)
	AlertPublishFailed(rule string)
	// AlertsPending is how many committed changes wait to be published.
	AlertsPending(n int)
}

// ErrNotLeader means another process holds the publishing lease.
var ErrNotLeader = errors.New("another process publishes the alerts")

func (p *Publisher) now() time.Time {
	if p.Now == nil {
		return time.Now()
	}
	return p.Now()
}

func (p *Publisher) log() *slog.Logger {
	if p.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Logger
}

// Publish sends every committed, unpublished change, in order, and returns
// how many it sent. A change SNS refuses stops the run (later changes wait
// behind it, keeping the order) and is retried at the next call.
func (p *Publisher) Publish(ctx context.Context) (int, error) {
	if _, err := p.Alerts.Refresh(ctx); err != nil {
		return 0, err
	}
	cp, err := p.Alerts.Checkpoint()
	if err != nil {
		return 0, err
	}
	published, _ := strconv.ParseInt(cp[keyPublished], 10, 64)
	last, _ := strconv.ParseInt(cp[keySeq], 10, 64)
	if p.Observer != nil {
		p.Observer.AlertsPending(int(last - published))
	}
	if last <= published {
		return 0, nil
	}
	owner, until := parseLease(cp[keyLease])
	now := p.now()
	// A lease ending further ahead than a lease lasts was written by a
	// host whose clock runs fast: it does not hold the others off.
	if owner != "" && owner != p.Owner && now.Before(until) && !until.After(now.Add(p.leaseLength())) {
		return 0, ErrNotLeader
	}
	// Take (or renew) the lease before sending anything: a process that
	// loses this race sends nothing.
	lease := p.leaseValue(now)
	if _, err := p.Alerts.Commit(ctx, lake.Batch{Strict: true,
		Advance: []lake.Position{{Key: keyLease, From: cp[keyLease], To: lease}}}); err != nil {
		if errors.Is(err, lake.ErrCheckpointMoved) {
			return 0, ErrNotLeader
		}
		return 0, fmt.Errorf("take the alerts publishing lease: %w", err)
	}
	pending, err := ReadAlerts(ctx, p.Alerts, published, last)
	if err != nil {
		return 0, err
	}
	sent := 0
	pos := cp[keyPublished]
	for _, rec := range pending {
		if rec.Seq != published+int64(sent)+1 {
			return sent, fmt.Errorf("gold.alerts is missing seq %d", published+int64(sent)+1)
		}
		// A send must end while the lease holds: past it, another
		// process may take over and send the same change.
		_, leaseEnd := parseLease(lease)
		sendCtx, cancel := context.WithDeadline(ctx, leaseEnd)
		err := p.send(sendCtx, rec.Alert)
		cancel()
		if err != nil {
			if p.Observer != nil {
				p.Observer.AlertPublishFailed(rec.Alert.Rule)
			}
			p.log().Warn("alert not published; it waits in gold.alerts and is retried", "error", err, "published", sent)
			return sent, err
		}
		if p.Observer != nil {
			p.Observer.AlertPublished(rec.Alert)
		}
		sent++
		// Record it at once, renewing the lease: the next send happens
		// only while this process still holds it. The context may be done
		// (shutdown): what SNS accepted is recorded all the same, or it
		// would be sent again.
		to, renewed := strconv.FormatInt(rec.Seq, 10), p.leaseValue(p.now())
		if renewed == lease {
			renewed = p.leaseValue(p.now().Add(time.Nanosecond))
		}
		_, err = p.Alerts.Commit(context.WithoutCancel(ctx), lake.Batch{Strict: true, Advance: []lake.Position{
			{Key: keyPublished, From: pos, To: to},
			{Key: keyLease, From: lease, To: renewed},
		}})
		if err != nil {
			return sent, fmt.Errorf("record published alert %s: %w", rec.Alert.EventID, err)
		}
		pos, lease = to, renewed
	}
	return sent, nil
}

func (p *Publisher) leaseLength() time.Duration {
	if p.Lease <= 0 {
		return time.Minute
	}
	return p.Lease
}

func (p *Publisher) leaseValue(now time.Time) string {
	return p.Owner + " " + now.Add(p.leaseLength()).UTC().Format(time.RFC3339Nano)
}

func parseLease(v string) (string, time.Time) {
	owner, until, ok := strings.Cut(v, " ")
	if !ok {
		return "", time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, until)
	if err != nil {
		return "", time.Time{}
	}
	return owner, t
}

// send publishes one change: the email text and the JSON document in one
// message (MessageStructure json), with the attributes teams filter on.
func (p *Publisher) send(ctx context.Context, a Alert) error {
	body, err := a.snsMessage()
	if err != nil {
		return err
	}
	attrs := map[string]snstypes.MessageAttributeValue{}
	for k, v := range a.attributes() {
		attrs[k] = snstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	_, err = p.SNS.Publish(ctx, &sns.PublishInput{
		TopicArn: aws.String(p.TopicARN), Subject: aws.String(a.Subject()), Message: aws.String(body),
		MessageStructure: aws.String("json"), MessageAttributes: attrs,
	})
	if err != nil {
		return fmt.Errorf("publish %s: %w", a.EventID, err)
	}
	return nil
}
