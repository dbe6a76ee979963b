package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/qoslake/qoslake/gold"
	"github.com/qoslake/qoslake/internal/testenv"
)

// commitOutbox runs the edge latency incident of the runner test through
// the rules, so gold.alerts holds a fired and a resolved change to publish.
func commitOutbox(t *testing.T, e goldEnv) {
	t.Helper()
	commitRows(t, e.cdn, gold.CDNMinuteTable, edgeMinutes(0, 80, "FRA56-P3", 40, 50))
	alerts, err := e.runner(Defaults()[:1]).Evaluate(context.Background())
	if err != nil || len(alerts) != 2 {
		t.Fatalf("evaluate: %v, %v", transitions(alerts), err)
	}
}

// countingSNS counts what it accepts and refuses the first fail calls.
type countingSNS struct {
	mu       sync.Mutex
	fail     int
	accepted []string // event ids
}

func (c *countingSNS) Publish(_ context.Context, in *sns.PublishInput, _ ...func(*sns.Options)) (*sns.PublishOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail > 0 {
		c.fail--
		return nil, errors.New("connection refused")
	}
	c.accepted = append(c.accepted, *in.MessageAttributes["event_id"].StringValue)
	return &sns.PublishOutput{}, nil
}

// TestRefusedPublishWaitsAndIsSentOnce: SNS refusing keeps the change in
// the outbox, in order; the next calls send each change once.
func TestRefusedPublishWaitsAndIsSentOnce(t *testing.T) {
	e := openGold(t, t.TempDir())
	commitOutbox(t, e)
	api := &countingSNS{fail: 3}
	p := &Publisher{Alerts: e.alerts, SNS: api, TopicARN: "arn:aws:sns:us-east-1:000000000000:x", Owner: "a"}
	ctx := context.Background()
	for range 3 {
		if n, err := p.Publish(ctx); err == nil || n != 0 {
			t.Fatalf("publish during the outage: %d sent, %v", n, err)
		}
	}
	if n, err := p.Publish(ctx); err != nil || n != 2 {
		t.Fatalf("publish after the outage: %d sent, %v", n, err)
	}
	if n, err := p.Publish(ctx); err != nil || n != 0 {
		t.Fatalf("publish again: %d sent, %v", n, err)
	}
	if len(api.accepted) != 2 || api.accepted[0] != "edge_latency/FRA56-P3/2026-03-02T12:41:00Z/fired" ||
		api.accepted[1] != "edge_latency/FRA56-P3/2026-03-02T12:41:00Z/resolved" {
		t.Errorf("SNS accepted %v", api.accepted)
	}
}

// TestTwoPublishersSendEachChangeOnce: two processes publishing at once
// send each change once between them; the lease holder sends.
func TestTwoPublishersSendEachChangeOnce(t *testing.T) {
	dir := t.TempDir()
	e := openGold(t, dir)
	commitOutbox(t, e)
	api := &countingSNS{}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, owner := range []string{"a", "b"} {
		env := openGold(t, dir)
		p := &Publisher{Alerts: env.alerts, SNS: api, TopicARN: "arn:x", Owner: owner}
		wg.Go(func() { _, errs[i] = p.Publish(context.Background()) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && !errors.Is(err, ErrNotLeader) {
			t.Fatal(err)
		}
	}
	// Whoever lost the lease race retries later: still once.
	for _, owner := range []string{"a", "b"} {
		p := &Publisher{Alerts: openGold(t, dir).alerts, SNS: api, TopicARN: "arn:x", Owner: owner}
		if _, err := p.Publish(context.Background()); err != nil && !errors.Is(err, ErrNotLeader) {
			t.Fatal(err)
		}
	}
	if len(api.accepted) != 2 {
		t.Errorf("SNS accepted %v, want each of the 2 changes once", api.accepted)
	}
}

// TestOutageOfTheRealEndpoint publishes through the SDK to the emulator's
// SNS, via a port that refuses connections at first: nothing is lost while
// it does, and once it forwards, an SQS queue subscribed to the topic
// receives each change once, with the attributes teams filter on.
func TestOutageOfTheRealEndpoint(t *testing.T) {
	c := testenv.AWS(t)
	ctx := context.Background()
	topic, err := c.SNS.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(testenv.Name("alerts"))})
	if err != nil {
		t.Fatal(err)
	}
	q, err := c.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(testenv.Name("alerts-sub"))})
	if err != nil {
		t.Fatal(err)
	}
	qa, err := c.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SNS.Subscribe(ctx, &sns.SubscribeInput{TopicArn: topic.TopicArn, Protocol: aws.String("sqs"),
		Endpoint:   aws.String(qa.Attributes["QueueArn"]),
		Attributes: map[string]string{"FilterPolicy": `{"team":["traffic"]}`}}); err != nil {
		t.Fatal(err)
	}

	// A port with nothing behind it: connections are refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	opts := c.SNS.Options()
	opts.BaseEndpoint = aws.String("http://" + addr)
	opts.RetryMaxAttempts = 1
	api := sns.New(opts)

	e := openGold(t, t.TempDir())
	commitOutbox(t, e)
	p := &Publisher{Alerts: e.alerts, SNS: api, TopicARN: *topic.TopicArn, Owner: "a"}
	for range 2 {
		if n, err := p.Publish(ctx); err == nil || n != 0 {
			t.Fatalf("publish to a refusing endpoint: %d sent, %v", n, err)
		}
	}
	// The endpoint comes back: forward the port to the emulator.
	forward(t, addr, os.Getenv("AWS_ENDPOINT_URL"))
	if n, err := p.Publish(ctx); err != nil || n != 2 {
		t.Fatalf("publish after the outage: %d sent, %v", n, err)
	}

	var got []map[string]any
	for len(got) < 3 {
		out, err := c.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			break
		}
		for _, m := range out.Messages {
			var env map[string]any
			if err := json.Unmarshal([]byte(*m.Body), &env); err != nil {
				t.Fatal(err)
			}
			got = append(got, env)
		}
	}
	if len(got) != 2 {
		t.Fatalf("queue received %d messages, want 2", len(got))
	}
	for i, state := range []string{"fired", "resolved"} {
		attrs, _ := got[i]["MessageAttributes"].(map[string]any)
		value := func(k string) string {
			a, _ := attrs[k].(map[string]any)
			s, _ := a["Value"].(string)
			return s
		}
		if value("state") != state || value("team") != "traffic" || value("rule") != "edge_latency" ||
			value("edge_location") != "FRA56-P3" || value("severity") != "high" {
			t.Errorf("message %d attributes %v", i, attrs)
		}
		var doc Alert
		if err := json.Unmarshal([]byte(got[i]["Message"].(string)), &doc); err != nil {
			t.Fatalf("the sqs protocol's body is not the JSON document: %v", err)
		}
		if doc.State != state || doc.Dimensions["edge_location"] != "FRA56-P3" {
			t.Errorf("message %d document %+v", i, doc)
		}
	}
}

// forward serves addr, copying each connection to the endpoint's host.
func forward(t *testing.T, addr, endpoint string) {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
			if err != nil {
				in.Close()
				continue
			}
			go func() { _, _ = io.Copy(out, in); out.Close() }()
			go func() { _, _ = io.Copy(in, out); in.Close() }()
		}
	}()
}

// slowSNS accepts each message after the clock has moved on by step,
// calling during first (another process looking in the middle of a send).
type slowSNS struct {
	countingSNS
	clock  *time.Time
	step   time.Duration
	during func()
}

func (s *slowSNS) Publish(ctx context.Context, in *sns.PublishInput, o ...func(*sns.Options)) (*sns.PublishOutput, error) {
	*s.clock = s.clock.Add(s.step)
	if s.during != nil {
		s.during()
	}
	return s.countingSNS.Publish(ctx, in, o...)
}

// TestLeaseOutlivedMidSendSendsOnce: sends that together outlast the
// 1-minute lease (50 s each) — the lease is renewed with each change
// recorded, so a second process looking in the middle of each send finds
// it held and sends nothing twice.
func TestLeaseOutlivedMidSendSendsOnce(t *testing.T) {
	dir := t.TempDir()
	e := openGold(t, dir)
	commitOutbox(t, e)
	clock := time.Now()
	api := &slowSNS{clock: &clock, step: 50 * time.Second}
	now := func() time.Time { return clock }
	a := &Publisher{Alerts: e.alerts, SNS: api, TopicARN: "arn:x", Owner: "a", Now: now}
	b := &Publisher{Alerts: openGold(t, dir).alerts, SNS: &api.countingSNS, TopicARN: "arn:x", Owner: "b", Now: now}
	var bErrs []error
	api.during = func() {
		_, err := b.Publish(context.Background())
		bErrs = append(bErrs, err)
	}
	if n, err := a.Publish(context.Background()); err != nil || n != 2 {
		t.Fatalf("a: %d sent, %v", n, err)
	}
	for _, err := range bErrs {
		if !errors.Is(err, ErrNotLeader) {
			t.Errorf("b in the middle of a's send: %v, want ErrNotLeader", err)
		}
	}
	if len(api.accepted) != 2 {
		t.Errorf("SNS accepted %v, want each change once", api.accepted)
	}
}
