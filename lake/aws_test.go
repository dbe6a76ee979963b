package lake_test

import (
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/qoslake/qoslake/awsclient"
	"github.com/qoslake/qoslake/internal/testenv"
	"github.com/qoslake/qoslake/lake"
)

// The same behaviour on the AWS backends, over the wire against the
// emulator: a warehouse on S3 with the SQLite catalog, and the Glue catalog.
func TestS3WarehouseAndGlueCatalog(t *testing.T) {
	c := testenv.AWS(t)
	for _, kind := range []string{lake.KindSQL, lake.KindGlue} {
		t.Run(kind, func(t *testing.T) {
			bucket := testenv.Name("wh")
			if _, err := c.S3.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
				t.Fatal(err)
			}
			opts := lake.Options{
				Kind:       kind,
				URI:        t.TempDir() + "/catalog.db",
				Warehouse:  "s3://" + bucket + "/tables",
				AWS:        &c.Config,
				S3Endpoint: awsclient.S3Endpoint(c.Config),
			}
			l, err := lake.Open(t.Context(), opts)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			def := eventsDef
			def.Namespace = "ns_" + bucket[len(bucket)-8:]
			tbl := ensure(t, l, def)
			commit(t, tbl, lake.Batch{
				Records: []arrow.RecordBatch{rows(t, tbl, "s3", 5)},
				Advance: []lake.Position{{Key: "k", To: "1"}},
			})
			l2, err := lake.Open(t.Context(), opts)
			if err != nil {
				t.Fatal(err)
			}
			defer l2.Close()
			again := ensure(t, l2, def)
			if got := ids(t, again); !slices.Equal(got, expectIDs("s3", 5)) {
				t.Errorf("ids = %v", got)
			}
			if cp, _ := again.Checkpoint(); cp["k"] != "1" {
				t.Errorf("checkpoint = %v", cp)
			}
			objs, err := c.S3.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: &bucket})
			if err != nil || len(objs.Contents) == 0 {
				t.Errorf("no objects in the warehouse bucket: %v", err)
			}
		})
	}
}
