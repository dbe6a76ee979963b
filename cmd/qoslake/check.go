package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/qoslake/qoslake/bronze"
	"github.com/qoslake/qoslake/config"
	"github.com/qoslake/qoslake/ingest/cloudfront"
	"github.com/qoslake/qoslake/ingest/playerevent"
	"github.com/qoslake/qoslake/lake"
	"github.com/qoslake/qoslake/silver"
)

// errSomeRejected makes check exit 1 after printing everything.
var errSomeRejected = errors.New("some input was rejected")

func checkCommand() *command {
	var kind string
	return &command{
		name:    "check",
		args:    "FILE",
		summary: "run a local file through parsing and the silver transform, no AWS needed",
		help: `Reads player events (JSON lines, or one JSON array per line), a CloudFront
standard log (plain or gzip) or CloudFront real-time log records (one per
line, read by --realtime-log-fields), runs them through the bronze checks
and the silver transform, and prints the silver rows as JSON lines on
standard output, rejects with their reasons on standard error, and a
one-line summary. The kind is detected, or given with
--type player|cdn|realtime.

Exit status: 0 when every input was accepted, 1 when some were rejected,
2 on a usage or configuration error.`,
		groups: []config.Group{config.Core, config.Realtime, config.Silver},
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&kind, "type", "auto", "auto, player, cdn or realtime")
		},
		run: func(ctx context.Context, m *Main, fs *flag.FlagSet) error {
			if fs.NArg() != 1 {
				return fmt.Errorf("%w: check takes one file", errUsage)
			}
			if kind != "auto" && kind != "player" && kind != "cdn" && kind != "realtime" {
				return fmt.Errorf("%w: --type %q is not auto, player, cdn or realtime", errUsage, kind)
			}
			t, _, err := m.Transformer(ctx)
			if err != nil {
				return fmt.Errorf("%w: %v", errUsage, err)
			}
			f, err := os.Open(fs.Arg(0))
			if err != nil {
				return fmt.Errorf("%w: %v", errUsage, err)
			}
			defer f.Close()
			in, err := decompress(f)
			if err != nil {
				return fmt.Errorf("%w: %s: %v", errUsage, fs.Arg(0), err)
			}
			if kind == "auto" {
				kind = detect(in)
			}
			c := &checker{t: t, out: json.NewEncoder(m.Stdout), errs: m.Stderr, name: filepath.Base(fs.Arg(0))}
			switch kind {
			case "realtime":
				err = c.realtime(in, m)
			case "cdn":
				err = c.cdn(in)
			default:
				err = c.player(in)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(m.Stderr, "%s: %s input, %d rows, %d rejected, %d values left empty\n", c.name, kind, c.rows, c.rejects, c.problems)
			if c.rejects > 0 {
				return errSomeRejected
			}
			return nil
		},
	}
}

func decompress(f io.Reader) (*bufio.Reader, error) {
	br := bufio.NewReaderSize(f, 64<<10)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, err
		}
		return bufio.NewReaderSize(zr, 64<<10), nil
	}
	return br, nil
}

// detect says cdn for "#Version"/"#Fields" headers, realtime for a first
// value of epoch seconds before a tab, player otherwise.
func detect(br *bufio.Reader) string {
	head, _ := br.Peek(64)
	if bytes.HasPrefix(head, []byte("#Version")) || bytes.HasPrefix(head, []byte("#Fields")) {
		return "cdn"
	}
	if first, _, ok := bytes.Cut(head, []byte("\t")); ok {
		if _, err := cloudfront.EpochTime(string(first)); err == nil {
			return "realtime"
		}
	}
	return "player"
}

type checker struct {
	t                       *silver.Transformer
	out                     *json.Encoder
	errs                    io.Writer
	name                    string
	rows, rejects, problems int
}

func (c *checker) reject(where, reason, detail string) {
	c.rejects++
	fmt.Fprintf(c.errs, "%s:%s: rejected: %s: %s\n", c.name, where, reason, detail)
}

func (c *checker) problem(where string, probs []silver.Problem) {
	for _, p := range probs {
		c.problems++
		fmt.Fprintf(c.errs, "%s:%s: %s left empty: %s\n", c.name, where, p.Field, p.Detail)
	}
}

// player runs each line through bronze's parser and silver's typing: the
// same calls `run` makes.
func (c *checker) player(r *bufio.Reader) error {
	rows, err := lake.NewRowsFor(silver.PlayerEventsTable)
	if err != nil {
		return err
	}
	defer rows.Release()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), playerevent.DefaultLimits.MaxRecordBytes+1)
	line := 0
	now := time.Now().UTC()
	for sc.Scan() {
		line++
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		where := fmt.Sprint(line)
		events, rejects := playerevent.Parse(sc.Bytes(), now, playerevent.DefaultLimits)
		for _, rj := range rejects {
			w := where
			if rj.Index >= 0 {
				w += fmt.Sprintf("[%d]", rj.Index)
			}
			c.reject(w, rj.Reason, rj.Detail)
		}
		for _, e := range events {
			row, probs := c.t.PlayerRowOf(e.Payload, e.Type, e.Time)
			row.IngestTime = now
			c.problem(where, probs)
			silver.AppendPlayer(rows, &row)
			c.rows++
		}
	}
	if err := sc.Err(); err != nil {
		c.reject(fmt.Sprint(line+1), playerevent.ReasonOversized, err.Error())
	}
	return c.print(rows)
}

// cdn runs the log through bronze's line verdicts and silver's typing.
func (c *checker) cdn(r *bufio.Reader) error {
	rows, err := lake.NewRowsFor(silver.CDNLogsTable)
	if err != nil {
		return err
	}
	defer rows.Release()
	var fields []string
	now := time.Now().UTC()
	err = bronze.ScanCDN(r, 64<<10, bronze.CDNVisitor{
		Line: func(l cloudfront.Line) error {
			var row silver.CDNRow
			var probs []silver.Problem
			row, probs, fields = c.t.CDNRowOf(l.Header, l.Header.Raw, l.Text, l.Time, fields)
			row.LineNumber, row.IngestTime = l.Number, now
			c.problem(fmt.Sprint(l.Number), probs)
			silver.AppendCDN(rows, &row)
			c.rows++
			return nil
		},
		Reject: func(line int64, reason, detail string, _ []byte) error {
			where := fmt.Sprint(line)
			if line == math.MaxInt64 {
				where = "file"
			}
			c.reject(where, reason, detail)
			return nil
		},
	})
	if err != nil {
		// A local file that fails to read or decompress part-way: what was
		// read is shown, the rest is what bronze calls truncated input.
		c.reject("end", cloudfront.ReasonTruncatedInput, err.Error())
	}
	return c.print(rows)
}

// print writes the rows as JSON lines named by the table's own columns,
// leaving out nulls and empty strings (both are empty in the table).
func (c *checker) print(rows *lake.Rows) error {
	rec := rows.Batch()
	defer rec.Release()
	sc := rec.Schema()
	for i := range int(rec.NumRows()) {
		m := map[string]any{}
		for j, f := range sc.Fields() {
			col := rec.Column(j)
			if col.IsNull(i) {
				continue
			}
			switch a := col.(type) {
			case *array.String:
				if v := a.Value(i); v != "" {
					m[f.Name] = v
				}
			case *array.Int32:
				m[f.Name] = a.Value(i)
			case *array.Int64:
				m[f.Name] = a.Value(i)
			case *array.Float64:
				m[f.Name] = a.Value(i)
			case *array.Boolean:
				m[f.Name] = a.Value(i)
			case *array.Timestamp:
				m[f.Name] = time.UnixMicro(int64(a.Value(i))).UTC().Format(time.RFC3339Nano)
			default:
				m[f.Name] = col.ValueStr(i)
			}
		}
		if err := c.out.Encode(m); err != nil {
			return err
		}
	}
	return nil
}
