package bronze

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/qoslake/qoslake/ingest/s3sqs"
	"github.com/qoslake/qoslake/lake"
)

// Reasons for rejects of whole S3 objects and messages.
const (
	ReasonObjectUnreadable = "object_unreadable"
	ReasonNotAnS3Event     = "not_an_s3_event"
)

// CDNLogs commits CloudFront log objects named by S3 events on the queue
// to bronze.cdn_logs, and what cannot be read to bronze.rejects, exactly
// once, with several processes sharing the queue and the tables.
//
// The steps, each in its own file: the receive loop (here), reading an
// object into chunks (cdn_object.go), and committing a batch of chunks
// and then deleting its messages (cdn_batch.go), with indexes of what the
// tables hold (refindex.go).
//
// A message is deleted only after every object it names is committed. An
// object larger than a batch is committed in several batches with its
// last committed line as a checkpoint, so memory stays bounded and a
// restart resumes after that line. A redelivered message whose objects
// are already in bronze (same bucket, key and ETag) is only deleted. An
// object that cannot be fetched, or whose transfer breaks, commits nothing
// more and is retried through the queue with growing visibility; at the
// queue's last receive its reason goes to bronze.rejects and the redrive
// policy moves it to the DLQ. A compressed object that is corrupt is kept
// up to its last good line, with a truncated_input reject.
type CDNLogs struct {
	Logs, Rejects *lake.Table
	Queue         *s3sqs.Queue
	// MaxReceives is the queue's redrive maxReceiveCount.
	MaxReceives  int
	MaxLineBytes int
	Batching     Batching
	Logger       *slog.Logger
	Observer     Observer
	Now          func() time.Time

	logs, rejects *lake.Rows
	objects       *refIndex // objects bronze.cdn_logs holds lines of
	rejected      *refIndex // objects and messages bronze.rejects holds rejects of
	batch         *cdnBatch
	// lastLost are the objects the last flush dropped because another
	// process holds them: an object being read stops there.
	lastLost map[string]bool
}

func (c *CDNLogs) init() error {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MaxLineBytes <= 0 {
		c.MaxLineBytes = 64 << 10
	}
	if c.MaxReceives <= 0 {
		c.MaxReceives = 5
	}
	c.Batching = c.Batching.withDefaults()
	var err error
	if c.logs, err = c.Logs.NewRows(); err != nil {
		return err
	}
	if c.rejects, err = c.Rejects.NewRows(); err != nil {
		return err
	}
	c.objects, c.rejected = objectRefs(), rejectRefs()
	c.batch = newCDNBatch()
	return nil
}

// Run receives and commits until ctx ends; with once, until the queue is
// empty. What is pending is committed before Run returns.
func (c *CDNLogs) Run(ctx context.Context, once bool) error {
	if err := c.init(); err != nil {
		return err
	}
	defer c.logs.Release()
	defer c.rejects.Release()
	empties := 0
	for {
		if ctx.Err() != nil {
			return c.flushDetached(ctx)
		}
		wait := 20 * time.Second
		if !c.batch.empty() || once {
			wait = time.Second
		}
		msgs, err := c.Queue.Receive(ctx, 10, wait)
		if err != nil {
			if ctx.Err() != nil {
				continue
			}
			return err
		}
		c.Observer.MessagesReceived(c.Queue.URL, len(msgs))
		if len(msgs) > 0 {
			empties = 0
			if err := c.refresh(ctx); err != nil {
				c.release(msgs)
				return err
			}
		}
		for i, m := range msgs {
			if ctx.Err() != nil {
				// Shutting down: hand the unread messages back at once.
				c.release(msgs[i:])
				break
			}
			if err := c.process(ctx, m); err != nil {
				c.release(msgs[i+1:])
				if ctx.Err() != nil {
					break
				}
				return err
			}
		}
		full := c.batch.rows >= c.Batching.MaxRows || c.batch.bytes >= c.Batching.MaxBytes
		old := !c.batch.empty() && time.Since(c.batch.first) >= c.Batching.MaxAge
		if full || old || len(msgs) == 0 {
			if err := c.flushDetached(ctx); err != nil {
				return err
			}
		}
		if len(msgs) == 0 {
			empties++
			// SQS samples servers: one empty receive does not prove the
			// queue is empty, two in a row do. Messages another consumer
			// received and never deleted (it crashed) come back after their
			// visibility timeout: once waits for them too.
			if once && empties >= 2 {
				visible, inFlight, err := c.Queue.Depth(ctx)
				if err != nil {
					return err
				}
				if visible+inFlight == 0 {
					return nil
				}
				c.Logger.Info("waiting for messages in flight to return", "visible", visible, "in_flight", inFlight)
			}
		}
	}
}

// flushDetached runs a flush (commit, then delete) to its end even when
// shutdown begins during it.
func (c *CDNLogs) flushDetached(ctx context.Context) error {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return c.Flush(fctx)
}

func (c *CDNLogs) refresh(ctx context.Context) error {
	if _, err := c.Logs.Refresh(ctx); err != nil {
		return err
	}
	if _, err := c.Rejects.Refresh(ctx); err != nil {
		return err
	}
	if err := c.objects.update(ctx, c.Logs.Name(), c.Logs, c.Now()); err != nil {
		return err
	}
	return c.rejected.update(ctx, c.Rejects.Name(), c.Rejects, c.Now())
}

// process reads the objects of one message into the batch. The message
// joins the batch's done list (deleted after its commit) once all its
// objects are in; on a read failure it is handed back to the queue.
func (c *CDNLogs) process(ctx context.Context, m s3sqs.Message) error {
	now := c.Now().UTC()
	if m.ParseErr != nil {
		ref := "sqs://" + c.Queue.URL + "#" + m.ID
		if !c.rejected.has(wholeKey(ref, ReasonNotAnS3Event)) {
			c.Observer.Rejected("s3", ReasonNotAnS3Event)
			c.batch.add(&chunk{ref: ref, rejectsOnly: true, final: true, rejects: []lineReject{{line: wholeSource, Reject: Reject{
				At: now, Source: "s3", SourceRef: ref, Reason: ReasonNotAnS3Event, Detail: m.ParseErr.Error(), Raw: []byte(m.Body),
			}}}}, now)
		}
		c.batch.finish(m, now)
		return nil
	}
	stop := c.heartbeat(ctx, m)
	defer stop()
	// Every object is tried, even after one fails: the others land now,
	// and a redelivery finds them done.
	var failed []failedObject
	for _, o := range m.Objects {
		err := c.readObject(ctx, o, now)
		var apiErr interface{ ErrorCode() string }
		switch {
		case err == nil:
		case errors.Is(err, errObjectTaken):
			// Another process holds or finished it: look again later, when
			// the redelivery finds it done or resumes it.
			stop()
			c.retryLater(ctx, m)
			return nil
		case errors.As(err, &apiErr) && apiErr.ErrorCode() == "PreconditionFailed":
			// Overwritten since the event: the new version has its own event.
			c.Logger.Info("object changed since its event, skipping this version", "object", o.Ref())
		case ctx.Err() != nil:
			stop()
			c.release([]s3sqs.Message{m})
			return ctx.Err()
		case errors.Is(err, errFlush):
			stop()
			c.release([]s3sqs.Message{m})
			return err
		default:
			failed = append(failed, failedObject{o, err})
		}
	}
	// The heartbeat ends before the message's visibility is set for a
	// retry, so a last tick cannot undo the backoff.
	stop()
	if len(failed) > 0 {
		return c.fail(ctx, m, failed, now)
	}
	c.batch.finish(m, now)
	return nil
}

type failedObject struct {
	obj   s3sqs.Object
	cause error
}

// fail handles objects that could not be read: nothing more of them is
// committed and the message is hidden for a growing while before its next
// try. At its last receive the reason of each is recorded in
// bronze.rejects (the queue then moves the message to the DLQ).
func (c *CDNLogs) fail(ctx context.Context, m s3sqs.Message, failed []failedObject, now time.Time) error {
	for _, f := range failed {
		c.Logger.Warn("object unreadable", "object", f.obj.Ref(), "receive", m.ReceiveCount, "error", f.cause)
	}
	if m.ReceiveCount < c.MaxReceives {
		c.retryLater(ctx, m)
		return nil
	}
	staged := false
	for _, f := range failed {
		if c.rejected.has(wholeKey(f.obj.Ref(), ReasonObjectUnreadable)) {
			continue
		}
		c.Observer.Rejected("s3", ReasonObjectUnreadable)
		c.batch.add(&chunk{ref: f.obj.Ref(), rejectsOnly: true, final: true, rejects: []lineReject{{line: wholeSource, Reject: Reject{
			At: now, Source: "s3", SourceRef: f.obj.Ref(), Reason: ReasonObjectUnreadable,
			Detail: fmt.Sprintf("after %d receives: %v", m.ReceiveCount, f.cause),
		}}}}, now)
		staged = true
	}
	if staged {
		// Commit the rejects before the message can reach the DLQ; if that
		// fails, hand the message back so it is not dead-lettered without.
		if err := c.Flush(ctx); err != nil {
			c.retryLater(ctx, m)
			return err
		}
	}
	c.release([]s3sqs.Message{m})
	return nil
}

// retryLater hides a message for the queue's backoff.
func (c *CDNLogs) retryLater(ctx context.Context, m s3sqs.Message) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := c.Queue.Retry(ctx, m); err != nil {
		c.Logger.Warn("hide message for a retry", "message", m.ID, "error", err)
	}
}

// release makes messages visible again at once, for another consumer or a
// restart.
func (c *CDNLogs) release(msgs []s3sqs.Message) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, m := range msgs {
		if err := c.Queue.Release(ctx, m); err != nil {
			c.Logger.Warn("release message", "message", m.ID, "error", err)
		}
	}
}

// heartbeat extends the message's visibility while it is being read, so a
// large object is not handed to another consumer mid-way.
func (c *CDNLogs) heartbeat(ctx context.Context, m s3sqs.Message) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(max(c.Queue.Visibility/3, time.Second))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := c.Queue.Extend(ctx, m); err != nil && ctx.Err() == nil {
					c.Logger.Warn("extend visibility", "message", m.ID, "error", err)
				}
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}
