package kinesis_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/qoslake/qoslake/ingest/kinesis"
	"github.com/qoslake/qoslake/internal/testenv"
)

func TestCompareSequenceNumbersAsIntegers(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"9", "10", -1}, // as strings "9" > "10"
		{"49590338271490256608559692538361571095921575989136588898", "49590338271490256608559692538361571095921575989136588899", -1},
		{"100", "100", 0},
		{"", "5", -1},
		{"12", "2", 1},
	} {
		if got := kinesis.Compare(tc.a, tc.b); got != tc.want {
			t.Errorf("Compare(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func createStream(t *testing.T, api *awskinesis.Client, shards int32) string {
	t.Helper()
	name := testenv.Name("kin")
	if _, err := api.CreateStream(t.Context(), &awskinesis.CreateStreamInput{StreamName: &name, ShardCount: aws.Int32(shards)}); err != nil {
		t.Fatal(err)
	}
	return name
}

func put(t *testing.T, api *awskinesis.Client, stream string, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if _, err := api.PutRecord(t.Context(), &awskinesis.PutRecordInput{
			StreamName: &stream, Data: []byte(fmt.Sprint(i)), PartitionKey: aws.String(fmt.Sprintf("pk-%d", i)),
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// drain runs the consumer once and returns the batches in arrival order.
func drain(t *testing.T, c *kinesis.Consumer, positions map[string]string) []kinesis.Batch {
	t.Helper()
	ch := make(chan kinesis.Batch, 1000)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := c.Run(ctx, positions, ch, true); err != nil {
		t.Fatal(err)
	}
	close(ch)
	var out []kinesis.Batch
	for b := range ch {
		out = append(out, b)
	}
	return out
}

// fakeStream is an in-memory Kinesis with real resharding semantics: a
// closed shard returns no next iterator once read to its end. moto 5.2.1
// cannot serve this test: after SplitShard it keeps writing to the closed
// parent and never ends it.
type fakeStream struct {
	mu     sync.Mutex
	shards []*fakeShard
	reads  []string // shard of each GetRecords call, in order
}

type fakeShard struct {
	id      string
	parents []string
	data    []string
	closed  bool
}

func (f *fakeStream) shard(id string) *fakeShard {
	for _, s := range f.shards {
		if s.id == id {
			return s
		}
	}
	return nil
}

func (f *fakeStream) ListShards(_ context.Context, _ *awskinesis.ListShardsInput, _ ...func(*awskinesis.Options)) (*awskinesis.ListShardsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &awskinesis.ListShardsOutput{}
	for _, s := range f.shards {
		sh := types.Shard{ShardId: aws.String(s.id)}
		if len(s.parents) > 0 {
			sh.ParentShardId = aws.String(s.parents[0])
		}
		if len(s.parents) > 1 {
			sh.AdjacentParentShardId = aws.String(s.parents[1])
		}
		out.Shards = append(out.Shards, sh)
	}
	return out, nil
}

func (f *fakeStream) GetShardIterator(_ context.Context, in *awskinesis.GetShardIteratorInput, _ ...func(*awskinesis.Options)) (*awskinesis.GetShardIteratorOutput, error) {
	pos := 0
	if in.ShardIteratorType == types.ShardIteratorTypeAfterSequenceNumber {
		fmt.Sscan(*in.StartingSequenceNumber, &pos)
		pos++
	}
	return &awskinesis.GetShardIteratorOutput{ShardIterator: aws.String(fmt.Sprintf("%s@%d", *in.ShardId, pos))}, nil
}

func (f *fakeStream) GetRecords(_ context.Context, in *awskinesis.GetRecordsInput, _ ...func(*awskinesis.Options)) (*awskinesis.GetRecordsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, at, _ := strings.Cut(*in.ShardIterator, "@")
	var pos int
	fmt.Sscan(at, &pos)
	s := f.shard(id)
	f.reads = append(f.reads, id)
	out := &awskinesis.GetRecordsOutput{MillisBehindLatest: aws.Int64(0)}
	end := min(pos+3, len(s.data)) // small pages: several calls per shard
	for i := pos; i < end; i++ {
		out.Records = append(out.Records, types.Record{
			SequenceNumber: aws.String(fmt.Sprint(i)), Data: []byte(s.data[i]), PartitionKey: aws.String("k"),
			ApproximateArrivalTimestamp: aws.Time(time.Now()),
		})
	}
	if end < len(s.data) {
		out.MillisBehindLatest = aws.Int64(1000)
	}
	if !(s.closed && end == len(s.data)) {
		out.NextShardIterator = aws.String(fmt.Sprintf("%s@%d", id, end))
	}
	return out, nil
}

// After a split and a merge, parents are read to their end before their
// children start, nothing is lost, and resuming reads nothing twice.
func TestReshardingReadsParentsBeforeChildren(t *testing.T) {
	recs := func(prefix string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%s-%d", prefix, i)
		}
		return out
	}
	f := &fakeStream{shards: []*fakeShard{
		{id: "s0", data: recs("s0", 10), closed: true},                         // split into s1, s2
		{id: "s1", parents: []string{"s0"}, data: recs("s1", 7), closed: true}, // merged with s2 into s3
		{id: "s2", parents: []string{"s0"}, data: recs("s2", 5), closed: true},
		{id: "s3", parents: []string{"s1", "s2"}, data: recs("s3", 8)},
		{id: "other", data: recs("other", 4)},
	}}
	c := &kinesis.Consumer{API: f, Stream: "fake", IdleWait: 200 * time.Millisecond}
	batches := drain(t, c, nil)

	ended := map[string]bool{}
	seen := map[string]bool{}
	positions := map[string]string{}
	for _, b := range batches {
		for _, p := range f.shard(b.Shard).parents {
			if !ended[p] {
				t.Errorf("%s read before its parent %s ended", b.Shard, p)
			}
		}
		for _, r := range b.Records {
			if seen[string(r.Data)] {
				t.Errorf("%s read twice", r.Data)
			}
			seen[string(r.Data)] = true
		}
		if b.End {
			ended[b.Shard] = true
			positions[b.Shard] = kinesis.ShardEnd
		} else {
			positions[b.Shard] = b.Last
		}
	}
	if len(seen) != 34 {
		t.Errorf("read %d records, want 34", len(seen))
	}
	if !ended["s0"] || !ended["s1"] || !ended["s2"] || ended["s3"] {
		t.Errorf("ended = %v", ended)
	}

	// Resume: ended shards are not read again; open ones continue.
	f.mu.Lock()
	f.reads = nil
	f.shard("s3").data = append(f.shard("s3").data, "s3-new")
	f.mu.Unlock()
	var again []string
	for _, b := range drain(t, c, positions) {
		for _, r := range b.Records {
			again = append(again, string(r.Data))
		}
	}
	if len(again) != 1 || again[0] != "s3-new" {
		t.Errorf("resumed read = %v, want only s3-new", again)
	}
	for _, id := range f.reads {
		if id == "s0" || id == "s1" || id == "s2" {
			t.Errorf("ended shard %s read again", id)
		}
	}
}

// A fake lister with many shards across pages: discovery follows
// NextToken.
type pagedAPI struct {
	*awskinesis.Client
	pages [][]types.Shard
}

func (p pagedAPI) ListShards(_ context.Context, in *awskinesis.ListShardsInput, _ ...func(*awskinesis.Options)) (*awskinesis.ListShardsOutput, error) {
	i := 0
	if in.NextToken != nil {
		if in.StreamName != nil {
			return nil, fmt.Errorf("stream name and next token together")
		}
		fmt.Sscan(*in.NextToken, &i)
	}
	out := &awskinesis.ListShardsOutput{Shards: p.pages[i]}
	if i+1 < len(p.pages) {
		out.NextToken = aws.String(fmt.Sprint(i + 1))
	}
	return out, nil
}

func TestDiscoveryFollowsPagination(t *testing.T) {
	c := testenv.AWS(t)
	stream := createStream(t, c.Kinesis, 3)
	put(t, c.Kinesis, stream, 0, 30)
	shards, err := c.Kinesis.ListShards(t.Context(), &awskinesis.ListShardsInput{StreamName: &stream})
	if err != nil {
		t.Fatal(err)
	}
	api := pagedAPI{Client: c.Kinesis}
	for _, s := range shards.Shards {
		api.pages = append(api.pages, []types.Shard{s})
	}
	consumer := &kinesis.Consumer{API: api, Stream: stream, IdleWait: 200 * time.Millisecond}
	n := 0
	for _, b := range drain(t, consumer, nil) {
		n += len(b.Records)
	}
	if n != 30 {
		t.Errorf("read %d records over 3 pages of shards, want 30", n)
	}
}

// flaky fails GetRecords with throttling and an expired iterator before
// answering.
type flaky struct {
	*fakeStream
	calls int
}

func (f *flaky) GetRecords(ctx context.Context, in *awskinesis.GetRecordsInput, o ...func(*awskinesis.Options)) (*awskinesis.GetRecordsOutput, error) {
	f.calls++
	switch f.calls {
	case 2:
		return nil, &types.ProvisionedThroughputExceededException{Message: aws.String("slow down")}
	case 3:
		return nil, &types.LimitExceededException{Message: aws.String("limit")}
	case 5:
		return nil, &types.ExpiredIteratorException{Message: aws.String("expired")}
	}
	return f.fakeStream.GetRecords(ctx, in, o...)
}

type throttleCount struct{ n int }

func (c *throttleCount) Read(string, int, int)     {}
func (c *throttleCount) Lag(string, time.Duration) {}
func (c *throttleCount) Throttled(string)          { c.n++ }

// Throttling backs off and an expired iterator is renewed after the last
// record read: every record is read once.
func TestThrottlingAndExpiredIterator(t *testing.T) {
	data := make([]string, 20)
	for i := range data {
		data[i] = fmt.Sprint(i)
	}
	f := &flaky{fakeStream: &fakeStream{shards: []*fakeShard{{id: "s0", data: data}}}}
	obs := &throttleCount{}
	c := &kinesis.Consumer{API: f, Stream: "fake", IdleWait: 200 * time.Millisecond, Observer: obs}
	var got []string
	for _, b := range drain(t, c, nil) {
		for _, r := range b.Records {
			got = append(got, string(r.Data))
		}
	}
	if strings.Join(got, ",") != strings.Join(data, ",") {
		t.Errorf("read %v, want %v in order", got, data)
	}
	if obs.n != 2 {
		t.Errorf("%d throttles observed, want 2", obs.n)
	}
}

// Two workers split the shards by hash: together they read every record
// once, and a child owned by one starts only after its parent, owned by
// the other, has ended.
func TestWorkersSplitShards(t *testing.T) {
	recs := func(prefix string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%s-%d", prefix, i)
		}
		return out
	}
	var shards []*fakeShard
	for i := range 6 {
		shards = append(shards, &fakeShard{id: fmt.Sprintf("shard-%d", i), data: recs(fmt.Sprint("p", i), 5), closed: i == 0})
	}
	// shard-0 was split into these two.
	shards = append(shards, &fakeShard{id: "child-a", parents: []string{"shard-0"}, data: recs("ca", 4)},
		&fakeShard{id: "child-b", parents: []string{"shard-0"}, data: recs("cb", 4)})
	f := &fakeStream{shards: shards}

	var mu sync.Mutex
	ended := map[string]bool{}
	owner := map[string]int{}
	seen := map[string]bool{}
	consumers := make([]*kinesis.Consumer, 2)
	for w := range consumers {
		consumers[w] = &kinesis.Consumer{
			API: f, Stream: "fake", IdleWait: 200 * time.Millisecond, Owns: kinesis.Worker(w, 2),
			Ended: func(context.Context) (map[string]bool, error) {
				mu.Lock()
				defer mu.Unlock()
				return maps.Clone(ended), nil
			},
		}
	}
	positions := []map[string]string{{}, {}}
	// Each worker drains in turn until neither reads anything new, as two
	// processes would over time.
	for range 4 {
		for w, c := range consumers {
			for _, b := range drain(t, c, positions[w]) {
				if o, ok := owner[b.Shard]; ok && o != w {
					t.Errorf("%s read by workers %d and %d", b.Shard, o, w)
				}
				owner[b.Shard] = w
				for _, p := range f.shard(b.Shard).parents {
					mu.Lock()
					if !ended[p] {
						t.Errorf("%s read before its parent %s ended", b.Shard, p)
					}
					mu.Unlock()
				}
				for _, r := range b.Records {
					if seen[string(r.Data)] {
						t.Errorf("%s read twice", r.Data)
					}
					seen[string(r.Data)] = true
				}
				positions[w][b.Shard] = b.Last
				if b.End {
					positions[w][b.Shard] = kinesis.ShardEnd
					mu.Lock()
					ended[b.Shard] = true
					mu.Unlock()
				}
			}
		}
	}
	if len(seen) != 6*5+8 {
		t.Errorf("read %d records, want %d", len(seen), 6*5+8)
	}
	counts := map[int]int{}
	for _, w := range owner {
		counts[w]++
	}
	if counts[0] == 0 || counts[1] == 0 {
		t.Errorf("shards per worker %v: the hash gave one worker nothing", counts)
	}
}
