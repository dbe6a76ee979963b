package main

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/glue"
)

// dropGlueNamespaces removes the bronze and silver Glue databases the
// pipeline creates, so runs on a long-lived emulator start clean.
func dropGlueNamespaces(t *testing.T, g *glue.Client) {
	t.Helper()
	ctx := context.Background()
	for _, db := range []string{"bronze", "silver"} {
		out, err := g.GetTables(ctx, &glue.GetTablesInput{DatabaseName: aws.String(db)})
		if err == nil {
			for _, tb := range out.TableList {
				_, _ = g.DeleteTable(ctx, &glue.DeleteTableInput{DatabaseName: aws.String(db), Name: tb.Name})
			}
		}
		_, _ = g.DeleteDatabase(ctx, &glue.DeleteDatabaseInput{Name: aws.String(db)})
	}
}

// The AWS deployment's shape, over the wire: the Glue catalog with the
// warehouse in S3. Provisioning creates the warehouse bucket; the pipeline
// lands simulated traffic in bronze and silver exactly.
func TestGlueCatalogAndS3Warehouse(t *testing.T) {
	s := newBareStack(t)
	s.env["QOSLAKE_CATALOG"] = "glue"
	s.env["QOSLAKE_WAREHOUSE"] = "s3://" + s.name("warehouse") + "/tables"
	dropGlueNamespaces(t, s.aws.Glue)
	t.Cleanup(func() { dropGlueNamespaces(t, s.aws.Glue) })

	out := s.mustRun("provision")
	for _, want := range []string{"s3-bucket         " + s.name("warehouse"), "created  iceberg-table     silver.player_events"} {
		if !strings.Contains(out, want) {
			t.Errorf("provision output lacks %q:\n%s", want, out)
		}
	}
	sum := s.simulate("--rate", "200", "--duration", "10s", "--seed", "51")
	s.mustRun("run", "--once")

	count := func(table string) int {
		t.Helper()
		out := s.mustRun("scan", table, "--limit", "0", "--format", "csv")
		return strings.Count(out, "\n") - 1 // the header
	}
	if got := count("bronze.player_events"); got != sum.EventsTotal {
		t.Errorf("bronze.player_events: %d rows, want %d", got, sum.EventsTotal)
	}
	if got := count("silver.cdn_logs"); got != sum.LogLines {
		t.Errorf("silver.cdn_logs: %d rows, want %d", got, sum.LogLines)
	}
	tables := s.mustRun("tables")
	if !strings.Contains(tables, "upstream:bronze.player_events=") {
		t.Errorf("checkpoints missing from the Glue tables:\n%s", tables)
	}
}
