// Package provision creates, idempotently, every AWS resource the pipeline
// uses: the player-events and CloudFront real-time log streams, the CDN log
// bucket and its event notification, the event queue with its dead-letter queue, the SNS topics
// (S3 events, alerts, updates) with their subscriptions, and the warehouse
// bucket when tables live on S3. The CloudFormation template in infra/ and
// the LocalStack init script create the same resources with the same names.
//
// moto and LocalStack ignore some of a template's resources (bucket
// notifications, queue policies, SNS subscriptions), which is one reason
// this package uses the SDK directly rather than deploying the template.
package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	kinesistypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Spec is what to provision. Names come from config.Config.
type Spec struct {
	Stream string
	// RealtimeStream is the stream a CloudFront real-time log
	// configuration delivers to (the configuration itself belongs to the
	// distribution's account and is not created here; see infra/).
	RealtimeStream string
	StreamShards   int
	StreamOnDemand bool

	CDNBucket    string
	CDNLogPrefix string

	Queue            string
	DeadLetterQueue  string
	QueueMaxReceives int
	// QueueVisibility is the queue's default visibility timeout.
	QueueVisibility time.Duration
	// NotifyVia is "sns" (S3 → topic → queue) or "sqs" (S3 → queue).
	NotifyVia     string
	S3EventsTopic string
	// RawDelivery makes SNS deliver the S3 event itself rather than an SNS
	// envelope around it. The consumer accepts both.
	RawDelivery bool

	AlertsTopic string
	AlertEmails []string

	UpdatesTopic        string
	UpdatesExampleQueue string

	// WarehouseBucket is created when the warehouse is on S3.
	WarehouseBucket string
}

// Status of a resource after provisioning.
type Status string

// Statuses reported per resource.
const (
	Created Status = "created"
	Existed Status = "exists"
	Updated Status = "updated"
)

// Resource is one provisioned resource.
type Resource struct {
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	ID     string `json:"id,omitempty"`
	Status Status `json:"status"`
}

// Report lists what provisioning did, in creation order.
type Report struct {
	Resources []Resource `json:"resources"`
}

// Changed reports whether anything was created or updated.
func (r Report) Changed() bool {
	return slices.ContainsFunc(r.Resources, func(x Resource) bool { return x.Status != Existed })
}

// Find returns the resource of kind and name.
func (r Report) Find(kind, name string) (Resource, bool) {
	for _, x := range r.Resources {
		if x.Kind == kind && x.Name == name {
			return x, true
		}
	}
	return Resource{}, false
}

// Kinesis is the part of the Kinesis API provisioning calls.
type Kinesis interface {
	CreateStream(context.Context, *kinesis.CreateStreamInput, ...func(*kinesis.Options)) (*kinesis.CreateStreamOutput, error)
	DescribeStreamSummary(context.Context, *kinesis.DescribeStreamSummaryInput, ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
}

// S3 is the part of the S3 API provisioning calls.
type S3 interface {
	HeadBucket(context.Context, *s3.HeadBucketInput, ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
	CreateBucket(context.Context, *s3.CreateBucketInput, ...func(*s3.Options)) (*s3.CreateBucketOutput, error)
	GetBucketNotificationConfiguration(context.Context, *s3.GetBucketNotificationConfigurationInput, ...func(*s3.Options)) (*s3.GetBucketNotificationConfigurationOutput, error)
	PutBucketNotificationConfiguration(context.Context, *s3.PutBucketNotificationConfigurationInput, ...func(*s3.Options)) (*s3.PutBucketNotificationConfigurationOutput, error)
}

// SQS is the part of the SQS API provisioning calls.
type SQS interface {
	GetQueueUrl(context.Context, *sqs.GetQueueUrlInput, ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error)
	CreateQueue(context.Context, *sqs.CreateQueueInput, ...func(*sqs.Options)) (*sqs.CreateQueueOutput, error)
	GetQueueAttributes(context.Context, *sqs.GetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
	SetQueueAttributes(context.Context, *sqs.SetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.SetQueueAttributesOutput, error)
}

// SNS is the part of the SNS API provisioning calls.
type SNS interface {
	CreateTopic(context.Context, *sns.CreateTopicInput, ...func(*sns.Options)) (*sns.CreateTopicOutput, error)
	ListTopics(context.Context, *sns.ListTopicsInput, ...func(*sns.Options)) (*sns.ListTopicsOutput, error)
	GetTopicAttributes(context.Context, *sns.GetTopicAttributesInput, ...func(*sns.Options)) (*sns.GetTopicAttributesOutput, error)
	SetTopicAttributes(context.Context, *sns.SetTopicAttributesInput, ...func(*sns.Options)) (*sns.SetTopicAttributesOutput, error)
	Subscribe(context.Context, *sns.SubscribeInput, ...func(*sns.Options)) (*sns.SubscribeOutput, error)
	ListSubscriptionsByTopic(context.Context, *sns.ListSubscriptionsByTopicInput, ...func(*sns.Options)) (*sns.ListSubscriptionsByTopicOutput, error)
	GetSubscriptionAttributes(context.Context, *sns.GetSubscriptionAttributesInput, ...func(*sns.Options)) (*sns.GetSubscriptionAttributesOutput, error)
	SetSubscriptionAttributes(context.Context, *sns.SetSubscriptionAttributesInput, ...func(*sns.Options)) (*sns.SetSubscriptionAttributesOutput, error)
}

// Provisioner creates the resources of a Spec.
type Provisioner struct {
	Kinesis Kinesis
	S3      S3
	SQS     SQS
	SNS     SNS
	Region  string

	rep Report
}

// Run creates what is missing and corrects what drifted (queue redrive,
// policies, notification), leaving the rest alone.
func (p *Provisioner) Run(ctx context.Context, s Spec) (Report, error) {
	p.rep = Report{}
	for _, name := range []string{s.Stream, s.RealtimeStream} {
		if name == "" {
			continue
		}
		if err := p.stream(ctx, name, s); err != nil {
			return p.rep, err
		}
	}
	if err := p.bucket(ctx, s.CDNBucket); err != nil {
		return p.rep, err
	}
	if s.WarehouseBucket != "" && s.WarehouseBucket != s.CDNBucket {
		if err := p.bucket(ctx, s.WarehouseBucket); err != nil {
			return p.rep, err
		}
	}
	dlqURL, err := p.queue(ctx, s.DeadLetterQueue, map[string]string{
		"MessageRetentionPeriod": strconv.Itoa(14 * 24 * 3600),
	})
	if err != nil {
		return p.rep, err
	}
	dlqARN, err := p.queueARN(ctx, dlqURL)
	if err != nil {
		return p.rep, err
	}
	redrive, _ := json.Marshal(map[string]string{
		"deadLetterTargetArn": dlqARN,
		"maxReceiveCount":     strconv.Itoa(s.QueueMaxReceives),
	})
	queueURL, err := p.queue(ctx, s.Queue, map[string]string{
		"RedrivePolicy":                 string(redrive),
		"VisibilityTimeout":             strconv.Itoa(int(max(s.QueueVisibility, time.Second) / time.Second)),
		"ReceiveMessageWaitTimeSeconds": "20",
		"MessageRetentionPeriod":        strconv.Itoa(4 * 24 * 3600),
	})
	if err != nil {
		return p.rep, err
	}
	queueARN, err := p.queueARN(ctx, queueURL)
	if err != nil {
		return p.rep, err
	}
	bucketARN := "arn:aws:s3:::" + s.CDNBucket

	switch s.NotifyVia {
	case "sns":
		topicARN, err := p.topic(ctx, s.S3EventsTopic)
		if err != nil {
			return p.rep, err
		}
		if err := p.topicPolicy(ctx, topicARN, s.S3EventsTopic, "s3.amazonaws.com", bucketARN); err != nil {
			return p.rep, err
		}
		if err := p.queuePolicy(ctx, s.Queue, queueURL, queueARN, "sns.amazonaws.com", topicARN); err != nil {
			return p.rep, err
		}
		if err := p.subscribe(ctx, topicARN, "sqs", queueARN, rawDelivery(s.RawDelivery)); err != nil {
			return p.rep, err
		}
		if err := p.notification(ctx, s, nil, []s3types.TopicConfiguration{{
			Id:       aws.String("qoslake-cdn-logs"),
			TopicArn: aws.String(topicARN),
			Events:   []s3types.Event{"s3:ObjectCreated:*"},
			Filter:   prefixFilter(s.CDNLogPrefix),
		}}); err != nil {
			return p.rep, err
		}
	case "sqs":
		if err := p.queuePolicy(ctx, s.Queue, queueURL, queueARN, "s3.amazonaws.com", bucketARN); err != nil {
			return p.rep, err
		}
		if err := p.notification(ctx, s, []s3types.QueueConfiguration{{
			Id:       aws.String("qoslake-cdn-logs"),
			QueueArn: aws.String(queueARN),
			Events:   []s3types.Event{"s3:ObjectCreated:*"},
			Filter:   prefixFilter(s.CDNLogPrefix),
		}}, nil); err != nil {
			return p.rep, err
		}
	default:
		return p.rep, fmt.Errorf("notify via %q: want sns or sqs", s.NotifyVia)
	}

	alertsARN, err := p.topic(ctx, s.AlertsTopic)
	if err != nil {
		return p.rep, err
	}
	for _, sub := range alertSubscriptions(s.AlertEmails) {
		if err := p.subscribe(ctx, alertsARN, "email", sub.addr, sub.attrs); err != nil {
			return p.rep, err
		}
	}
	updatesARN, err := p.topic(ctx, s.UpdatesTopic)
	if err != nil {
		return p.rep, err
	}
	exURL, err := p.queue(ctx, s.UpdatesExampleQueue, nil)
	if err != nil {
		return p.rep, err
	}
	exARN, err := p.queueARN(ctx, exURL)
	if err != nil {
		return p.rep, err
	}
	if err := p.queuePolicy(ctx, s.UpdatesExampleQueue, exURL, exARN, "sns.amazonaws.com", updatesARN); err != nil {
		return p.rep, err
	}
	if err := p.subscribe(ctx, updatesARN, "sqs", exARN, rawDelivery(true)); err != nil {
		return p.rep, err
	}
	return p.rep, nil
}

func (p *Provisioner) add(kind, name, id string, st Status) {
	p.rep.Resources = append(p.rep.Resources, Resource{Kind: kind, Name: name, ID: id, Status: st})
}

func (p *Provisioner) stream(ctx context.Context, name string, s Spec) error {
	out, err := p.Kinesis.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: &name})
	var nf *kinesistypes.ResourceNotFoundException
	switch {
	case err == nil:
		p.add("kinesis-stream", name, aws.ToString(out.StreamDescriptionSummary.StreamARN), Existed)
		return nil
	case !errors.As(err, &nf):
		return fmt.Errorf("describe stream %s: %w", name, err)
	}
	in := &kinesis.CreateStreamInput{StreamName: &name}
	if s.StreamOnDemand {
		in.StreamModeDetails = &kinesistypes.StreamModeDetails{StreamMode: kinesistypes.StreamModeOnDemand}
	} else {
		in.ShardCount = aws.Int32(int32(s.StreamShards))
	}
	if _, err := p.Kinesis.CreateStream(ctx, in); err != nil {
		return fmt.Errorf("create stream %s: %w", name, err)
	}
	// Wait until ACTIVE so the caller can write to it at once.
	for {
		out, err = p.Kinesis.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: &name})
		if err != nil {
			return fmt.Errorf("describe stream %s: %w", name, err)
		}
		if out.StreamDescriptionSummary.StreamStatus == kinesistypes.StreamStatusActive {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for stream %s: %w", name, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
	p.add("kinesis-stream", name, aws.ToString(out.StreamDescriptionSummary.StreamARN), Created)
	return nil
}

func (p *Provisioner) bucket(ctx context.Context, name string) error {
	_, err := p.S3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &name})
	if err == nil {
		p.add("s3-bucket", name, "arn:aws:s3:::"+name, Existed)
		return nil
	}
	var nf *s3types.NotFound
	if !errors.As(err, &nf) {
		return fmt.Errorf("head bucket %s: %w", name, err)
	}
	in := &s3.CreateBucketInput{Bucket: &name}
	if p.Region != "" && p.Region != "us-east-1" {
		in.CreateBucketConfiguration = &s3types.CreateBucketConfiguration{
			LocationConstraint: s3types.BucketLocationConstraint(p.Region),
		}
	}
	if _, err := p.S3.CreateBucket(ctx, in); err != nil {
		var owned *s3types.BucketAlreadyOwnedByYou
		if errors.As(err, &owned) {
			p.add("s3-bucket", name, "arn:aws:s3:::"+name, Existed)
			return nil
		}
		return fmt.Errorf("create bucket %s: %w", name, err)
	}
	p.add("s3-bucket", name, "arn:aws:s3:::"+name, Created)
	return nil
}

// queue creates the queue with attrs, or brings an existing queue's attrs
// to those values. It returns the queue URL.
func (p *Provisioner) queue(ctx context.Context, name string, attrs map[string]string) (string, error) {
	got, err := p.SQS.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: &name})
	var nf *sqstypes.QueueDoesNotExist
	switch {
	case err == nil:
		st, err := p.setQueueAttrs(ctx, *got.QueueUrl, attrs)
		if err != nil {
			return "", fmt.Errorf("queue %s: %w", name, err)
		}
		p.add("sqs-queue", name, *got.QueueUrl, st)
		return *got.QueueUrl, nil
	case !errors.As(err, &nf):
		return "", fmt.Errorf("get queue url %s: %w", name, err)
	}
	out, err := p.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: &name, Attributes: attrs})
	if err != nil {
		return "", fmt.Errorf("create queue %s: %w", name, err)
	}
	p.add("sqs-queue", name, *out.QueueUrl, Created)
	return *out.QueueUrl, nil
}

// setQueueAttrs sets the attrs that differ and says whether any did.
func (p *Provisioner) setQueueAttrs(ctx context.Context, url string, attrs map[string]string) (Status, error) {
	if len(attrs) == 0 {
		return Existed, nil
	}
	names := make([]sqstypes.QueueAttributeName, 0, len(attrs))
	for k := range attrs {
		names = append(names, sqstypes.QueueAttributeName(k))
	}
	cur, err := p.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: names})
	if err != nil {
		return "", err
	}
	diff := map[string]string{}
	for k, v := range attrs {
		if !sameAttr(cur.Attributes[k], v) {
			diff[k] = v
		}
	}
	if len(diff) == 0 {
		return Existed, nil
	}
	if _, err := p.SQS.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: &url, Attributes: diff}); err != nil {
		return "", err
	}
	return Updated, nil
}

// sameAttr compares attribute values, treating JSON documents (policies,
// redrive) as equal when they decode to the same value.
func sameAttr(a, b string) bool {
	if a == b {
		return true
	}
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xa, _ := json.Marshal(normaliseJSON(x))
	ya, _ := json.Marshal(normaliseJSON(y))
	return string(xa) == string(ya)
}

// normaliseJSON makes numbers and numeric strings compare equal (SQS echoes
// maxReceiveCount as a number or a string depending on the implementation).
func normaliseJSON(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = normaliseJSON(x)
		}
		return t
	case []any:
		for i, x := range t {
			t[i] = normaliseJSON(x)
		}
		return t
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	default:
		return v
	}
}

func (p *Provisioner) queueARN(ctx context.Context, url string) (string, error) {
	out, err := p.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: &url, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return "", fmt.Errorf("queue arn of %s: %w", url, err)
	}
	return out.Attributes[string(sqstypes.QueueAttributeNameQueueArn)], nil
}

// queuePolicy lets service (S3 or SNS) send to the queue, only from source.
func (p *Provisioner) queuePolicy(ctx context.Context, name, url, queueARN, service, sourceARN string) error {
	doc := policy(statement{
		Sid:       "AllowSendFrom" + strings.Split(service, ".")[0],
		Effect:    "Allow",
		Principal: map[string]string{"Service": service},
		Action:    "sqs:SendMessage",
		Resource:  queueARN,
		Condition: map[string]any{"ArnEquals": map[string]string{"aws:SourceArn": sourceARN}},
	})
	st, err := p.setQueueAttrs(ctx, url, map[string]string{"Policy": doc})
	if err != nil {
		return fmt.Errorf("queue policy of %s: %w", name, err)
	}
	p.add("sqs-queue-policy", name, "", st)
	return nil
}

func (p *Provisioner) topic(ctx context.Context, name string) (string, error) {
	arn, err := p.findTopic(ctx, name)
	if err != nil {
		return "", err
	}
	if arn != "" {
		p.add("sns-topic", name, arn, Existed)
		return arn, nil
	}
	out, err := p.SNS.CreateTopic(ctx, &sns.CreateTopicInput{Name: &name})
	if err != nil {
		return "", fmt.Errorf("create topic %s: %w", name, err)
	}
	p.add("sns-topic", name, *out.TopicArn, Created)
	return *out.TopicArn, nil
}

func (p *Provisioner) findTopic(ctx context.Context, name string) (string, error) {
	pg := sns.NewListTopicsPaginator(p.SNS, &sns.ListTopicsInput{})
	for pg.HasMorePages() {
		out, err := pg.NextPage(ctx)
		if err != nil {
			return "", fmt.Errorf("list topics: %w", err)
		}
		for _, t := range out.Topics {
			if arn := aws.ToString(t.TopicArn); strings.HasSuffix(arn, ":"+name) {
				return arn, nil
			}
		}
	}
	return "", nil
}

// topicPolicy lets service publish to the topic, only from source.
func (p *Provisioner) topicPolicy(ctx context.Context, topicARN, name, service, sourceARN string) error {
	doc := policy(statement{
		Sid:       "AllowPublishFrom" + strings.Split(service, ".")[0],
		Effect:    "Allow",
		Principal: map[string]string{"Service": service},
		Action:    "sns:Publish",
		Resource:  topicARN,
		Condition: map[string]any{"ArnLike": map[string]string{"aws:SourceArn": sourceARN}},
	})
	cur, err := p.SNS.GetTopicAttributes(ctx, &sns.GetTopicAttributesInput{TopicArn: &topicARN})
	if err != nil {
		return fmt.Errorf("topic attributes of %s: %w", name, err)
	}
	if sameAttr(cur.Attributes["Policy"], doc) {
		p.add("sns-topic-policy", name, "", Existed)
		return nil
	}
	if _, err := p.SNS.SetTopicAttributes(ctx, &sns.SetTopicAttributesInput{
		TopicArn: &topicARN, AttributeName: aws.String("Policy"), AttributeValue: &doc,
	}); err != nil {
		return fmt.Errorf("set policy of topic %s: %w", name, err)
	}
	p.add("sns-topic-policy", name, "", Updated)
	return nil
}

type alertSubscription struct {
	addr  string
	attrs map[string]string
}

// alertSubscriptions turns --alert-emails into one subscription per
// address: team=address gets that team's alerts (a filter policy on the
// team attribute qoslake publishes), an address named for several teams
// gets each of theirs, and a bare address gets every alert.
func alertSubscriptions(emails []string) []alertSubscription {
	teams := map[string][]string{} // nil: every alert
	var order []string
	for _, e := range emails {
		team, addr, scoped := strings.Cut(e, "=")
		if !scoped {
			addr = e
		}
		cur, seen := teams[addr]
		if !seen {
			order = append(order, addr)
		}
		switch {
		case !scoped:
			teams[addr] = nil
		case seen && cur == nil:
			// already every alert
		case !slices.Contains(cur, team):
			teams[addr] = append(cur, team)
		}
	}
	out := make([]alertSubscription, 0, len(order))
	for _, addr := range order {
		sub := alertSubscription{addr: addr}
		if ts := teams[addr]; ts != nil {
			slices.Sort(ts)
			b, _ := json.Marshal(map[string][]string{"team": ts})
			sub.attrs = map[string]string{"FilterPolicy": string(b)}
		}
		out = append(out, sub)
	}
	return out
}

// rawDelivery is the subscription attribute of raw message delivery.
func rawDelivery(raw bool) map[string]string {
	if !raw {
		return nil
	}
	return map[string]string{"RawMessageDelivery": "true"}
}

// subscribe subscribes the endpoint to the topic with the attributes
// (raw delivery, a filter policy), unless a subscription of it exists.
func (p *Provisioner) subscribe(ctx context.Context, topicARN, protocol, endpoint string, attrs map[string]string) error {
	name := protocol + ":" + endpoint
	pg := sns.NewListSubscriptionsByTopicPaginator(p.SNS, &sns.ListSubscriptionsByTopicInput{TopicArn: &topicARN})
	for pg.HasMorePages() {
		out, err := pg.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list subscriptions of %s: %w", topicARN, err)
		}
		for _, s := range out.Subscriptions {
			if aws.ToString(s.Protocol) == protocol && aws.ToString(s.Endpoint) == endpoint {
				return p.updateFilter(ctx, name, aws.ToString(s.SubscriptionArn), attrs["FilterPolicy"])
			}
		}
	}
	in := &sns.SubscribeInput{TopicArn: &topicARN, Protocol: &protocol, Endpoint: &endpoint, ReturnSubscriptionArn: true,
		Attributes: attrs}
	out, err := p.SNS.Subscribe(ctx, in)
	if err != nil {
		return fmt.Errorf("subscribe %s to %s: %w", name, topicARN, err)
	}
	p.add("sns-subscription", name, aws.ToString(out.SubscriptionArn), Created)
	return nil
}

// updateFilter brings an existing subscription's filter policy to the one
// configured (none: every message). A subscription still pending
// confirmation has no attributes to set yet; it keeps the policy it was
// created with.
func (p *Provisioner) updateFilter(ctx context.Context, name, arn, policy string) error {
	if arn == "" || arn == "PendingConfirmation" || arn == "pending confirmation" {
		p.add("sns-subscription", name, arn, Existed)
		return nil
	}
	cur, err := p.SNS.GetSubscriptionAttributes(ctx, &sns.GetSubscriptionAttributesInput{SubscriptionArn: &arn})
	if err != nil {
		return fmt.Errorf("attributes of subscription %s: %w", name, err)
	}
	if cur.Attributes["FilterPolicy"] == policy {
		p.add("sns-subscription", name, arn, Existed)
		return nil
	}
	if _, err := p.SNS.SetSubscriptionAttributes(ctx, &sns.SetSubscriptionAttributesInput{SubscriptionArn: &arn,
		AttributeName: aws.String("FilterPolicy"), AttributeValue: &policy}); err != nil {
		return fmt.Errorf("filter policy of subscription %s: %w", name, err)
	}
	p.add("sns-subscription", name, arn, Updated)
	return nil
}

func (p *Provisioner) notification(ctx context.Context, s Spec, queues []s3types.QueueConfiguration, topics []s3types.TopicConfiguration) error {
	cur, err := p.S3.GetBucketNotificationConfiguration(ctx, &s3.GetBucketNotificationConfigurationInput{Bucket: &s.CDNBucket})
	if err != nil {
		return fmt.Errorf("notification of bucket %s: %w", s.CDNBucket, err)
	}
	if sameTargets(cur, queues, topics) {
		p.add("s3-notification", s.CDNBucket, "", Existed)
		return nil
	}
	if _, err := p.S3.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket: &s.CDNBucket,
		NotificationConfiguration: &s3types.NotificationConfiguration{
			QueueConfigurations: queues,
			TopicConfigurations: topics,
		},
	}); err != nil {
		return fmt.Errorf("set notification of bucket %s: %w", s.CDNBucket, err)
	}
	st := Created
	if len(cur.QueueConfigurations)+len(cur.TopicConfigurations) > 0 {
		st = Updated
	}
	p.add("s3-notification", s.CDNBucket, "", st)
	return nil
}

func sameTargets(cur *s3.GetBucketNotificationConfigurationOutput, queues []s3types.QueueConfiguration, topics []s3types.TopicConfiguration) bool {
	if len(cur.QueueConfigurations) != len(queues) || len(cur.TopicConfigurations) != len(topics) {
		return false
	}
	for i, q := range queues {
		c := cur.QueueConfigurations[i]
		if aws.ToString(c.QueueArn) != aws.ToString(q.QueueArn) || filterPrefix(c.Filter) != filterPrefix(q.Filter) {
			return false
		}
	}
	for i, t := range topics {
		c := cur.TopicConfigurations[i]
		if aws.ToString(c.TopicArn) != aws.ToString(t.TopicArn) || filterPrefix(c.Filter) != filterPrefix(t.Filter) {
			return false
		}
	}
	return true
}

func prefixFilter(prefix string) *s3types.NotificationConfigurationFilter {
	if prefix == "" {
		return nil
	}
	return &s3types.NotificationConfigurationFilter{Key: &s3types.S3KeyFilter{
		FilterRules: []s3types.FilterRule{{Name: s3types.FilterRuleNamePrefix, Value: aws.String(prefix)}},
	}}
}

func filterPrefix(f *s3types.NotificationConfigurationFilter) string {
	if f == nil || f.Key == nil {
		return ""
	}
	for _, r := range f.Key.FilterRules {
		if strings.EqualFold(string(r.Name), "prefix") {
			return aws.ToString(r.Value)
		}
	}
	return ""
}

type statement struct {
	Sid       string
	Effect    string
	Principal map[string]string
	Action    string
	Resource  string
	Condition map[string]any
}

func policy(s statement) string {
	b, _ := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": []statement{s}})
	return string(b)
}
