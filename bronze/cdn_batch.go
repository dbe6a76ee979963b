package bronze

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/google/uuid"

	"github.com/qoslake/qoslake/ingest/cloudfront"
	"github.com/qoslake/qoslake/ingest/s3sqs"
	"github.com/qoslake/qoslake/lake"
)

// objectKeyPrefix prefixes the bronze.cdn_logs checkpoint key of an object
// committed in several batches: its value is the last line committed, and
// the key is removed with the object's last batch. Objects read in one
// batch (nearly all) never get a key.
const objectKeyPrefix = "object:"

// chunk is part of one object's lines (or all of them), with the rejects
// of those lines.
type chunk struct {
	ref      string       // object (or message) the rows come from
	obj      s3sqs.Object // zero for a message's own reject
	from, to int64        // lines (from, to] are in this chunk; from is committed
	final    bool         // the object ends in this chunk
	read     time.Time    // when it was read: its rows' ingest_time
	lines    []cloudfront.Line
	rejects  []lineReject
	bytes    int
	// rejectsOnly chunks carry a reject about a source and no lines
	// (a message that is not an S3 event, an object unreadable for good).
	rejectsOnly bool
}

type lineReject struct {
	line int64 // wholeSource for a reject about the whole source
	Reject
}

func (ch *chunk) rows() int { return len(ch.lines) + len(ch.rejects) }

// position is the checkpoint move of a chunk of an object read in several
// batches, or false for an object read in one.
func (ch *chunk) position() (lake.Position, bool) {
	if ch.rejectsOnly || (ch.from == 0 && ch.final) {
		return lake.Position{}, false
	}
	p := lake.Position{Key: objectKeyPrefix + ch.ref}
	if ch.from > 0 {
		p.From = strconv.FormatInt(ch.from, 10)
	}
	if !ch.final {
		p.To = strconv.FormatInt(ch.to, 10)
	}
	return p, true
}

// cdnBatch is what the next commit holds: chunks of objects and their
// rejects, and the messages to delete (or retry) once it lands. It keeps
// plain values rather than Arrow builders, so a commit that fails can be
// tried again as it is, and one that conflicts over an object can drop that
// object's chunk and go again.
type cdnBatch struct {
	id            string
	chunks        []*chunk
	done          []s3sqs.Message // every object of these is in this batch or before
	retry         []s3sqs.Message // their object was taken by another process
	rejectsLanded bool
	first         time.Time
	rows, bytes   int
	lost          map[string]bool // objects dropped from this batch by a conflict
}

func newCDNBatch() *cdnBatch { return &cdnBatch{id: uuid.NewString(), lost: map[string]bool{}} }

func (b *cdnBatch) empty() bool {
	return len(b.chunks) == 0 && len(b.done) == 0 && len(b.retry) == 0
}

func (b *cdnBatch) has(ref string) bool {
	for _, ch := range b.chunks {
		if ch.ref == ref && !ch.rejectsOnly {
			return true
		}
	}
	return false
}

func (b *cdnBatch) add(ch *chunk, now time.Time) {
	if b.first.IsZero() {
		b.first = now
	}
	b.chunks = append(b.chunks, ch)
	b.rows += ch.rows()
	b.bytes += ch.bytes
	b.id = uuid.NewString()
}

func (b *cdnBatch) finish(m s3sqs.Message, now time.Time) {
	if b.first.IsZero() {
		b.first = now
	}
	b.done = append(b.done, m)
}

// drop removes the chunks of the given objects and moves the messages
// naming them from done to retry: another process holds or finished them.
func (b *cdnBatch) drop(refs map[string]bool) {
	keep := b.chunks[:0]
	for _, ch := range b.chunks {
		if refs[ch.ref] && !ch.rejectsOnly {
			b.rows -= ch.rows()
			b.bytes -= ch.bytes
			b.lost[ch.ref] = true
			continue
		}
		keep = append(keep, ch)
	}
	b.chunks = keep
	done := b.done[:0]
	for _, m := range b.done {
		if names(m, refs) {
			b.retry = append(b.retry, m)
			continue
		}
		done = append(done, m)
	}
	b.done = done
	b.id = uuid.NewString()
}

func names(m s3sqs.Message, refs map[string]bool) bool {
	for _, o := range m.Objects {
		if refs[o.Ref()] {
			return true
		}
	}
	return false
}

// errObjectsTaken is a lines commit's guard refusing objects another
// process committed first.
type errObjectsTaken struct{ refs map[string]bool }

func (e *errObjectsTaken) Error() string {
	refs := make([]string, 0, len(e.refs))
	for r := range e.refs {
		refs = append(refs, r)
	}
	return "objects committed by another process: " + strings.Join(refs, ", ")
}

var errRejectsPresent = errors.New("some rejects are in bronze.rejects already")

// Flush commits the batch (rejects first, then lines) and then deletes its
// messages. A failed Flush leaves the batch as it was, so calling Flush
// again commits it exactly once.
func (c *CDNLogs) Flush(ctx context.Context) error {
	b := c.batch
	if b == nil || b.empty() {
		return nil
	}
	start := time.Now()
	if !b.rejectsLanded {
		if err := c.commitRejects(ctx); err != nil {
			return err
		}
		b.rejectsLanded = true
	}
	n, err := c.commitLines(ctx)
	if err != nil {
		return err
	}
	c.Observer.BatchCommitted(c.Logs.Name(), n, time.Since(start))
	// Committed: now, and only now, the messages may go. A failed delete
	// means a redelivery, which finds the objects committed.
	if err := c.Queue.Delete(ctx, b.done); err != nil {
		c.Logger.Warn("delete messages", "error", err)
	}
	for _, m := range b.retry {
		c.retryLater(ctx, m)
	}
	for _, ch := range b.chunks {
		if len(ch.lines) > 0 {
			c.objects.add(ch.ref, ch.lines[len(ch.lines)-1].Number, start)
		}
		for _, r := range ch.rejects {
			c.rejected.add(c.rejectKey(ch.ref, r), r.line, start)
		}
	}
	c.lastLost = b.lost
	c.batch = newCDNBatch()
	return nil
}

// commitRejects commits the batch's rejects. Its guard reads what other
// processes committed to bronze.rejects: rejects already there (another
// process read the same object, or we crashed after this commit) are left
// out and the commit tried again.
func (c *CDNLogs) commitRejects(ctx context.Context) error {
	for {
		n := 0
		for _, ch := range c.batch.chunks {
			for _, r := range ch.rejects {
				appendReject(c.rejects, r.Reject)
				n++
			}
		}
		rec := c.rejects.Batch()
		if n == 0 {
			rec.Release()
			return nil
		}
		_, err := c.Rejects.Commit(ctx, lake.Batch{
			ID:      c.batch.id + "-rejects",
			Records: []arrow.RecordBatch{rec},
			Guard: func(ctx context.Context, s lake.State) error {
				if err := c.rejected.update(ctx, c.Rejects.Name(), s, c.Now()); err != nil {
					return err
				}
				for _, ch := range c.batch.chunks {
					for _, r := range ch.rejects {
						if c.rejectPresent(ch.ref, r) {
							return errRejectsPresent
						}
					}
				}
				return nil
			},
		})
		rec.Release()
		if !errors.Is(err, lake.ErrGuard) {
			if err != nil {
				return fmt.Errorf("commit cdn rejects: %w", err)
			}
			return nil
		}
		for _, ch := range c.batch.chunks {
			keep := ch.rejects[:0]
			for _, r := range ch.rejects {
				if !c.rejectPresent(ch.ref, r) {
					keep = append(keep, r)
				}
			}
			ch.rejects = keep
		}
		c.batch.id = uuid.NewString()
	}
}

func (c *CDNLogs) rejectKey(ref string, r lineReject) string {
	if r.line == wholeSource {
		return wholeKey(ref, r.Reason)
	}
	return ref
}

// rejectPresent says whether bronze.rejects (as indexed) holds r.
func (c *CDNLogs) rejectPresent(ref string, r lineReject) bool {
	k := c.rejectKey(ref, r)
	return c.rejected.has(k) && r.line <= c.rejected.line(k)
}

// commitLines commits the batch's lines with the positions of objects read
// in several batches (compare-and-set), guarded against objects another
// process committed since our index last looked. A conflict over an
// object drops it from the batch (its message is retried later, when the
// redelivery finds it done or resumes it) and commits the rest.
func (c *CDNLogs) commitLines(ctx context.Context) (int, error) {
	for {
		b := c.batch
		var adv []lake.Position
		n := 0
		for _, ch := range b.chunks {
			if p, ok := ch.position(); ok {
				adv = append(adv, p)
			}
			for _, l := range ch.lines {
				c.appendLine(ch.obj, l, ch.read)
				n++
			}
		}
		rec := c.logs.Batch()
		if n == 0 && len(adv) == 0 {
			rec.Release()
			return 0, nil
		}
		_, err := c.Logs.Commit(ctx, lake.Batch{
			ID:      b.id,
			Records: []arrow.RecordBatch{rec},
			Advance: adv,
			Strict:  true,
			Summary: map[string]string{"objects": strconv.Itoa(len(b.chunks))},
			Guard:   c.guardObjects,
		})
		rec.Release()
		var taken *errObjectsTaken
		switch {
		case err == nil:
			return n, nil
		case errors.As(err, &taken):
			c.Logger.Info("objects committed by another process; dropped from this batch", "objects", taken.Error())
			b.drop(taken.refs)
		case errors.Is(err, lake.ErrCheckpointMoved):
			moved, err := c.movedObjects(ctx)
			if err != nil {
				return 0, err
			}
			if len(moved) == 0 {
				return 0, fmt.Errorf("commit cdn logs: %w (no object of the batch moved)", lake.ErrCheckpointMoved)
			}
			c.Logger.Info("objects resumed by another process; dropped from this batch", "objects", len(moved))
			b.drop(moved)
		default:
			return 0, fmt.Errorf("commit cdn logs: %w", err)
		}
	}
}

// guardObjects refuses objects that start in this batch but that another
// process committed lines of, or began to read in several batches (its
// first chunk may hold only rejects, so the checkpoint key tells), since
// our index last looked.
func (c *CDNLogs) guardObjects(ctx context.Context, s lake.State) error {
	if err := c.objects.update(ctx, c.Logs.Name(), s, c.Now()); err != nil {
		return err
	}
	cp, err := s.Checkpoint()
	if err != nil {
		return err
	}
	taken := map[string]bool{}
	for _, ch := range c.batch.chunks {
		if ch.rejectsOnly || ch.from != 0 {
			continue
		}
		p, keyed := ch.position()
		_, held := cp[objectKeyPrefix+ch.ref]
		if c.objects.has(ch.ref) || (held && !(keyed && p.From == "")) {
			taken[ch.ref] = true
		}
	}
	if len(taken) > 0 {
		return &errObjectsTaken{refs: taken}
	}
	return nil
}

// movedObjects names the batch's objects whose position another process
// moved.
func (c *CDNLogs) movedObjects(ctx context.Context) (map[string]bool, error) {
	if _, err := c.Logs.Refresh(ctx); err != nil {
		return nil, err
	}
	cp, err := c.Logs.Checkpoint()
	if err != nil {
		return nil, err
	}
	moved := map[string]bool{}
	for _, ch := range c.batch.chunks {
		if p, ok := ch.position(); ok && cp[p.Key] != p.From {
			moved[ch.ref] = true
		}
	}
	return moved, nil
}

func (c *CDNLogs) appendLine(o s3sqs.Object, l cloudfront.Line, read time.Time) {
	rb := c.logs
	rb.Time("log_time", l.Time)
	rb.String("bucket", o.Bucket)
	rb.String("object_key", o.Key)
	rb.String("etag", o.ETag)
	rb.Int64("line_number", l.Number)
	rb.String("fields", l.Header.Raw)
	rb.String("line", l.Text)
	rb.Time("ingest_time", read)
}
