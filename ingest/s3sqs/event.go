// Package s3sqs discovers CDN log objects through S3 event notifications
// on SQS — delivered directly, wrapped in an SNS envelope, or raw through
// SNS — and streams the objects. It owns the message lifecycle (receive,
// extend visibility, delete, release) but not what is done with the
// objects: a message is deleted only when the caller says its objects are
// committed.
package s3sqs

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Object is an S3 object named by an event.
type Object struct {
	Bucket string
	Key    string // decoded
	ETag   string // without quotes
	Size   int64
}

// Ref is the object's identity in bronze: s3://bucket/key@etag.
func (o Object) Ref() string { return "s3://" + o.Bucket + "/" + o.Key + "@" + o.ETag }

type s3Event struct {
	Event   string `json:"Event"` // "s3:TestEvent"
	Records []struct {
		EventSource string `json:"eventSource"`
		EventName   string `json:"eventName"`
		S3          struct {
			Bucket struct {
				Name string `json:"name"`
			} `json:"bucket"`
			Object struct {
				Key  string `json:"key"`
				Size int64  `json:"size"`
				ETag string `json:"eTag"`
			} `json:"object"`
		} `json:"s3"`
	} `json:"Records"`
}

type snsEnvelope struct {
	Type     string `json:"Type"`
	Message  string `json:"Message"`
	TopicArn string `json:"TopicArn"`
}

// ErrNotAnEvent means a message body is neither an S3 event nor an SNS
// notification carrying one.
var ErrNotAnEvent = errors.New("not an S3 event notification")

// ParseBody returns the created objects a message names. Test events,
// removal events and other event sources name none.
func ParseBody(body string) ([]Object, error) {
	var env snsEnvelope
	if err := json.Unmarshal([]byte(body), &env); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotAnEvent, err)
	}
	if env.Type == "Notification" && env.Message != "" {
		body = env.Message
	}
	var ev s3Event
	if err := json.Unmarshal([]byte(body), &ev); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotAnEvent, err)
	}
	if ev.Event == "s3:TestEvent" {
		return nil, nil
	}
	if ev.Records == nil {
		return nil, fmt.Errorf("%w: no Records", ErrNotAnEvent)
	}
	var out []Object
	for _, r := range ev.Records {
		if r.EventSource != "" && r.EventSource != "aws:s3" {
			continue
		}
		if !strings.HasPrefix(r.EventName, "ObjectCreated") && !strings.HasPrefix(r.EventName, "s3:ObjectCreated") {
			continue
		}
		// Keys in events are URL-encoded, with "+" for a space.
		key, err := url.QueryUnescape(r.S3.Object.Key)
		if err != nil {
			return nil, fmt.Errorf("%w: key %q: %v", ErrNotAnEvent, r.S3.Object.Key, err)
		}
		out = append(out, Object{
			Bucket: r.S3.Bucket.Name,
			Key:    key,
			ETag:   strings.Trim(r.S3.Object.ETag, `"`),
			Size:   r.S3.Object.Size,
		})
	}
	return out, nil
}
