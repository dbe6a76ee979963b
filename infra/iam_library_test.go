package infra_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/iceberg-go"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"

	"github.com/qoslake/qoslake/awsclient"
	"github.com/qoslake/qoslake/internal/testenv"
	"github.com/qoslake/qoslake/lake"
)

// recorder notes every AWS operation made with a configuration.
type recorder struct {
	mu  sync.Mutex
	ops map[string]bool
}

func (r *recorder) middleware(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("qoslake-record",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			svc := strings.ToLower(strings.ReplaceAll(awsmiddleware.GetServiceID(ctx), " ", ""))
			r.mu.Lock()
			r.ops[svc+":"+awsmiddleware.GetOperationName(ctx)] = true
			r.mu.Unlock()
			return next.HandleInitialize(ctx, in)
		}), middleware.Before)
}

// The actions iceberg-go makes on qoslake's behalf (listed by hand in
// libraryActions) are checked against what it really calls: every table
// operation the pipeline uses, on the Glue catalog and an S3 warehouse,
// recorded at the SDK and mapped to IAM actions.
func TestLibraryActionsAreWhatIcebergCalls(t *testing.T) {
	c := testenv.AWS(t)
	rec := &recorder{ops: map[string]bool{}}
	cfg := c.Config.Copy()
	cfg.APIOptions = append(cfg.APIOptions, rec.middleware)
	bucket := testenv.Name("iam")
	if _, err := c.S3.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	l, err := lake.Open(ctx, lake.Options{Kind: lake.KindGlue, Warehouse: "s3://" + bucket + "/tables", AWS: &cfg, S3Endpoint: awsclient.S3Endpoint(cfg)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	def := lake.TableDef{
		Namespace: "ns_" + strings.ReplaceAll(bucket[len(bucket)-8:], "-", "_"), Name: "t",
		Columns:   []lake.Column{{Name: "id", Type: iceberg.PrimitiveTypes.String, Required: true}, {Name: "ts", Type: iceberg.PrimitiveTypes.TimestampTz, Required: true}},
		Partition: []lake.PartitionField{{Column: "ts", Transform: iceberg.DayTransform{}, Name: "day"}},
	}
	tbl, err := l.Ensure(ctx, def)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		r, _ := tbl.NewRows()
		r.String("id", fmt.Sprint(i))
		r.Time("ts", time.Now().Add(-time.Duration(i)*24*time.Hour))
		b := r.Batch()
		if _, err := tbl.Commit(ctx, lake.Batch{Records: []arrow.RecordBatch{b}, Advance: []lake.Position{{Key: "k", From: prev(i), To: fmt.Sprint(i + 1)}}}); err != nil {
			t.Fatal(err)
		}
		b.Release()
		r.Release()
	}
	if _, err := l.Ensure(ctx, def); err != nil { // load, as at every start
		t.Fatal(err)
	}
	if _, err := l.List(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tbl.ReadAppended(ctx, lake.SnapshotPos{}, lake.ReadOptions{}, func(arrow.RecordBatch) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := tbl.Maintain(ctx, lake.MaintainOptions{
		MinInputFiles: 2, ExpireOlderThan: time.Nanosecond, RetainLast: 1, OrphanOlderThan: time.Nanosecond,
		DeleteBefore: time.Now().Add(-72 * time.Hour), RetentionColumn: "ts",
	}); err != nil {
		t.Fatal(err)
	}

	var unlisted []string
	for op := range rec.ops {
		action := op
		if a, ok := actionFor[op]; ok {
			action = a
		}
		if _, ok := libraryActions[action]; !ok {
			unlisted = append(unlisted, op+" → "+action)
		}
	}
	slices.Sort(unlisted)
	if len(unlisted) > 0 {
		t.Errorf("iceberg-go called actions the task role's library list lacks: %v", unlisted)
	}
	// And the list holds nothing iceberg-go does not call, but for what no
	// test against the emulator can show.
	unseen := map[string]string{
		"s3:AbortMultipartUpload": "only after a failed multipart upload",
		"kms:Decrypt":             "S3 calls KMS itself for SSE-KMS buckets",
		"kms:GenerateDataKey":     "S3 calls KMS itself for SSE-KMS buckets",
	}
	seen := map[string]bool{}
	for op := range rec.ops {
		if a, ok := actionFor[op]; ok {
			op = a
		}
		seen[op] = true
	}
	for a := range libraryActions {
		if _, ok := unseen[a]; !ok && !seen[a] {
			t.Errorf("libraryActions lists %s, which iceberg-go never called here", a)
		}
	}
	t.Logf("operations seen: %v", slices.Sorted(func(yield func(string) bool) {
		for op := range rec.ops {
			if !yield(op) {
				return
			}
		}
	}))
}

func prev(i int) string {
	if i == 0 {
		return ""
	}
	return fmt.Sprint(i)
}
