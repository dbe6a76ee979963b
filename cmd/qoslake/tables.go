package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go"

	"github.com/qoslake/qoslake/config"
	"github.com/qoslake/qoslake/lake"
)

func tablesCommand() *command {
	var asJSON bool
	return &command{
		name:    "tables",
		summary: "list tables with row counts, snapshots, last commit and checkpoints",
		groups:  []config.Group{config.Core, config.Tables},
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&asJSON, "json", false, "print one JSON object per table")
		},
		run: func(ctx context.Context, m *Main, fs *flag.FlagSet) error {
			l, err := m.Lake(ctx)
			if err != nil {
				return err
			}
			names, err := l.List(ctx)
			if err != nil {
				return err
			}
			slices.Sort(names)
			var descs []lake.Description
			for _, n := range names {
				t, err := l.Load(ctx, n)
				if err != nil {
					return err
				}
				d, err := t.Describe()
				if err != nil {
					return err
				}
				descs = append(descs, d)
			}
			if asJSON {
				enc := json.NewEncoder(m.Stdout)
				for _, d := range descs {
					if err := enc.Encode(d); err != nil {
						return err
					}
				}
				return nil
			}
			w := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "TABLE\tROWS\tFILES\tSNAPSHOTS\tLAST COMMIT\tCHECKPOINT")
			for _, d := range descs {
				last := "-"
				if !d.LastCommit.IsZero() {
					last = d.LastCommit.Format(time.RFC3339)
				}
				fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%s\t%s\n", d.Name, d.Rows, d.DataFiles, d.Snapshots, last, formatCheckpoint(d.Checkpoint))
			}
			return w.Flush()
		},
	}
}

func formatCheckpoint(cp lake.Checkpoint) string {
	if len(cp) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(cp))
	for _, k := range sortedKeys(cp) {
		parts = append(parts, k+"="+cp[k])
	}
	return strings.Join(parts, " ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// whereFlags collects repeated --where col=value filters.
type whereFlags []string

func (w *whereFlags) String() string     { return strings.Join(*w, ",") }
func (w *whereFlags) Set(s string) error { *w = append(*w, s); return nil }

func scanCommand() *command {
	var (
		where  whereFlags
		since  time.Duration
		limit  int64
		format string
	)
	return &command{
		name:    "scan",
		args:    "TABLE",
		summary: "print a table's rows, filtered",
		help: `TABLE is namespace.name, for example bronze.player_events.
--where col=value (repeatable) keeps rows whose column equals the value;
--since 1h keeps rows whose time partition column (event_time, log_time,
...) is within the last hour. --format json prints one object per line.`,
		groups: []config.Group{config.Core, config.Tables},
		flags: func(fs *flag.FlagSet) {
			fs.Var(&where, "where", "col=value filter (repeatable)")
			fs.DurationVar(&since, "since", 0, "only rows newer than this, by the table's time column")
			fs.Int64Var(&limit, "limit", 100, "at most this many rows (0: all)")
			fs.StringVar(&format, "format", "table", "table, json or csv")
		},
		run: func(ctx context.Context, m *Main, fs *flag.FlagSet) error {
			if fs.NArg() != 1 {
				return fmt.Errorf("%w: scan takes one table name", errUsage)
			}
			if format != "table" && format != "json" && format != "csv" {
				return fmt.Errorf("%w: --format %q is not table, json or csv", errUsage, format)
			}
			if limit < 0 {
				return fmt.Errorf("%w: --limit must not be negative", errUsage)
			}
			l, err := m.Lake(ctx)
			if err != nil {
				return err
			}
			t, err := l.Load(ctx, fs.Arg(0))
			if err != nil {
				return err
			}
			var filters []iceberg.BooleanExpression
			var matches []func(arrow.RecordBatch, int) bool
			for _, w := range where {
				col, val, ok := strings.Cut(w, "=")
				if !ok {
					return fmt.Errorf("%w: --where %q is not col=value", errUsage, w)
				}
				f, err := t.Where(col, val)
				if err != nil {
					return fmt.Errorf("%w: --where: %v", errUsage, err)
				}
				if f.Filter != nil {
					filters = append(filters, f.Filter)
				}
				if f.Match != nil {
					matches = append(matches, f.Match)
				}
			}
			if since > 0 {
				f, err := t.Since(since, time.Now())
				if err != nil {
					return fmt.Errorf("%w: --since: %v", errUsage, err)
				}
				filters = append(filters, f)
			}
			out := newRowWriter(m.Stdout, format)
			var n int64
			err = t.Scan(ctx, lake.ScanOptions{Filter: lake.And(filters...)}, func(r arrow.RecordBatch) error {
			rows:
				for i := range int(r.NumRows()) {
					for _, match := range matches {
						if !match(r, i) {
							continue rows
						}
					}
					if limit > 0 && n >= limit {
						return errLimit
					}
					if err := out.write(r, i); err != nil {
						return err
					}
					n++
				}
				return nil
			})
			if err != nil && err != errLimit {
				return err
			}
			return out.flush()
		},
	}
}

var errLimit = fmt.Errorf("limit reached")

// rowWriter prints Arrow rows as an aligned table, JSON lines or CSV.
type rowWriter struct {
	format string
	tw     *tabwriter.Writer
	csv    *csv.Writer
	json   *json.Encoder
	header bool
}

func newRowWriter(w io.Writer, format string) *rowWriter {
	rw := &rowWriter{format: format}
	switch format {
	case "json":
		rw.json = json.NewEncoder(w)
	case "csv":
		rw.csv = csv.NewWriter(w)
	default:
		rw.tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	}
	return rw
}

func (rw *rowWriter) write(r arrow.RecordBatch, i int) error {
	sc := r.Schema()
	switch rw.format {
	case "json":
		obj := make(map[string]any, sc.NumFields())
		for c, f := range sc.Fields() {
			obj[f.Name] = jsonValue(r.Column(c), i)
		}
		return rw.json.Encode(obj)
	case "csv":
		if !rw.header {
			rw.header = true
			if err := rw.csv.Write(fieldNames(sc)); err != nil {
				return err
			}
		}
		rec := make([]string, sc.NumFields())
		for c := range rec {
			rec[c] = textValue(r.Column(c), i)
		}
		return rw.csv.Write(rec)
	default:
		if !rw.header {
			rw.header = true
			fmt.Fprintln(rw.tw, strings.ToUpper(strings.Join(fieldNames(sc), "\t")))
		}
		rec := make([]string, sc.NumFields())
		for c := range rec {
			v := textValue(r.Column(c), i)
			if len(v) > 80 {
				v = v[:77] + "..."
			}
			rec[c] = strings.NewReplacer("\t", " ", "\n", " ").Replace(v)
		}
		_, err := fmt.Fprintln(rw.tw, strings.Join(rec, "\t"))
		return err
	}
}

func (rw *rowWriter) flush() error {
	switch rw.format {
	case "csv":
		rw.csv.Flush()
		return rw.csv.Error()
	case "table":
		return rw.tw.Flush()
	}
	return nil
}

func fieldNames(sc *arrow.Schema) []string {
	out := make([]string, sc.NumFields())
	for i, f := range sc.Fields() {
		out[i] = f.Name
	}
	return out
}

func textValue(a arrow.Array, i int) string {
	if a.IsNull(i) {
		return ""
	}
	switch col := a.(type) {
	case *array.Timestamp:
		unit := col.DataType().(*arrow.TimestampType).Unit
		return col.Value(i).ToTime(unit).UTC().Format(time.RFC3339Nano)
	case *array.Binary:
		return fmt.Sprintf("%q", col.Value(i))
	}
	return a.ValueStr(i)
}

func jsonValue(a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch col := a.(type) {
	case *array.Timestamp:
		unit := col.DataType().(*arrow.TimestampType).Unit
		return col.Value(i).ToTime(unit).UTC().Format(time.RFC3339Nano)
	case *array.Binary:
		return string(col.Value(i))
	}
	return a.GetOneForMarshal(i)
}
