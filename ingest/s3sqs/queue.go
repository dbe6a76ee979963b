package s3sqs

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// SQSAPI is the part of the SQS API the queue calls.
type SQSAPI interface {
	ReceiveMessage(context.Context, *sqs.ReceiveMessageInput, ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(context.Context, *sqs.DeleteMessageBatchInput, ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
	ChangeMessageVisibility(context.Context, *sqs.ChangeMessageVisibilityInput, ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
	GetQueueAttributes(context.Context, *sqs.GetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

// S3API is the part of the S3 API the queue calls.
type S3API interface {
	GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// Message is a received SQS message and the objects it names.
type Message struct {
	ID           string
	Receipt      string
	ReceiveCount int
	Body         string
	Objects      []Object
	// ParseErr is set when the body is not an S3 event.
	ParseErr error
}

// Queue receives S3 event messages.
type Queue struct {
	SQS SQSAPI
	S3  S3API
	URL string
	// Wait is the long-poll time (at most 20s).
	Wait time.Duration
	// Visibility is how long a received message stays hidden; Extend
	// prolongs it while a large object is read.
	Visibility time.Duration
	// RetryBackoff is how long a message whose object could not be read
	// stays hidden after its first receive; it doubles with each receive
	// (capped at 12 hours, SQS's limit). Zero means 30 seconds: five
	// receives then span about 15 minutes, so a short S3 outage does not
	// send good objects to the dead-letter queue.
	RetryBackoff time.Duration
}

// Receive long-polls up to max (at most 10) messages.
func (q *Queue) Receive(ctx context.Context, max int, wait time.Duration) ([]Message, error) {
	out, err := q.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:                    &q.URL,
		MaxNumberOfMessages:         int32(min(max, 10)),
		WaitTimeSeconds:             int32(min(wait, 20*time.Second) / time.Second),
		VisibilityTimeout:           int32(q.Visibility / time.Second),
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameApproximateReceiveCount},
	})
	if err != nil {
		return nil, fmt.Errorf("receive from %s: %w", q.URL, err)
	}
	msgs := make([]Message, 0, len(out.Messages))
	for _, m := range out.Messages {
		msg := Message{ID: aws.ToString(m.MessageId), Receipt: aws.ToString(m.ReceiptHandle), Body: aws.ToString(m.Body)}
		// Asked for above, so SQS sends it; were it missing, the message
		// would count as a first receive: retried, never rejected early.
		msg.ReceiveCount, _ = strconv.Atoi(m.Attributes[string(sqstypes.MessageSystemAttributeNameApproximateReceiveCount)])
		msg.Objects, msg.ParseErr = ParseBody(msg.Body)
		msgs = append(msgs, msg)
	}
	return msgs, nil
}

// Delete deletes messages, ten per request, and reports any that failed.
func (q *Queue) Delete(ctx context.Context, msgs []Message) error {
	var errs []error
	for i := 0; i < len(msgs); i += 10 {
		chunk := msgs[i:min(i+10, len(msgs))]
		entries := make([]sqstypes.DeleteMessageBatchRequestEntry, len(chunk))
		for j, m := range chunk {
			entries[j] = sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(j)), ReceiptHandle: aws.String(m.Receipt)}
		}
		out, err := q.SQS.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &q.URL, Entries: entries})
		if err != nil {
			errs = append(errs, fmt.Errorf("delete messages: %w", err))
			continue
		}
		for _, f := range out.Failed {
			errs = append(errs, fmt.Errorf("delete message %s: %s %s", aws.ToString(f.Id), aws.ToString(f.Code), aws.ToString(f.Message)))
		}
	}
	return errors.Join(errs...)
}

// Release makes a message visible again at once, for another consumer or
// a restart: used when shutting down, not after a failure.
func (q *Queue) Release(ctx context.Context, m Message) error {
	return q.setVisibility(ctx, m, 0)
}

// Retry hides a message that failed for RetryAfter(receive count), rather
// than releasing it at once: each receive counts towards the redrive
// policy, and quick retries would use them all in seconds.
func (q *Queue) Retry(ctx context.Context, m Message) error {
	return q.setVisibility(ctx, m, q.RetryAfter(m.ReceiveCount))
}

// RetryAfter is the backoff after the receiveCount-th receive failed.
func (q *Queue) RetryAfter(receiveCount int) time.Duration {
	base := q.RetryBackoff
	if base <= 0 {
		base = 30 * time.Second
	}
	const most = 12 * time.Hour
	d := base << min(max(receiveCount-1, 0), 20)
	if d > most || d <= 0 {
		d = most
	}
	return d
}

// Extend keeps a message hidden for another Visibility.
func (q *Queue) Extend(ctx context.Context, m Message) error {
	return q.setVisibility(ctx, m, q.Visibility)
}

func (q *Queue) setVisibility(ctx context.Context, m Message, d time.Duration) error {
	_, err := q.SQS.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: &q.URL, ReceiptHandle: &m.Receipt, VisibilityTimeout: int32(d / time.Second),
	})
	if err != nil {
		return fmt.Errorf("change visibility of %s: %w", m.ID, err)
	}
	return nil
}

// Depth returns the approximate number of visible messages and of
// messages in flight (received by some consumer, neither deleted nor yet
// visible again).
func (q *Queue) Depth(ctx context.Context) (visible, inFlight int, err error) {
	out, err := q.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: &q.URL,
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		return 0, 0, fmt.Errorf("depth of %s: %w", q.URL, err)
	}
	// A missing or garbled count must not read as an empty queue: run
	// --once would stop with messages left.
	count := func(a sqstypes.QueueAttributeName) (int, error) {
		n, err := strconv.Atoi(out.Attributes[string(a)])
		if err != nil {
			return 0, fmt.Errorf("depth of %s: attribute %s: %w", q.URL, a, err)
		}
		return n, nil
	}
	if visible, err = count(sqstypes.QueueAttributeNameApproximateNumberOfMessages); err != nil {
		return 0, 0, err
	}
	if inFlight, err = count(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible); err != nil {
		return 0, 0, err
	}
	return visible, inFlight, nil
}

// Open streams an object, decompressing gzip (detected by its magic bytes,
// whatever the key says). The ETag pins the version the event named.
func (q *Queue) Open(ctx context.Context, o Object) (io.ReadCloser, error) {
	in := &s3.GetObjectInput{Bucket: &o.Bucket, Key: &o.Key}
	if o.ETag != "" {
		in.IfMatch = aws.String(`"` + o.ETag + `"`)
	}
	out, err := q.S3.GetObject(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", o.Ref(), err)
	}
	raw := &trackedBody{r: out.Body}
	br := bufio.NewReaderSize(raw, 64<<10)
	// Peek's error is the raw stream's, which the first Read reports again.
	magic, _ := br.Peek(2)
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			out.Body.Close()
			return nil, classify(o, raw, fmt.Errorf("gunzip: %w", err))
		}
		return &objectReader{r: zr, raw: raw, c: out.Body, o: o}, nil
	}
	return &objectReader{r: br, raw: raw, c: out.Body, o: o}, nil
}

// CorruptError is an object whose bytes all arrived but do not decompress
// (a truncated or damaged gzip file): reading it again gives the same
// result. Any other read error (a connection reset, a cancelled context)
// says nothing about the object and is worth a retry.
type CorruptError struct {
	Ref string
	Err error
}

func (e *CorruptError) Error() string { return "corrupt object " + e.Ref + ": " + e.Err.Error() }

func (e *CorruptError) Unwrap() error { return e.Err }

// trackedBody remembers the first error of the raw S3 body other than its
// end, so a decompression error can be told apart from a cut transfer.
type trackedBody struct {
	r   io.Reader
	err error
}

func (t *trackedBody) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF && t.err == nil {
		t.err = err
	}
	return n, err
}

type objectReader struct {
	r   io.Reader
	raw *trackedBody
	c   io.Closer
	o   Object
}

func (r *objectReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = classify(r.o, r.raw, err)
	}
	return n, err
}

func (r *objectReader) Close() error { return r.c.Close() }

// classify says whether a read error is the object's (corrupt) or the
// transfer's (anything the raw body reported).
func classify(o Object, raw *trackedBody, err error) error {
	if raw.err != nil {
		return fmt.Errorf("read %s: %w", o.Ref(), raw.err)
	}
	return &CorruptError{Ref: o.Ref(), Err: err}
}
