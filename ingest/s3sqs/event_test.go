package s3sqs_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/qoslake/qoslake/ingest/s3sqs"
)

const s3Event = `{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","eventTime":"2026-03-02T18:05:00","s3":{"bucket":{"name":"logs"},"object":{"key":"cloudfront/E2.2026-03-02-18.ab+cd%2Fx.gz","size":120,"eTag":"\"0cc175b9c0f1b6a831c399e269772661\""}}},{"eventSource":"aws:s3","eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"logs"},"object":{"key":"gone.gz"}}},{"eventSource":"aws:s3","eventName":"ObjectCreated:CompleteMultipartUpload","s3":{"bucket":{"name":"logs"},"object":{"key":"b.gz","eTag":"abc"}}}]}`

func envelope(msg string) string {
	b, _ := json.Marshal(map[string]string{"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:1:t", "Message": msg})
	return string(b)
}

func TestParseBody(t *testing.T) {
	want := []s3sqs.Object{
		{Bucket: "logs", Key: "cloudfront/E2.2026-03-02-18.ab cd/x.gz", ETag: "0cc175b9c0f1b6a831c399e269772661", Size: 120},
		{Bucket: "logs", Key: "b.gz", ETag: "abc"},
	}
	for _, tc := range []struct {
		name, body string
		want       []s3sqs.Object
		err        bool
	}{
		{"direct", s3Event, want, false},
		{"sns envelope", envelope(s3Event), want, false},
		{"test event", `{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-03-02T18:00:00Z","Bucket":"logs"}`, nil, false},
		{"test event through sns", envelope(`{"Event":"s3:TestEvent"}`), nil, false},
		{"other source", `{"Records":[{"eventSource":"aws:dynamodb","eventName":"INSERT"}]}`, nil, false},
		{"not json", `hello`, nil, true},
		{"json but not an event", `{"hello":"world"}`, nil, true},
		{"bad key escape", `{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"%zz"}}}]}`, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s3sqs.ParseBody(tc.body)
			if (err != nil) != tc.err || (err != nil && !errors.Is(err, s3sqs.ErrNotAnEvent)) {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("object %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
	if r := want[0].Ref(); !strings.HasPrefix(r, "s3://logs/cloudfront/") || !strings.HasSuffix(r, "@0cc175b9c0f1b6a831c399e269772661") {
		t.Errorf("ref = %s", r)
	}
}
