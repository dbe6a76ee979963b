package lake

import (
	"context"
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/iceberg-go/table"
)

// ErrSnapshotExpired means a pinned or starting snapshot is no longer in
// the table's history: the reader must start again from a fresh Pin (or,
// for Changes, from a full read).
var ErrSnapshotExpired = errors.New("snapshot not in the table's history (expired)")

// Pins are snapshot positions by table name, taken together by Pin.
type Pins map[string]SnapshotPos

// Pin reloads each table and returns its current snapshot, so that a
// dashboard rendering several gold tables, or a read-modify-write of some
// windows, reads every table as of one moment (ScanOptions.Snapshot =
// pins[t.Name()]) however many commits land while it reads. Iceberg has no
// transaction across tables: the tables are loaded one after the other,
// so the pins are as close together as those loads.
func Pin(ctx context.Context, tables ...*Table) (Pins, error) {
	pins := make(Pins, len(tables))
	for _, t := range tables {
		tbl, err := t.Refresh(ctx)
		if err != nil {
			return nil, err
		}
		pins[t.Name()] = positionOf(tbl)
	}
	return pins, nil
}

// Snapshot is the table's current snapshot as last loaded (Position under
// the name pinned reads use); zero for an empty table.
func (t *Table) Snapshot() SnapshotPos { return t.Position() }

// at returns the loaded table state that holds snapshot pos, reloading once
// when the handle is older than the pin (another handle took it).
func (t *Table) at(ctx context.Context, pos SnapshotPos) (*table.Table, error) {
	tbl := t.current()
	if tbl.SnapshotByID(pos.SnapshotID) != nil {
		return tbl, nil
	}
	tbl, err := t.Refresh(ctx)
	if err != nil {
		return nil, err
	}
	if tbl.SnapshotByID(pos.SnapshotID) == nil {
		return nil, fmt.Errorf("%s snapshot %d: %w", t.Name(), pos.SnapshotID, ErrSnapshotExpired)
	}
	return tbl, nil
}

func (t *Table) scanAt(ctx context.Context, o ScanOptions, fn func(arrow.RecordBatch) error) error {
	tbl, err := t.at(ctx, o.Snapshot)
	if err != nil {
		return err
	}
	if err := t.scan(ctx, tbl, o, []table.ScanOption{table.WithSnapshotID(o.Snapshot.SnapshotID)}, fn); err != nil {
		return fmt.Errorf("at snapshot %d: %w", o.Snapshot.SnapshotID, err)
	}
	return nil
}
