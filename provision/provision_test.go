package provision_test

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/qoslake/qoslake/awsclient"
	"github.com/qoslake/qoslake/internal/testenv"
	"github.com/qoslake/qoslake/provision"
)

func spec(prefix, via string, raw bool) provision.Spec {
	return provision.Spec{
		Stream:              prefix + "-player-events",
		RealtimeStream:      prefix + "-cdn-realtime-logs",
		StreamShards:        2,
		CDNBucket:           prefix + "-cdn-logs",
		CDNLogPrefix:        "cloudfront/",
		Queue:               prefix + "-cdn-log-events",
		DeadLetterQueue:     prefix + "-cdn-log-events-dlq",
		QueueMaxReceives:    3,
		NotifyVia:           via,
		S3EventsTopic:       prefix + "-cdn-log-events",
		RawDelivery:         raw,
		AlertsTopic:         prefix + "-alerts",
		AlertEmails:         []string{"noc@example.com"},
		UpdatesTopic:        prefix + "-updates",
		UpdatesExampleQueue: prefix + "-updates-example",
		WarehouseBucket:     prefix + "-warehouse",
	}
}

func provisioner(c *awsclient.Clients) *provision.Provisioner {
	return &provision.Provisioner{Kinesis: c.Kinesis, S3: c.S3, SQS: c.SQS, SNS: c.SNS, Region: c.Config.Region}
}

func TestProvisionCreatesEverythingAndIsIdempotent(t *testing.T) {
	c := testenv.AWS(t)
	ctx := t.Context()
	s := spec(testenv.Name("prov"), "sns", true)

	first, err := provisioner(c).Run(ctx, s)
	if err != nil {
		t.Fatalf("first run: %v", err)
	}
	for _, want := range []struct{ kind, name string }{
		{"kinesis-stream", s.Stream},
		{"kinesis-stream", s.RealtimeStream},
		{"s3-bucket", s.CDNBucket},
		{"s3-bucket", s.WarehouseBucket},
		{"sqs-queue", s.DeadLetterQueue},
		{"sqs-queue", s.Queue},
		{"sns-topic", s.S3EventsTopic},
		{"sns-subscription", "email:noc@example.com"},
		{"sns-topic", s.AlertsTopic},
		{"sns-topic", s.UpdatesTopic},
		{"sqs-queue", s.UpdatesExampleQueue},
		{"s3-notification", s.CDNBucket},
	} {
		r, ok := first.Find(want.kind, want.name)
		if !ok || r.Status != provision.Created {
			t.Errorf("%s %s: %+v, want created", want.kind, want.name, r)
		}
	}

	// The resources are really there, with the settings asked for.
	st, err := c.Kinesis.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: &s.Stream})
	if err != nil || aws.ToInt32(st.StreamDescriptionSummary.OpenShardCount) != 2 {
		t.Errorf("stream: %v, %+v", err, st)
	}
	q, err := c.SQS.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: &s.Queue})
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := c.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: q.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{"RedrivePolicy"},
	})
	if err != nil || !strings.Contains(attrs.Attributes["RedrivePolicy"], s.DeadLetterQueue) {
		t.Errorf("redrive policy: %v %v", err, attrs.Attributes)
	}
	if _, err := c.S3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.WarehouseBucket}); err != nil {
		t.Errorf("warehouse bucket: %v", err)
	}

	// A second run changes nothing and says every resource existed.
	second, err := provisioner(c).Run(ctx, s)
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	if second.Changed() {
		t.Errorf("second run changed: %+v", second.Resources)
	}
	if len(second.Resources) != len(first.Resources) {
		t.Errorf("second run reported %d resources, first %d", len(second.Resources), len(first.Resources))
	}
	n := 0
	for pg := sns.NewListTopicsPaginator(c.SNS, &sns.ListTopicsInput{}); pg.HasMorePages(); {
		topics, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, tp := range topics.Topics {
			if strings.HasSuffix(*tp.TopicArn, ":"+s.AlertsTopic) {
				n++
			}
		}
	}
	if n != 1 {
		t.Errorf("%d alerts topics, want 1", n)
	}
}

// An object written to the CDN bucket produces an S3 event on the queue, in
// each delivery form the consumer must accept.
func TestObjectCreatedReachesQueue(t *testing.T) {
	c := testenv.AWS(t)
	for _, tc := range []struct {
		name    string
		via     string
		raw     bool
		wrapped bool
	}{
		{"sns envelope", "sns", false, true},
		{"sns raw delivery", "sns", true, false},
		{"direct to sqs", "sqs", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			s := spec(testenv.Name("evt"), tc.via, tc.raw)
			if _, err := provisioner(c).Run(ctx, s); err != nil {
				t.Fatal(err)
			}
			q, err := c.SQS.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: &s.Queue})
			if err != nil {
				t.Fatal(err)
			}
			key := "cloudfront/E2EXAMPLE.2026-03-02-18.a1b2c3 d4.gz"
			if _, err := c.S3.PutObject(ctx, &s3.PutObjectInput{
				Bucket: &s.CDNBucket, Key: aws.String(key), Body: bytes.NewReader([]byte("#Version: 1.0\n")),
			}); err != nil {
				t.Fatal(err)
			}
			// A key outside the log prefix triggers nothing.
			if _, err := c.S3.PutObject(ctx, &s3.PutObjectInput{
				Bucket: &s.CDNBucket, Key: aws.String("other/x.gz"), Body: bytes.NewReader([]byte("x")),
			}); err != nil {
				t.Fatal(err)
			}

			deadline := time.Now().Add(15 * time.Second)
			var keys []string
			for time.Now().Before(deadline) && len(keys) == 0 {
				out, err := c.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
					QueueUrl: q.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
				})
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range out.Messages {
					body := aws.ToString(m.Body)
					if tc.wrapped {
						var env struct{ Type, Message string }
						if err := json.Unmarshal([]byte(body), &env); err != nil || env.Type != "Notification" {
							t.Fatalf("want an SNS envelope, got %s", body)
						}
						body = env.Message
					}
					var ev struct {
						Event   string
						Records []struct {
							EventName string
							S3        struct{ Object struct{ Key string } }
						}
					}
					if err := json.Unmarshal([]byte(body), &ev); err != nil {
						t.Fatalf("not an S3 event: %s", body)
					}
					if ev.Event == "s3:TestEvent" {
						continue
					}
					for _, r := range ev.Records {
						if !strings.HasPrefix(r.EventName, "ObjectCreated") {
							t.Errorf("event %s", r.EventName)
						}
						keys = append(keys, r.S3.Object.Key)
					}
				}
			}
			if len(keys) != 1 {
				t.Fatalf("keys on queue = %q, want the one log object", keys)
			}
			// Keys in S3 events are URL-encoded ("%2F", "+" for a space).
			if got, err := url.QueryUnescape(keys[0]); err != nil || got != key {
				t.Errorf("decoded key = %q (%v), want %q", got, err, key)
			}
		})
	}
}
