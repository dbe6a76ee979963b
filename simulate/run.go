package simulate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	kinesistypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/qoslake/qoslake/ingest/kpl"
)

// Output receives what the generator produces.
type Output interface {
	PutEvents(ctx context.Context, events []Event) (records int, err error)
	PutLog(ctx context.Context, f LogFile) error
	PutRealtime(ctx context.Context, records []RealtimeRecord) error
}

// Step switches scenario At an offset from the start.
type Step struct {
	At       time.Duration
	Scenario string
}

// ParseSchedule reads "0s=normal,30s=edge-latency,60s=normal".
func ParseSchedule(s string) ([]Step, error) {
	var out []Step
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		at, name, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("schedule step %q: want offset=scenario", part)
		}
		d, err := time.ParseDuration(at)
		if err != nil {
			return nil, fmt.Errorf("schedule step %q: %w", part, err)
		}
		if err := checkScenario(name); err != nil {
			return nil, fmt.Errorf("schedule step %q: %w", part, err)
		}
		out = append(out, Step{At: d, Scenario: name})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out, nil
}

// RunOptions control a simulation run.
type RunOptions struct {
	Duration time.Duration
	Schedule []Step
	// Fast runs as fast as possible instead of in real time.
	Fast bool
	// Control, when set, receives scenario names while running.
	Control <-chan string
}

// Summary is the account of a run, for tests and users to check the
// pipeline against: what was sent, and the true QoE of every session.
type Summary struct {
	Seed           int64          `json:"seed"`
	Form           string         `json:"payload_form"`
	Start          time.Time      `json:"start"`
	End            time.Time      `json:"end"`
	Sessions       int            `json:"sessions"`
	Events         map[string]int `json:"events"`
	EventsTotal    int            `json:"events_total"`
	KinesisRecords int            `json:"kinesis_records"`
	LogLines       int            `json:"log_lines"`
	LogFiles       int            `json:"log_files"`
	// RealtimeRecords are the CloudFront real-time log records written
	// (the requests sampled at RealtimeSamplingRate percent), each to its
	// own Kinesis record; RealtimeFields is how many fields each has.
	RealtimeRecords      int        `json:"realtime_records"`
	RealtimeSamplingRate int        `json:"realtime_sampling_rate,omitempty"`
	RealtimeFields       int        `json:"realtime_fields,omitempty"`
	Incidents            []Incident `json:"incidents"`
	// Totals sums the sessions; SessionTruths has each, in order of start.
	Totals        Totals         `json:"totals"`
	SessionTruths []SessionTruth `json:"session_truths"`
	// Edges are the CDN requests logged per edge location.
	Edges map[string]EdgeTruth `json:"edges"`
}

// Totals are the true QoE figures of a run, over all its sessions.
type Totals struct {
	Sessions          int   `json:"sessions"`
	Started           int   `json:"started"` // reached the first frame
	FailedBeforeStart int   `json:"failed_before_start"`
	ExitBeforeStart   int   `json:"exit_before_start"`
	PlaybackFailures  int   `json:"playback_failures"`
	StartupMSSum      int64 `json:"startup_ms_sum"` // over started sessions
	// StartupMSMean is StartupMSSum / Started, rounded to the ms.
	StartupMSMean   int64   `json:"startup_ms_mean"`
	StallCount      int     `json:"stall_count"`
	StallMS         int64   `json:"stall_ms"`
	WatchedS        float64 `json:"watched_s"`
	BitrateSwitches int     `json:"bitrate_switches"`
	Seeks           int     `json:"seeks"`
	Stopped         int     `json:"stopped"`
}

// Total sums session truths.
func Total(truths []SessionTruth) Totals {
	var t Totals
	for _, s := range truths {
		t.Sessions++
		if s.StartupMS != nil {
			t.Started++
			t.StartupMSSum += *s.StartupMS
		}
		t.FailedBeforeStart += b2i(s.FailedBeforeStart)
		t.ExitBeforeStart += b2i(s.ExitBeforeStart)
		t.PlaybackFailures += b2i(s.PlaybackFailed)
		t.StallCount += s.StallCount
		t.StallMS += s.StallMS
		t.WatchedS += s.WatchedS
		t.BitrateSwitches += s.BitrateSwitches
		t.Seeks += s.Seeks
		t.Stopped += b2i(s.Stopped)
	}
	if t.Started > 0 {
		t.StartupMSMean = int64(math.Round(float64(t.StartupMSSum) / float64(t.Started)))
	}
	return t
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Run drives the generator for opts.Duration of simulated time, sending
// events and log files to out.
func Run(ctx context.Context, g *Generator, out Output, opts RunOptions) (Summary, error) {
	sum := Summary{Seed: g.cfg.Seed, Form: g.cfg.Form, Start: g.Now(), Events: map[string]int{}}
	if g.cfg.Realtime != nil {
		sum.RealtimeSamplingRate, sum.RealtimeFields = g.cfg.SamplingRate, len(g.cfg.Realtime.Names)
	}
	wallStart := time.Now()
	ticks := int(opts.Duration / time.Second)
	step := 0
	emit := func(events []Event, logs []LogFile) error {
		if rt := g.Realtime(); len(rt) > 0 {
			if err := out.PutRealtime(ctx, rt); err != nil {
				return err
			}
			sum.RealtimeRecords += len(rt)
		}
		if len(events) > 0 {
			n, err := out.PutEvents(ctx, events)
			if err != nil {
				return err
			}
			sum.KinesisRecords += n
			for _, e := range events {
				sum.Events[e.Type]++
			}
			sum.EventsTotal += len(events)
		}
		for _, f := range logs {
			if err := out.PutLog(ctx, f); err != nil {
				return err
			}
			sum.LogFiles++
			sum.LogLines += f.Lines
		}
		return nil
	}
	for i := 0; i < ticks; i++ {
		for step < len(opts.Schedule) && opts.Schedule[step].At <= time.Duration(i)*time.Second {
			if err := g.SetScenario(opts.Schedule[step].Scenario); err != nil {
				return sum, err
			}
			step++
		}
		select {
		case name := <-opts.Control:
			if err := g.SetScenario(strings.TrimSpace(name)); err != nil {
				return sum, err
			}
		default:
		}
		events, logs := g.Tick()
		if err := emit(events, logs); err != nil {
			return sum, err
		}
		if !opts.Fast {
			wait := time.Until(wallStart.Add(time.Duration(i+1) * time.Second))
			select {
			case <-ctx.Done():
				ticks = i + 1 // stop, but still flush what was generated
			case <-time.After(wait):
			}
		} else if ctx.Err() != nil {
			break
		}
	}
	// The flush is written even when ctx ended: a run's output is complete.
	ctx = context.WithoutCancel(ctx)
	events, logs := g.Flush()
	if err := emit(events, logs); err != nil {
		return sum, err
	}
	sum.End = g.Now()
	sum.Sessions = g.Sessions()
	sum.Incidents = g.Incidents()
	sum.SessionTruths = g.Truths()
	sum.Totals = Total(sum.SessionTruths)
	sum.Edges = g.Edges()
	return sum, nil
}

// KinesisAPI is the part of the Kinesis API the simulator calls.
type KinesisAPI interface {
	PutRecords(context.Context, *kinesis.PutRecordsInput, ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
}

// S3API is the part of the S3 API the simulator calls.
type S3API interface {
	PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// AWSOutput writes events to Kinesis with PutRecords (retrying records
// that fail in a partial failure), log files to S3, and real-time log
// records to their own stream.
type AWSOutput struct {
	Kinesis        KinesisAPI
	S3             S3API
	Stream         string
	RealtimeStream string
	Bucket         string
	// Aggregate packs events KPL-style, this many per Kinesis record (0 or 1:
	// one event per record).
	Aggregate int
}

// PutEvents returns the number of Kinesis records written.
func (o *AWSOutput) PutEvents(ctx context.Context, events []Event) (int, error) {
	var entries []kinesistypes.PutRecordsRequestEntry
	if o.Aggregate > 1 {
		for i := 0; i < len(events); i += o.Aggregate {
			chunk := events[i:min(i+o.Aggregate, len(events))]
			users := make([]kpl.UserRecord, len(chunk))
			for j, e := range chunk {
				users[j] = kpl.UserRecord{PartitionKey: e.PartitionKey, Data: e.JSON}
			}
			entries = append(entries, kinesistypes.PutRecordsRequestEntry{Data: kpl.Aggregate(users), PartitionKey: aws.String(chunk[0].PartitionKey)})
		}
	} else {
		for _, e := range events {
			entries = append(entries, kinesistypes.PutRecordsRequestEntry{Data: e.JSON, PartitionKey: aws.String(e.PartitionKey)})
		}
	}
	return len(entries), o.put(ctx, o.Stream, entries)
}

// PutRealtime writes real-time log records, one Kinesis record each, as
// CloudFront does.
func (o *AWSOutput) PutRealtime(ctx context.Context, records []RealtimeRecord) error {
	entries := make([]kinesistypes.PutRecordsRequestEntry, len(records))
	for i, r := range records {
		entries[i] = kinesistypes.PutRecordsRequestEntry{Data: r.Data, PartitionKey: aws.String(r.PartitionKey)}
	}
	return o.put(ctx, o.RealtimeStream, entries)
}

// put writes entries to a stream in PutRecords calls of at most 500.
func (o *AWSOutput) put(ctx context.Context, stream string, entries []kinesistypes.PutRecordsRequestEntry) error {
	for len(entries) > 0 {
		chunk := entries[:min(500, len(entries))]
		entries = entries[len(chunk):]
		if err := o.putRecords(ctx, stream, chunk); err != nil {
			return err
		}
	}
	return nil
}

// putRecords retries the entries a partial failure rejected (throttling),
// with capped backoff.
func (o *AWSOutput) putRecords(ctx context.Context, stream string, entries []kinesistypes.PutRecordsRequestEntry) error {
	wait := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		out, err := o.Kinesis.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: &stream, Records: entries})
		if err != nil {
			return fmt.Errorf("put records to %s: %w", stream, err)
		}
		if aws.ToInt32(out.FailedRecordCount) == 0 {
			return nil
		}
		var retry []kinesistypes.PutRecordsRequestEntry
		for i, r := range out.Records {
			if r.ErrorCode != nil {
				retry = append(retry, entries[i])
			}
		}
		if attempt >= 10 {
			return errors.New("put records: " + strconv.Itoa(len(retry)) + " records still failing after 10 attempts")
		}
		entries = retry
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait + rand.N(wait)):
		}
		wait = min(wait*2, 5*time.Second)
	}
}

// PutLog uploads a log file (a seekable body: the SDK needs one over HTTP).
func (o *AWSOutput) PutLog(ctx context.Context, f LogFile) error {
	_, err := o.S3.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &o.Bucket, Key: aws.String(f.Key), Body: bytes.NewReader(f.Body),
		ContentType: aws.String("application/gzip"),
	})
	if err != nil {
		return fmt.Errorf("put %s: %w", f.Key, err)
	}
	return nil
}
