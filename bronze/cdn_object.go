package bronze

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/qoslake/qoslake/ingest/cloudfront"
	"github.com/qoslake/qoslake/ingest/s3sqs"
)

var (
	// errObjectTaken: another process committed part of the object being
	// read while we read it; we stop and leave it to the holder.
	errObjectTaken = errors.New("object taken by another process")
	// errFlush wraps a failed commit in the middle of an object.
	errFlush = errors.New("flush while reading an object")
)

// readObject reads an object into the batch: its lines after the last one
// committed, and the rejects of lines not rejected before. When the batch
// fills mid-object, the chunk read so far is committed with the object's
// position, and reading goes on; a read error drops only what was read
// since the last commit. Only a compressed object that is corrupt ends
// early with a truncated_input reject: any other error (a cut transfer, a
// cancelled context) is returned for the message to be retried.
func (c *CDNLogs) readObject(ctx context.Context, o s3sqs.Object, now time.Time) error {
	ref := o.Ref()
	if c.batch.has(ref) {
		return nil // named twice: read once, both messages go with the batch
	}
	from, err := c.committedLine(ref)
	if err != nil {
		return err
	}
	if from == 0 && c.objects.has(ref) {
		c.Logger.Info("object already in bronze, deleting its message", "object", ref)
		return nil
	}
	body, err := c.Queue.Open(ctx, o)
	if err != nil {
		return err
	}
	defer body.Close()
	if from > 0 {
		c.Logger.Info("resuming object after its last committed line", "object", ref, "line", from)
	}
	// Rejects up to this line are in bronze.rejects already (committed
	// before the lines that follow them, or by another process).
	rejectedTo := c.rejected.line(ref)
	ch := &chunk{ref: ref, obj: o, from: from, to: from, read: now}
	reject := func(line int64, reason, detail string, raw []byte) {
		if line == wholeSource {
			if c.rejected.has(wholeKey(ref, reason)) {
				return
			}
		} else if line <= from || line <= rejectedTo {
			return
		}
		sref := ref
		if line != wholeSource {
			sref = fmt.Sprintf("%s:%d", ref, line)
		}
		c.Observer.Rejected("s3", reason)
		ch.rejects = append(ch.rejects, lineReject{line: line, Reject: Reject{At: now, Source: "s3", SourceRef: sref, Reason: reason, Detail: detail, Raw: raw}})
	}
	// flushIfFull commits the chunk read so far when the batch is full and
	// starts the next chunk of the object after it.
	flushIfFull := func() error {
		if c.batch.rows+ch.rows() < c.Batching.MaxRows && c.batch.bytes+ch.bytes < c.Batching.MaxBytes {
			return nil
		}
		c.batch.add(ch, now)
		if err := c.Flush(ctx); err != nil {
			return fmt.Errorf("%w: %w", errFlush, err)
		}
		if c.lastLost[ref] {
			return errObjectTaken
		}
		ch = &chunk{ref: ref, obj: o, from: ch.to, to: ch.to, read: c.Now().UTC()}
		return nil
	}
	var lines, bytes, short int
	err = ScanCDN(body, c.MaxLineBytes, CDNVisitor{
		Line: func(l cloudfront.Line) error {
			if l.Number <= from {
				return nil
			}
			ch.lines = append(ch.lines, l)
			ch.bytes += len(l.Text)
			ch.to = l.Number
			lines++
			bytes += len(l.Text)
			if l.Missing > 0 {
				short++
			}
			return flushIfFull()
		},
		Reject: func(line int64, reason, detail string, raw []byte) error {
			reject(line, reason, detail, raw)
			if line != wholeSource {
				ch.to = max(ch.to, line)
				return flushIfFull()
			}
			return nil
		},
	})
	if err != nil {
		return err
	}
	return c.finishObject(ch, lines, bytes, short, now)
}

// CDNVisitor receives what ScanCDN reads: each good line, and each reject
// (line is wholeSource for one about the whole object). An error from
// either stops the scan and is returned.
type CDNVisitor struct {
	Line   func(cloudfront.Line) error
	Reject func(line int64, reason, detail string, raw []byte) error
}

// ScanCDN reads a decompressed CloudFront log and says of every line
// whether it is kept or rejected, and why: bronze and `qoslake check`
// share it, so both give the same verdicts. Input that is not a standard
// log and a compressed object that is corrupt (an s3sqs.CorruptError) end
// the scan with a whole-object reject and a nil error, keeping the lines
// before; any other read error (the transfer's) is returned for a retry.
func ScanCDN(r io.Reader, maxLine int, v CDNVisitor) error {
	rd := cloudfront.NewReader(r, maxLine)
	for {
		l, err := rd.Next()
		var le *cloudfront.LineError
		var fe *cloudfront.FormatError
		var corrupt *s3sqs.CorruptError
		switch {
		case err == nil:
			err = v.Line(l)
		case errors.As(err, &le):
			err = v.Reject(le.Number, le.Reason, le.Detail, le.Raw)
		case errors.As(err, &fe):
			return v.Reject(wholeSource, cloudfront.ReasonUnknownFormat, fe.Detail, nil)
		case errors.Is(err, io.EOF):
			return nil
		case errors.As(err, &corrupt):
			// The object is damaged, not the transfer: keep the lines
			// before the damage.
			return v.Reject(wholeSource, cloudfront.ReasonTruncatedInput, corrupt.Err.Error(), nil)
		default:
			return err
		}
		if err != nil {
			return err
		}
	}
}

func (c *CDNLogs) finishObject(ch *chunk, lines, bytes, short int, now time.Time) error {
	ch.final = true
	c.batch.add(ch, now)
	c.Observer.ObjectRead(lines, bytes)
	if short > 0 {
		c.Observer.ShortLines(short)
	}
	return nil
}

// committedLine is the last line committed of an object read in several
// batches, 0 for any other.
func (c *CDNLogs) committedLine(ref string) (int64, error) {
	cp, err := c.Logs.Checkpoint()
	if err != nil {
		return 0, err
	}
	v, ok := cp[objectKeyPrefix+ref]
	if !ok {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bronze.cdn_logs checkpoint %s%s=%q: %w", objectKeyPrefix, ref, v, err)
	}
	return n, nil
}
