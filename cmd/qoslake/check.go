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
	"os"
	"path/filepath"
	"time"

	"github.com/qoslake/qoslake/config"
	"github.com/qoslake/qoslake/ingest/cloudfront"
	"github.com/qoslake/qoslake/ingest/playerevent"
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
		help: `Reads player events (JSON lines, or one JSON array per line) or a CloudFront
standard log (plain or gzip), runs them through the bronze checks and the
silver transform, and prints the silver rows as JSON lines on standard
output, rejects with their reasons on standard error, and a one-line
summary. The kind is detected, or given with --type player|cdn.

Exit status: 0 when every input was accepted, 1 when some were rejected,
2 on a usage or configuration error.`,
		groups: []config.Group{config.Core, config.Silver},
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&kind, "type", "auto", "auto, player or cdn")
		},
		run: func(ctx context.Context, m *Main, fs *flag.FlagSet) error {
			if fs.NArg() != 1 {
				return fmt.Errorf("%w: check takes one file", errUsage)
			}
			if kind != "auto" && kind != "player" && kind != "cdn" {
				return fmt.Errorf("%w: --type %q is not auto, player or cdn", errUsage, kind)
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
			if kind == "cdn" {
				err = c.cdn(in)
			} else {
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

// detect says cdn for "#Version"/"#Fields" headers, player otherwise.
func detect(br *bufio.Reader) string {
	head, _ := br.Peek(16)
	if bytes.HasPrefix(head, []byte("#Version")) || bytes.HasPrefix(head, []byte("#Fields")) {
		return "cdn"
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

func (c *checker) player(r *bufio.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), playerevent.DefaultLimits.MaxRecordBytes+1)
	line := 0
	for sc.Scan() {
		line++
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		where := fmt.Sprint(line)
		events, rejects := playerevent.Parse(sc.Bytes(), time.Now(), playerevent.DefaultLimits)
		for _, rj := range rejects {
			w := where
			if rj.Index >= 0 {
				w += fmt.Sprintf("[%d]", rj.Index)
			}
			c.reject(w, rj.Reason, rj.Detail)
		}
		for _, e := range events {
			row, probs, err := c.t.PlayerEvent(e.Payload, e.Type, e.Time)
			if err != nil {
				c.reject(where, playerevent.ReasonMalformedJSON, err.Error())
				continue
			}
			c.problem(where, probs)
			if err := c.out.Encode(playerJSON(&row)); err != nil {
				return err
			}
			c.rows++
		}
	}
	if err := sc.Err(); err != nil {
		c.reject(fmt.Sprint(line+1), playerevent.ReasonOversized, err.Error())
	}
	return nil
}

func (c *checker) cdn(r *bufio.Reader) error {
	rd := cloudfront.NewReader(r, 64<<10)
	var fields []string
	for {
		l, err := rd.Next()
		var le *cloudfront.LineError
		var fe *cloudfront.FormatError
		switch {
		case err == nil:
			var row silver.CDNRow
			var probs []silver.Problem
			row, probs, fields = c.t.CDNLine(l.Header, l.Text, l.Time, fields)
			row.LineNumber = l.Number
			c.problem(fmt.Sprint(l.Number), probs)
			if err := c.out.Encode(cdnJSON(&row)); err != nil {
				return err
			}
			c.rows++
		case errors.As(err, &le):
			c.reject(fmt.Sprint(le.Number), le.Reason, le.Detail)
		case errors.As(err, &fe):
			c.reject("1", cloudfront.ReasonUnknownFormat, fe.Detail)
			return nil
		case errors.Is(err, io.EOF):
			return nil
		default:
			c.reject("end", cloudfront.ReasonTruncatedInput, err.Error())
			return nil
		}
	}
}

// playerJSON names a silver player row's fields as the table's columns.
func playerJSON(r *silver.PlayerRow) map[string]any {
	m := map[string]any{
		"event_id": r.EventID, "event_type": r.EventType, "event_time": r.EventTime.Format(time.RFC3339Nano),
		"session_id": r.SessionID, "user_key": r.UserKey, "key_id": r.KeyID, "video_id": r.VideoID,
		"playlist_type": r.PlaylistType, "position_s": r.Position, "response_ms": r.Response,
		"connection_type": r.ConnectionType, "package": r.Package, "resolution": r.Resolution,
		"width": r.Width, "height": r.Height, "fps": r.FPS, "bitrate_bps": r.Bitrate,
		"video_duration_s": r.VideoDuration, "buffer_type": r.BufferType, "buffer_duration_ms": r.BufferDuration,
		"cdn_tracking_id": r.CDNTrackingID, "app_type": r.AppType, "app_version": r.AppVersion,
		"device_type": r.Device, "os": r.OS, "browser": r.Browser, "error_code": r.ErrorCode, "error_message": r.ErrMessage,
	}
	addClient(m, r.Client)
	return compact(m)
}

func cdnJSON(r *silver.CDNRow) map[string]any {
	m := map[string]any{
		"event_id": r.EventID, "log_time": r.LogTime.Format(time.RFC3339), "edge_location": r.EdgeLocation, "pop": r.POP,
		"sc_bytes": r.SCBytes, "method": r.Method, "host": r.Host, "uri_stem": r.URIStem, "uri_query": r.URIQuery,
		"status": r.Status, "referer": r.Referer, "user_agent": r.UserAgent, "browser": r.Browser, "os": r.OS,
		"device_type": r.DeviceType, "is_bot": r.Bot, "edge_result_type": r.EdgeResult,
		"edge_response_result_type": r.EdgeResponseResult, "edge_detailed_result_type": r.EdgeDetailedResult,
		"edge_request_id": r.EdgeRequestID, "host_header": r.HostHeader, "protocol": r.Protocol,
		"protocol_version": r.ProtocolVersion, "cs_bytes": r.CSBytes, "time_taken_ms": r.TimeTaken, "ttfb_ms": r.TTFB,
		"forwarded_for": r.ForwardedFor, "ssl_protocol": r.SSLProtocol, "ssl_cipher": r.SSLCipher,
		"client_port": r.ClientPort, "content_type": r.ContentType, "content_length": r.ContentLength,
		"range_start": r.RangeStart, "range_end": r.RangeEnd, "cache_hit": r.CacheHit, "error": r.Error,
		"line_number": r.LineNumber,
	}
	addClient(m, r.Client)
	return compact(m)
}

func addClient(m map[string]any, c silver.Client) {
	m["client_ip"], m["country"], m["subdivision"], m["city"], m["asn"], m["isp"] = c.IP, c.Country, c.Subdivision, c.City, c.ASN, c.ISP
}

// compact drops empty values: they are nulls in the table.
func compact(m map[string]any) map[string]any {
	for k, v := range m {
		switch x := v.(type) {
		case string:
			if x == "" {
				delete(m, k)
			}
		case *float64:
			if x == nil {
				delete(m, k)
			}
		case *int64:
			if x == nil {
				delete(m, k)
			}
		case *int32:
			if x == nil {
				delete(m, k)
			}
		}
	}
	return m
}
