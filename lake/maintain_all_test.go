package lake_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/iceberg-go"

	"github.com/qoslake/qoslake/lake"
)

// MaintainAll keeps what consumers in other tables still need (even
// consumers it was not asked to maintain), applies retention by policy,
// and a table that fails does not stop the others.
func TestMaintainAllKeepsConsumersAndIsolatesFailures(t *testing.T) {
	l := openLake(t, t.TempDir())
	upstream := ensure(t, l, eventsDef)
	var positions []lake.SnapshotPos
	for i := range 6 {
		commit(t, upstream, lake.Batch{Records: []arrow.RecordBatch{rows(t, upstream, fmt.Sprint("s", i), 2)}})
		positions = append(positions, upstream.Snapshot())
	}
	// The consumer has read the first three snapshots of upstream.
	derivedDef := eventsDef
	derivedDef.Name = "derived"
	derived := ensure(t, l, derivedDef)
	commit(t, derived, lake.Batch{Advance: []lake.Position{{Key: lake.UpstreamKey(upstream.Name()), To: positions[2].String()}}})

	// No time column: asking it for retention fails.
	badDef := lake.TableDef{Namespace: "test", Name: "untimed", Columns: []lake.Column{{Name: "id", Type: iceberg.PrimitiveTypes.String, Required: true}}}
	bad := ensure(t, l, badDef)

	rawDef := eventsDef
	rawDef.Name = "raw"
	raw := ensure(t, l, rawDef)
	commit(t, raw, lake.Batch{Records: []arrow.RecordBatch{rows(t, raw, "r", 4)}})

	policy := lake.MaintainPolicy{
		Options: lake.MaintainOptions{MinInputFiles: 1000, ExpireOlderThan: time.Nanosecond, RetainLast: 1},
		Retention: func(name string) time.Duration {
			if name == bad.Name() || name == raw.Name() {
				return 24 * time.Hour
			}
			return 0
		},
		Now: time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC),
	}
	reps, err := lake.MaintainAll(t.Context(), []*lake.Table{bad, upstream, raw}, policy)
	if err == nil || !strings.Contains(err.Error(), bad.Name()) {
		t.Errorf("err = %v, want the untimed table's failure", err)
	}
	var names []string
	for _, r := range reps {
		names = append(names, r.Table)
	}
	if !slices.Equal(names, []string{bad.Name(), upstream.Name(), raw.Name()}) {
		t.Fatalf("reports for %v", names)
	}
	if reps[0].Error == "" || reps[1].Error != "" || reps[2].Error != "" {
		t.Errorf("report errors = %q, %q, %q; want only the first", reps[0].Error, reps[1].Error, reps[2].Error)
	}

	// Upstream kept the consumer's snapshot and the three after it, no more.
	if reps[1].SnapshotsExpired != 2 || upstream.Iceberg().SnapshotByID(positions[2].SnapshotID) == nil {
		t.Errorf("upstream expired %d snapshots (consumer's kept: %v); want the 2 before the consumer's",
			reps[1].SnapshotsExpired, upstream.Iceberg().SnapshotByID(positions[2].SnapshotID) != nil)
	}
	got, inc := readAppended(t, upstream, positions[2])
	if inc.Replayed || len(got) != 6 {
		t.Errorf("consumer read %d rows (replayed %v), want the 6 of the last three snapshots", len(got), inc.Replayed)
	}
	// raw's rows before 2026-03-03 (the play rows of 2026-03-02) are gone.
	if got := ids(t, raw); !slices.Equal(got, filterIDs(expectIDs("r", 4), isStop)) || reps[2].DeletedRowsBefore.IsZero() {
		t.Errorf("raw after retention = %v (report %+v)", got, reps[2])
	}
}

// When a consumer's checkpoint cannot be read, nothing is expired: its
// needs are unknown.
func TestMaintainAllHoldsExpiryWhenACheckpointIsUnreadable(t *testing.T) {
	l := openLake(t, t.TempDir())
	upstream := ensure(t, l, eventsDef)
	for i := range 4 {
		commit(t, upstream, lake.Batch{Records: []arrow.RecordBatch{rows(t, upstream, fmt.Sprint("s", i), 2)}})
	}
	derivedDef := eventsDef
	derivedDef.Name = "derived"
	derived := ensure(t, l, derivedDef)
	commit(t, derived, lake.Batch{Advance: []lake.Position{{Key: lake.UpstreamKey(upstream.Name()), To: "garbled"}}})

	reps, err := lake.MaintainAll(t.Context(), []*lake.Table{upstream}, lake.MaintainPolicy{
		Options: lake.MaintainOptions{MinInputFiles: 1000, ExpireOlderThan: time.Nanosecond, RetainLast: 1},
	})
	if err == nil || !strings.Contains(err.Error(), "garbled") {
		t.Errorf("err = %v, want the unreadable checkpoint named", err)
	}
	if len(reps) != 1 || reps[0].SnapshotsExpired != 0 || reps[0].Error != "" {
		t.Errorf("reports = %+v, want upstream maintained with nothing expired", reps)
	}
}
