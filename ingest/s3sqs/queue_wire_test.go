package s3sqs_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/qoslake/qoslake/ingest/s3sqs"
	"github.com/qoslake/qoslake/internal/testenv"
)

func gzipped(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// A gzip object cut in half on S3 is corrupt: every byte of it arrives and
// it still does not decompress, so reading it again will not help.
func TestTruncatedGzipObjectIsCorrupt(t *testing.T) {
	c := testenv.AWS(t)
	bucket := testenv.Name("s3sqs")
	if _, err := c.S3.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	z := gzipped(t, strings.Repeat("2026-03-02\t18:00:00\tline\n", 5000))
	if _, err := c.S3.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("t.gz"), Body: bytes.NewReader(z[:len(z)/2])}); err != nil {
		t.Fatal(err)
	}
	q := &s3sqs.Queue{S3: c.S3}
	body, err := q.Open(t.Context(), s3sqs.Object{Bucket: bucket, Key: "t.gz"})
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	_, err = io.Copy(io.Discard, body)
	var corrupt *s3sqs.CorruptError
	if !errors.As(err, &corrupt) {
		t.Fatalf("read error %v, want a CorruptError", err)
	}
}

// A transfer the server cuts mid-body is no verdict on the object: the
// read error is the connection's, never a CorruptError. The server is a
// loopback HTTP server speaking S3's GetObject to the real SDK client.
func TestCutTransferIsNotCorrupt(t *testing.T) {
	z := gzipped(t, strings.Repeat("2026-03-02\t18:00:00\tline\n", 20000))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(z)))
		w.Header().Set("ETag", `"e"`)
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(z[:len(z)/3])
		w.(http.Flusher).Flush()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close() // cut: fewer bytes than Content-Length
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	cl := s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String("http://" + ln.Addr().String()), UsePathStyle: true,
		Credentials:      aws.AnonymousCredentials{},
		RetryMaxAttempts: 1,
	})
	q := &s3sqs.Queue{S3: cl}
	body, err := q.Open(t.Context(), s3sqs.Object{Bucket: "b", Key: "k.gz", ETag: "e"})
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	_, err = io.Copy(io.Discard, body)
	var corrupt *s3sqs.CorruptError
	if err == nil || errors.As(err, &corrupt) {
		t.Fatalf("read error %v, want the transfer's error, not a CorruptError", err)
	}
}

func TestRetryBackoffGrowsWithReceives(t *testing.T) {
	q := &s3sqs.Queue{}
	var got []string
	for _, n := range []int{1, 2, 3, 5, 30} {
		got = append(got, q.RetryAfter(n).String())
	}
	if want := "[30s 1m0s 2m0s 8m0s 12h0m0s]"; fmt.Sprint(got) != want {
		t.Errorf("backoff %v, want %s", got, want)
	}
}
