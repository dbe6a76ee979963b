package lake

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// MaintainPolicy says how MaintainAll maintains each table.
type MaintainPolicy struct {
	// Options apply to every table. KeepFrom is filled in per table from
	// its consumers' checkpoints (what is set here is kept too).
	Options MaintainOptions
	// Retention, when set, says how long a table's rows are kept; 0 keeps
	// them forever. Rows older than Now minus it are deleted by the table's
	// time partition column (Table.TimeColumn): bronze, which holds raw
	// client IPs, has an age limit.
	Retention func(table string) time.Duration
	// Now is what retention counts back from; zero means time.Now().
	Now time.Time
}

// MaintainAll runs one maintenance pass over each of tables, in order, and
// returns one report per table. Before expiring snapshots of a table it
// reads the checkpoints of every table in the catalog (not only those
// given, so maintaining one table still respects all its consumers) and
// keeps each snapshot an "upstream:<table>" key names and every snapshot
// after it: a consumer never finds its position expired. When a
// checkpoint cannot be read, no table's snapshots are expired in this
// pass, since that consumer's needs are unknown.
//
// One table's failure does not stop the others: its report carries the
// error, and the errors are joined in the returned error.
func MaintainAll(ctx context.Context, tables []*Table, p MaintainPolicy) ([]MaintainReport, error) {
	if len(tables) == 0 {
		return nil, nil
	}
	if p.Now.IsZero() {
		p.Now = time.Now()
	}
	keep, keepErr := consumerPositions(ctx, tables)
	var errs []error
	if keepErr != nil {
		errs = append(errs, fmt.Errorf("read consumer checkpoints (no snapshots expired): %w", keepErr))
	}
	reps := make([]MaintainReport, 0, len(tables))
	for _, t := range tables {
		o := p.Options
		o.KeepFrom = append(append([]SnapshotPos(nil), o.KeepFrom...), keep[t.Name()]...)
		if keepErr != nil {
			// Expiry keeps the newest RetainLast snapshots whatever their age.
			o.RetainLast = math.MaxInt32
		}
		var rep MaintainReport
		err := func() error {
			if p.Retention == nil {
				return nil
			}
			d := p.Retention(t.Name())
			if d <= 0 {
				return nil
			}
			if o.RetentionColumn = t.TimeColumn(); o.RetentionColumn == "" {
				return fmt.Errorf("%s: a retention of %s needs a time partition column", t.Name(), d)
			}
			o.DeleteBefore = p.Now.Add(-d)
			return nil
		}()
		if err == nil {
			rep, err = t.Maintain(ctx, o)
		}
		rep.Table = t.Name()
		if err != nil {
			if ctx.Err() != nil {
				return append(reps, rep), errors.Join(append(errs, err)...)
			}
			rep.Error = err.Error()
			errs = append(errs, fmt.Errorf("maintain %s: %w", t.Name(), err))
			t.lake.log.Warn("table maintenance failed", "table", t.Name(), "error", err)
		}
		reps = append(reps, rep)
	}
	return reps, errors.Join(errs...)
}

// consumerPositions maps each upstream table name to the positions its
// consumers (the tables whose checkpoints hold "upstream:<name>") have
// read up to, over every table in the catalogs of tables.
func consumerPositions(ctx context.Context, tables []*Table) (map[string][]SnapshotPos, error) {
	handles := map[string]*Table{}
	lakes := []*Lake{}
	for _, t := range tables {
		handles[t.Name()] = t
		found := false
		for _, l := range lakes {
			found = found || l == t.lake
		}
		if !found {
			lakes = append(lakes, t.lake)
		}
	}
	var errs []error
	keep := map[string][]SnapshotPos{}
	for _, l := range lakes {
		names, err := l.List(ctx)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, n := range names {
			t := handles[n]
			if t == nil || t.lake != l {
				if t, err = l.Load(ctx, n); err != nil {
					errs = append(errs, err)
					continue
				}
			} else if _, err := t.Refresh(ctx); err != nil {
				errs = append(errs, err)
				continue
			}
			cp, err := t.Checkpoint()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", n, err))
				continue
			}
			for k, v := range cp {
				up, ok := strings.CutPrefix(k, UpstreamKey(""))
				if !ok || up == n {
					continue
				}
				pos, err := ParseSnapshotPos(v)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s checkpoint %s: %w", n, k, err))
					continue
				}
				keep[up] = append(keep[up], pos)
			}
		}
	}
	return keep, errors.Join(errs...)
}
