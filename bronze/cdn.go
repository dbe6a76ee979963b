package bronze

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/aws/smithy-go"

	"github.com/qoslake/qoslake/ingest/cloudfront"
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
// once. A message is deleted only after every object it names is
// committed. A redelivered message whose objects are already in bronze
// (same bucket, key and ETag) is only deleted. An object that cannot be
// fetched is retried through the queue; at the queue's last receive its
// reason goes to bronze.rejects and the redrive policy moves it to the DLQ.
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
	pending       []s3sqs.Message
	pendingRefs   map[string]bool
	nRows, nBytes int
	first         time.Time
	batchRefs     []string
	batchRejects  []string
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
	c.pendingRefs = map[string]bool{}
	c.objects, c.rejected = objectRefs(), rejectRefs()
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
	// A flush (commit, then delete) runs to its end even when shutdown
	// begins during it.
	flush := func() error {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		return c.Flush(fctx)
	}
	empties := 0
	for {
		if ctx.Err() != nil {
			return flush()
		}
		wait := 20 * time.Second
		if len(c.pending) > 0 || once {
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
				if ctx.Err() != nil {
					c.release(msgs[i:])
					break
				}
				return err
			}
		}
		full := c.nRows >= c.Batching.MaxRows || c.nBytes >= c.Batching.MaxBytes
		old := len(c.pending) > 0 && time.Since(c.first) >= c.Batching.MaxAge
		if full || old || len(msgs) == 0 {
			if err := flush(); err != nil {
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

func (c *CDNLogs) refresh(ctx context.Context) error {
	if _, err := c.Logs.Refresh(ctx); err != nil {
		return err
	}
	if _, err := c.Rejects.Refresh(ctx); err != nil {
		return err
	}
	if err := c.objects.update(ctx, c.Logs, c.Now()); err != nil {
		return err
	}
	return c.rejected.update(ctx, c.Rejects, c.Now())
}

// staged is what one message produced, added to the batch only when the
// whole message was read.
type staged struct {
	objects []objectLines
	rejects []Reject
}

type objectLines struct {
	obj   s3sqs.Object
	lines []cloudfront.Line
	bytes int
}

func (c *CDNLogs) process(ctx context.Context, m s3sqs.Message) error {
	now := c.Now().UTC()
	var st staged
	if m.ParseErr != nil {
		ref := "sqs://" + c.Queue.URL + "#" + m.ID
		if !c.rejected.has(ref) {
			st.rejects = append(st.rejects, Reject{At: now, Source: "s3", SourceRef: ref, Reason: ReasonNotAnS3Event, Detail: m.ParseErr.Error(), Raw: []byte(m.Body)})
		}
		c.stage(m, st)
		return nil
	}
	stop := c.heartbeat(ctx, m)
	defer stop()
	for _, o := range m.Objects {
		if c.pendingRefs[o.Ref()] {
			continue
		}
		if c.objects.has(o.Ref()) {
			c.Logger.Info("object already in bronze, deleting its message", "object", o.Ref(), "message", m.ID)
			continue
		}
		ol, err := c.readObject(ctx, o, now, &st)
		if err != nil {
			var apiErr smithy.APIError
			if errors.As(err, &apiErr) && apiErr.ErrorCode() == "PreconditionFailed" {
				// Overwritten since the event: the new version has its own event.
				c.Logger.Info("object changed since its event, skipping this version", "object", o.Ref())
				continue
			}
			return c.fail(ctx, m, o, err, now)
		}
		st.objects = append(st.objects, ol)
	}
	c.stage(m, st)
	return nil
}

// fail handles an object that could not be fetched: the message is made
// visible again for a retry, and at its last receive the reason is
// recorded in bronze.rejects (the queue then moves it to the DLQ).
func (c *CDNLogs) fail(ctx context.Context, m s3sqs.Message, o s3sqs.Object, cause error, now time.Time) error {
	c.Logger.Warn("object unreadable", "object", o.Ref(), "receive", m.ReceiveCount, "error", cause)
	if m.ReceiveCount >= c.MaxReceives {
		if !c.rejected.has(o.Ref()) {
			appendReject(c.rejects, Reject{At: now, Source: "s3", SourceRef: o.Ref(), Reason: ReasonObjectUnreadable,
				Detail: fmt.Sprintf("after %d receives: %v", m.ReceiveCount, cause)})
			c.batchRejects = append(c.batchRejects, o.Ref())
			c.Observer.Rejected("s3", ReasonObjectUnreadable)
			// Commit the reject before the message can reach the DLQ.
			if c.first.IsZero() {
				c.first = now
			}
			if err := c.Flush(ctx); err != nil {
				return err
			}
		}
	}
	if err := c.Queue.Release(ctx, m); err != nil {
		c.Logger.Warn("release message", "message", m.ID, "error", err)
	}
	return nil
}

// readObject reads an object's lines; its rejects go to st.
func (c *CDNLogs) readObject(ctx context.Context, o s3sqs.Object, now time.Time, st *staged) (objectLines, error) {
	ol := objectLines{obj: o}
	body, err := c.Queue.Open(ctx, o)
	if err != nil {
		return ol, err
	}
	defer body.Close()
	// Rejects already committed for this object (a crash came between the
	// rejects commit and the lines commit) are not added again.
	seenRejects := c.rejected.has(o.Ref())
	reject := func(ref, reason, detail string, raw []byte) {
		c.Observer.Rejected("s3", reason)
		if !seenRejects {
			st.rejects = append(st.rejects, Reject{At: now, Source: "s3", SourceRef: ref, Reason: reason, Detail: detail, Raw: raw})
		}
	}
	r := cloudfront.NewReader(body, c.MaxLineBytes)
	for {
		l, err := r.Next()
		var le *cloudfront.LineError
		var fe *cloudfront.FormatError
		switch {
		case err == nil:
			ol.lines = append(ol.lines, l)
			ol.bytes += len(l.Text)
			continue
		case errors.As(err, &le):
			reject(fmt.Sprintf("%s:%d", o.Ref(), le.Number), le.Reason, le.Detail, le.Raw)
			continue
		case errors.As(err, &fe):
			reject(o.Ref(), cloudfront.ReasonUnknownFormat, fe.Detail, nil)
		case errors.Is(err, io.EOF):
			c.Observer.ObjectRead(len(ol.lines), ol.bytes)
		default:
			// Truncated gzip and the like: keep the lines before it.
			reject(o.Ref(), cloudfront.ReasonTruncatedInput, err.Error(), nil)
		}
		return ol, nil
	}
}

// stage adds a fully read message to the batch.
func (c *CDNLogs) stage(m s3sqs.Message, st staged) {
	now := c.Now().UTC()
	if c.first.IsZero() {
		c.first = now
	}
	for _, ol := range st.objects {
		o := ol.obj
		for _, l := range ol.lines {
			rb := c.logs
			rb.Time("log_time", l.Time)
			rb.String("bucket", o.Bucket)
			rb.String("object_key", o.Key)
			rb.String("etag", o.ETag)
			rb.Int64("line_number", l.Number)
			rb.String("fields", l.Header.Raw)
			rb.String("line", l.Text)
			rb.Time("ingest_time", now)
		}
		c.nRows += len(ol.lines)
		c.nBytes += ol.bytes
		c.pendingRefs[o.Ref()] = true
		c.batchRefs = append(c.batchRefs, o.Ref())
	}
	for _, r := range st.rejects {
		appendReject(c.rejects, r)
		c.batchRejects = append(c.batchRejects, sourceOf(r.SourceRef))
	}
	c.pending = append(c.pending, m)
}

// Flush commits the batch (rejects first, then lines) and then deletes its
// messages.
func (c *CDNLogs) Flush(ctx context.Context) error {
	if c.first.IsZero() {
		return nil
	}
	start := time.Now()
	rej := c.rejects.Batch()
	defer rej.Release()
	if rej.NumRows() > 0 {
		if _, err := c.Rejects.Commit(ctx, lake.Batch{Records: []arrow.RecordBatch{rej}}); err != nil {
			return fmt.Errorf("commit cdn rejects: %w", err)
		}
	}
	rec := c.logs.Batch()
	defer rec.Release()
	if rec.NumRows() > 0 {
		if _, err := c.Logs.Commit(ctx, lake.Batch{
			Records: []arrow.RecordBatch{rec},
			Summary: map[string]string{"objects": fmt.Sprint(len(c.batchRefs))},
		}); err != nil {
			return fmt.Errorf("commit cdn logs: %w", err)
		}
	}
	c.Observer.BatchCommitted(c.Logs.Name(), int(rec.NumRows()), time.Since(start))
	// Committed: now, and only now, the messages may go. A failed delete
	// means a redelivery, which finds the objects committed.
	if err := c.Queue.Delete(ctx, c.pending); err != nil {
		c.Logger.Warn("delete messages", "error", err)
	}
	for _, ref := range c.batchRefs {
		c.objects.add(ref, start)
	}
	for _, ref := range c.batchRejects {
		c.rejected.add(ref, start)
	}
	c.pending, c.batchRefs, c.batchRejects = nil, nil, nil
	c.pendingRefs = map[string]bool{}
	c.nRows, c.nBytes = 0, 0
	c.first = time.Time{}
	return nil
}

// refIndex knows which sources a table holds rows of, so that checking a
// delivery costs a map lookup: a filtered table scan plans over every
// manifest, which grows with each commit (132 ms an object at 300 commits,
// measured). It is built from the table once, then follows what any
// process appends (reading only the columns it needs). Entries older than
// SQS's longest retention are dropped: no redelivery comes after that.
type refIndex struct {
	fields []string
	refOf  func(cols []*array.String, i int) string
	refs   map[string]time.Time
	at     lake.SnapshotPos
}

const maxRedeliveryAge = 15 * 24 * time.Hour

// objectRefs indexes bronze.cdn_logs by object (bucket, key, ETag).
func objectRefs() *refIndex {
	return &refIndex{fields: []string{"bucket", "object_key", "etag"}, refOf: func(c []*array.String, i int) string {
		return s3sqs.Object{Bucket: c[0].Value(i), Key: c[1].Value(i), ETag: c[2].Value(i)}.Ref()
	}}
}

// rejectRefs indexes bronze.rejects by the object (or message) a reject
// came from: a line's ":<n>" suffix is dropped.
func rejectRefs() *refIndex {
	return &refIndex{fields: []string{"source_ref"}, refOf: func(c []*array.String, i int) string {
		return sourceOf(c[0].Value(i))
	}}
}

// sourceOf turns "s3://b/k@etag:17" into "s3://b/k@etag"; other refs stay.
func sourceOf(ref string) string {
	at := strings.LastIndexByte(ref, '@')
	if !strings.HasPrefix(ref, "s3://") || at < 0 {
		return ref
	}
	if colon := strings.IndexByte(ref[at:], ':'); colon >= 0 {
		return ref[:at+colon]
	}
	return ref
}

func (x *refIndex) has(ref string) bool {
	_, ok := x.refs[ref]
	return ok
}

func (x *refIndex) add(ref string, t time.Time) { x.refs[ref] = t }

// update reads what was appended to the table since the index last looked.
// Our own commits are read again too: harmless, and it keeps the rule
// simple when another process committed in between.
func (x *refIndex) update(ctx context.Context, t *lake.Table, now time.Time) error {
	if x.refs == nil {
		x.refs = map[string]time.Time{}
	}
	if t.Position() == x.at {
		return nil
	}
	cols := make([]*array.String, len(x.fields))
	inc, err := t.ReadAppended(ctx, x.at, lake.ReadOptions{Fields: x.fields}, func(r arrow.RecordBatch) error {
		for i, f := range x.fields {
			cols[i] = r.Column(r.Schema().FieldIndices(f)[0]).(*array.String)
		}
		for i := range int(r.NumRows()) {
			if ref := x.refOf(cols, i); !x.has(ref) {
				x.refs[ref] = now
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, lake.ErrNoChange) {
		return fmt.Errorf("index %s: %w", t.Name(), err)
	}
	x.at = inc.To
	for ref, added := range x.refs {
		if now.Sub(added) > maxRedeliveryAge {
			delete(x.refs, ref)
		}
	}
	return nil
}

// release makes messages visible again, for another consumer or a restart.
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
