#!/usr/bin/env bash
# Creates qoslake's AWS resources on LocalStack when it is ready: the same
# names and settings as `qoslake provision` and infra/qoslake.yaml.
# LocalStack runs this from /etc/localstack/init/ready.d with awslocal.
# Elsewhere set AWSLOCAL (for example to "aws" with AWS_ENDPOINT_URL set);
# running it twice changes nothing.
set -euo pipefail

aws_=${AWSLOCAL:-awslocal}
command -v "${aws_%% *}" >/dev/null 2>&1 || aws_=aws
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-${AWS_REGION:-us-east-1}}
prefix=${QOSLAKE_PREFIX:-qoslake}
shards=${QOSLAKE_STREAM_SHARDS:-2}
log_prefix=${QOSLAKE_CDN_LOG_PREFIX:-cloudfront/}
max_receives=${QOSLAKE_QUEUE_MAX_RECEIVES:-5}
visibility=${QOSLAKE_QUEUE_VISIBILITY_SECONDS:-300}
alert_emails=${QOSLAKE_ALERT_EMAILS:-}

stream=$prefix-player-events
realtime_stream=$prefix-cdn-realtime-logs
bucket=$prefix-cdn-logs
queue=$prefix-cdn-log-events
dlq=$queue-dlq
events_topic=$prefix-cdn-log-events
alerts_topic=$prefix-alerts
updates_topic=$prefix-updates
updates_queue=$prefix-updates-example

# Some AWS CLI v1 service clients ignore AWS_ENDPOINT_URL: pass it explicitly.
a() { $aws_ ${AWS_ENDPOINT_URL:+--endpoint-url "$AWS_ENDPOINT_URL"} "$@"; }
say() { echo "qoslake init: $*"; }

# Kinesis streams: player events, CloudFront real-time logs
for s in "$stream" "$realtime_stream"; do
	if a kinesis describe-stream-summary --stream-name "$s" >/dev/null 2>&1; then
		say "exists  kinesis-stream $s"
		continue
	fi
	a kinesis create-stream --stream-name "$s" --shard-count "$shards"
	for _ in $(seq 1 60); do
		status=$(a kinesis describe-stream-summary --stream-name "$s" --query StreamDescriptionSummary.StreamStatus --output text)
		[ "$status" = ACTIVE ] && break
		sleep 0.5
	done
	say "created kinesis-stream $s"
done

# CDN log bucket
if a s3api head-bucket --bucket "$bucket" >/dev/null 2>&1; then
	say "exists  s3-bucket $bucket"
else
	if [ "$AWS_DEFAULT_REGION" = us-east-1 ]; then
		a s3api create-bucket --bucket "$bucket" >/dev/null
	else
		a s3api create-bucket --bucket "$bucket" --create-bucket-configuration "LocationConstraint=$AWS_DEFAULT_REGION" >/dev/null
	fi
	say "created s3-bucket $bucket"
fi

# Queues: the dead-letter queue, then the event queue with its redrive policy
a sqs create-queue --queue-name "$dlq" --attributes MessageRetentionPeriod=1209600 >/dev/null
dlq_url=$(a sqs get-queue-url --queue-name "$dlq" --query QueueUrl --output text)
dlq_arn=$(a sqs get-queue-attributes --queue-url "$dlq_url" --attribute-names QueueArn --query Attributes.QueueArn --output text)
redrive="{\"deadLetterTargetArn\":\"$dlq_arn\",\"maxReceiveCount\":\"$max_receives\"}"
a sqs create-queue --queue-name "$queue" >/dev/null
queue_url=$(a sqs get-queue-url --queue-name "$queue" --query QueueUrl --output text)
queue_arn=$(a sqs get-queue-attributes --queue-url "$queue_url" --attribute-names QueueArn --query Attributes.QueueArn --output text)
attrs=$(python3 -c 'import json,sys; print(json.dumps({"RedrivePolicy": sys.argv[1], "VisibilityTimeout": sys.argv[2], "ReceiveMessageWaitTimeSeconds": "20", "MessageRetentionPeriod": "345600"}))' "$redrive" "$visibility")
a sqs set-queue-attributes --queue-url "$queue_url" --attributes "$attrs"
say "ready   sqs-queue $queue (dead letters to $dlq after $max_receives receives)"

# S3 events → SNS topic → queue (raw delivery)
topic_arn=$(a sns create-topic --name "$events_topic" --query TopicArn --output text)
topic_policy=$(python3 -c 'import json,sys; print(json.dumps({"Version":"2012-10-17","Statement":[{"Sid":"AllowPublishFroms3","Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Action":"sns:Publish","Resource":sys.argv[1],"Condition":{"ArnLike":{"aws:SourceArn":"arn:aws:s3:::"+sys.argv[2]}}}]}))' "$topic_arn" "$bucket")
a sns set-topic-attributes --topic-arn "$topic_arn" --attribute-name Policy --attribute-value "$topic_policy"
queue_policy=$(python3 -c 'import json,sys; print(json.dumps({"Policy": json.dumps({"Version":"2012-10-17","Statement":[{"Sid":"AllowSendFromsns","Effect":"Allow","Principal":{"Service":"sns.amazonaws.com"},"Action":"sqs:SendMessage","Resource":sys.argv[1],"Condition":{"ArnEquals":{"aws:SourceArn":sys.argv[2]}}}]})}))' "$queue_arn" "$topic_arn")
a sqs set-queue-attributes --queue-url "$queue_url" --attributes "$queue_policy"
subscribe() { # topic protocol endpoint raw
	if a sns list-subscriptions-by-topic --topic-arn "$1" --query "Subscriptions[?Endpoint=='$3'].SubscriptionArn" --output text | grep -q .; then
		say "exists  sns-subscription $2:$3"
		return
	fi
	if [ "$4" = raw ]; then
		a sns subscribe --topic-arn "$1" --protocol "$2" --notification-endpoint "$3" --attributes RawMessageDelivery=true >/dev/null
	else
		a sns subscribe --topic-arn "$1" --protocol "$2" --notification-endpoint "$3" >/dev/null
	fi
	say "created sns-subscription $2:$3"
}
subscribe "$topic_arn" sqs "$queue_arn" raw
notification=$(python3 -c 'import json,sys; print(json.dumps({"TopicConfigurations":[{"Id":"qoslake-cdn-logs","TopicArn":sys.argv[1],"Events":["s3:ObjectCreated:*"],"Filter":{"Key":{"FilterRules":[{"Name":"prefix","Value":sys.argv[2]}]}}}]}))' "$topic_arn" "$log_prefix")
a s3api put-bucket-notification-configuration --bucket "$bucket" --notification-configuration "$notification"
say "ready   s3-notification $bucket ($log_prefix*) -> $events_topic -> $queue"

# Alerts topic with email subscriptions
alerts_arn=$(a sns create-topic --name "$alerts_topic" --query TopicArn --output text)
IFS=, read -ra emails <<<"$alert_emails"
for e in "${emails[@]}"; do
	[ -n "$e" ] && subscribe "$alerts_arn" email "$e" envelope
done
say "ready   sns-topic $alerts_topic"

# Updates topic with the example subscriber queue
updates_arn=$(a sns create-topic --name "$updates_topic" --query TopicArn --output text)
a sqs create-queue --queue-name "$updates_queue" >/dev/null
uq_url=$(a sqs get-queue-url --queue-name "$updates_queue" --query QueueUrl --output text)
uq_arn=$(a sqs get-queue-attributes --queue-url "$uq_url" --attribute-names QueueArn --query Attributes.QueueArn --output text)
uq_policy=$(python3 -c 'import json,sys; print(json.dumps({"Policy": json.dumps({"Version":"2012-10-17","Statement":[{"Sid":"AllowSendFromsns","Effect":"Allow","Principal":{"Service":"sns.amazonaws.com"},"Action":"sqs:SendMessage","Resource":sys.argv[1],"Condition":{"ArnEquals":{"aws:SourceArn":sys.argv[2]}}}]})}))' "$uq_arn" "$updates_arn")
a sqs set-queue-attributes --queue-url "$uq_url" --attributes "$uq_policy"
subscribe "$updates_arn" sqs "$uq_arn" raw
say "ready   sns-topic $updates_topic -> $updates_queue"
say "done"
