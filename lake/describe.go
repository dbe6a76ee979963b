package lake

import (
	"strconv"
	"time"
)

// Description is what `qoslake tables` shows for a table.
type Description struct {
	Name       string     `json:"name"`
	Location   string     `json:"location"`
	Rows       int64      `json:"rows"`
	DataFiles  int64      `json:"data_files"`
	Snapshots  int        `json:"snapshots"`
	LastCommit time.Time  `json:"last_commit,omitzero"`
	Checkpoint Checkpoint `json:"checkpoint,omitempty"`
}

// Describe summarises the table as last loaded.
func (t *Table) Describe() (Description, error) {
	tbl := t.current()
	d := Description{
		Name:      t.Name(),
		Location:  tbl.Location(),
		Snapshots: len(tbl.Metadata().Snapshots()),
	}
	if s := tbl.CurrentSnapshot(); s != nil {
		d.LastCommit = time.UnixMilli(s.TimestampMs).UTC()
		if s.Summary != nil {
			// Counters for display; a missing one shows as 0.
			d.Rows, _ = strconv.ParseInt(s.Summary.Properties["total-records"], 10, 64)
			d.DataFiles, _ = strconv.ParseInt(s.Summary.Properties["total-data-files"], 10, 64)
		}
	}
	cp, err := checkpointOf(tbl)
	if err != nil {
		return d, err
	}
	d.Checkpoint = cp
	return d, nil
}
