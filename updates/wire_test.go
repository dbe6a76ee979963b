package updates

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/qoslake/qoslake/awsclient"
	"github.com/qoslake/qoslake/gold"
	"github.com/qoslake/qoslake/internal/testenv"
)

// received is one update message as an SQS subscriber got it: the JSON
// body and the attributes, unwrapped from the SNS envelope when raw
// delivery is off.
type received struct {
	body  []byte
	attrs map[string]string // name -> "Type:Value"
}

// subscriber is a queue subscribed to the topic.
type subscriber struct {
	url string
	raw bool
}

func subscribe(t *testing.T, c *awsclient.Clients, topicARN, name string, raw bool, filter string) subscriber {
	t.Helper()
	ctx := t.Context()
	q, err := c.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	a, err := c.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	// A queue policy letting the topic send is left out: moto does not
	// check it (provision sets one for AWS).
	attrs := map[string]string{}
	if raw {
		attrs["RawMessageDelivery"] = "true"
	}
	if filter != "" {
		attrs["FilterPolicy"] = filter
	}
	if _, err := c.SNS.Subscribe(ctx, &sns.SubscribeInput{TopicArn: aws.String(topicARN), Protocol: aws.String("sqs"),
		Endpoint: aws.String(a.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]), Attributes: attrs}); err != nil {
		t.Fatal(err)
	}
	return subscriber{url: aws.ToString(q.QueueUrl), raw: raw}
}

// receive takes n messages off the queue, then checks that no more come.
func (s subscriber) receive(t *testing.T, c *awsclient.Clients, n int) []received {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var out []received
	for len(out) < n {
		res, err := c.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(s.url),
			MaxNumberOfMessages: 10, WaitTimeSeconds: 1, MessageAttributeNames: []string{"All"}})
		if err != nil {
			t.Fatalf("receive: %v (after %d of %d messages)", err, len(out), n)
		}
		for _, m := range res.Messages {
			out = append(out, s.unwrap(t, m))
			if _, err := c.SQS.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(s.url), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	}
	res, err := c.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(s.url), WaitTimeSeconds: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Messages) > 0 {
		t.Errorf("%d messages more than the %d expected", len(res.Messages), n)
	}
	return out
}

func (s subscriber) unwrap(t *testing.T, m sqstypes.Message) received {
	t.Helper()
	if s.raw {
		r := received{body: []byte(aws.ToString(m.Body)), attrs: map[string]string{}}
		for k, v := range m.MessageAttributes {
			r.attrs[k] = aws.ToString(v.DataType) + ":" + aws.ToString(v.StringValue)
		}
		return r
	}
	var env struct {
		Type              string
		Message           string
		MessageAttributes map[string]struct{ Type, Value string }
	}
	if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &env); err != nil {
		t.Fatalf("SNS envelope: %v: %s", err, aws.ToString(m.Body))
	}
	if env.Type != "Notification" {
		t.Errorf("envelope type %q", env.Type)
	}
	if len(m.MessageAttributes) != 0 {
		t.Errorf("enveloped delivery with SQS attributes %v", m.MessageAttributes)
	}
	r := received{body: []byte(env.Message), attrs: map[string]string{}}
	for k, v := range env.MessageAttributes {
		r.attrs[k] = v.Type + ":" + v.Value
	}
	return r
}

// The updates reach SQS subscribers of a real SNS topic (the local
// emulator) with their attributes, with raw delivery and without, and a
// filter policy on update_type selects them; the values are those of the
// gold rows written.
func TestPublishToTopicWire(t *testing.T) {
	c := testenv.AWS(t)
	ctx := t.Context()
	name := testenv.Name("updates")
	topic, err := c.SNS.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	topicARN := aws.ToString(topic.TopicArn)
	raw := subscribe(t, c, topicARN, name+"-raw", true, "")
	enveloped := subscribe(t, c, topicARN, name+"-envelope", false, "")
	kpiOnly := subscribe(t, c, topicARN, name+"-kpi", true, `{"update_type": ["kpi_summary"]}`)

	g := openGold(t, t.TempDir())
	r := rand.New(rand.NewPCG(3, 4))
	e := expected{player: playerRows(r, []string{"v1", "v2", ""}, 0, 1, 2, 3), cdn: cdnRows(r, 0, 1, 2)}
	// Many videos, each viewed once in minute 0: total_views takes two
	// messages; recent_views (the last 2 minutes) does not see them.
	const many = 9_000
	var catalogue []row
	for i := range many {
		catalogue = append(catalogue, row{"window_start": minute(0), "video_id": fmt.Sprintf("catalogue-%05d", i), "play_attempts": int64(1)})
	}
	e.player = append(e.player, catalogue...)
	appendRows(t, g.gold.PlayerMinute, gold.PlayerMinuteTable, e.player)
	appendRows(t, g.gold.CDNMinute, gold.CDNMinuteTable, e.cdn)
	appendRows(t, g.gold.Sessions, sessionsDef, sessionRows)

	obs := newObserved()
	p, err := New(c.SNS, g.gold, Options{TopicARN: topicARN, Recent: 2 * time.Minute, Observer: obs,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	p.Notify()
	closeCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := p.Close(closeCtx); err != nil {
		t.Fatal(err)
	}

	const messages = 5 // total_views in two parts
	for _, sub := range []struct {
		name string
		s    subscriber
	}{{"raw delivery", raw}, {"SNS envelope", enveloped}} {
		t.Run(sub.name, func(t *testing.T) {
			got := sub.s.receive(t, c, messages)
			var bodies [][]byte
			for _, m := range got {
				var d decoded
				if err := json.Unmarshal(m.body, &d); err != nil {
					t.Fatalf("%v: %s", err, m.body)
				}
				want := map[string]string{
					AttrUpdateType: "String:" + d.UpdateType, AttrUpdateID: "String:" + d.UpdateID,
					AttrPart: "Number:" + strconv.Itoa(d.Part), AttrParts: "Number:" + strconv.Itoa(d.Parts),
				}
				if !maps.Equal(m.attrs, want) {
					t.Errorf("%s part %d: attributes %v, want %v", d.UpdateType, d.Part, m.attrs, want)
				}
				bodies = append(bodies, m.body)
			}
			updates := decodeAll(t, bodies)

			// Window [12:17:30, 12:19:30]: s1, and the open s3 and s4,
			// of users u1, u2 and u3.
			if au := updates[ActiveUsers]; au.ActiveUsers != 3 || au.ActiveSessions != 3 || au.ConcurrentSessions != 2 {
				t.Errorf("active_users: %d users, %d sessions, %d concurrent; want 3, 3, 2", au.ActiveUsers, au.ActiveSessions, au.ConcurrentSessions)
			}
			end := minute(4)
			if rv, want := updates[RecentViews], e.views(minute(2)); !slices.Equal(rv.Videos, want) || rv.AsOfEventTime == nil || !rv.AsOfEventTime.Equal(end) {
				t.Errorf("recent_views as of %v: %v, want %v as of %v", rv.AsOfEventTime, rv.Videos, want, end)
			}
			tv, want := updates[TotalViews], e.views(time.Time{})
			if tv.Parts != 2 || tv.VideoCount != len(want) || len(want) < many || !slices.Equal(tv.Videos, want) {
				t.Errorf("total_views: %d parts, %d videos (%d received); want 2 parts, %d videos", tv.Parts, tv.VideoCount, len(tv.Videos), len(want))
			}
			kpi, wantKPI := updates[KPISummary], e.kpis(t, minute(3), minute(2))
			if !reflect.DeepEqual(kpi.LastMinute, wantKPI["last_minute"]) || !reflect.DeepEqual(kpi.Last5Minutes, wantKPI["last_5_minutes"]) {
				t.Errorf("kpi_summary:\n got %v %v\nwant %v", kpi.LastMinute, kpi.Last5Minutes, wantKPI)
			}
			for typ, d := range updates {
				if len(d.GoldSnapshots) == 0 || d.GeneratedAt.IsZero() {
					t.Errorf("%s: snapshots %v, generated %v", typ, d.GoldSnapshots, d.GeneratedAt)
				}
			}
		})
	}
	t.Run("filter policy on update_type", func(t *testing.T) {
		got := kpiOnly.receive(t, c, 1)
		if got[0].attrs[AttrUpdateType] != "String:kpi_summary" {
			t.Errorf("filtered subscriber got %v", got[0].attrs)
		}
	})
	for _, typ := range UpdateTypes {
		want := 1
		if typ == TotalViews {
			want = 2
		}
		if got := obs.get(obs.published, typ); got != want || obs.get(obs.failed, typ) != 0 {
			t.Errorf("%s: %d published, %d failed; want %d, 0", typ, got, obs.get(obs.failed, typ), want)
		}
	}
}
