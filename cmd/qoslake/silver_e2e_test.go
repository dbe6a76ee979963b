package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/qoslake/qoslake/anonymize"
	"github.com/qoslake/qoslake/ingest/cloudfront"
	"github.com/qoslake/qoslake/silver"
	"github.com/qoslake/qoslake/simulate"
)

// rawAddresses returns every client address the bronze tables hold: c-ip of
// each CDN line and client_ip of each player event.
func (s *stack) rawAddresses() map[string]bool {
	s.t.Helper()
	out := map[string]bool{}
	for _, line := range s.keys("bronze.cdn_logs", "line") {
		out[cloudfront.Split(line, nil)[4]] = true // c-ip in the simulator's 33-field layout
	}
	for _, p := range s.keys("bronze.player_events", "payload") {
		var e struct {
			IP string `json:"client_ip"`
		}
		if json.Unmarshal([]byte(p), &e) == nil && e.IP != "" {
			out[e.IP] = true
		}
	}
	return out
}

// parquetValues decodes every Parquet file under dir and returns its
// string values, per file. Files are compressed: their raw bytes would hide
// an address, so the test reads them as a query engine would.
func parquetValues(t *testing.T, dir string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".parquet") {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		rdr, err := file.NewParquetReader(f)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
		if err != nil {
			t.Fatal(err)
		}
		tbl, err := fr.ReadTable(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer tbl.Release()
		for i := range int(tbl.NumCols()) {
			for _, chunk := range tbl.Column(i).Data().Chunks() {
				if sa, ok := chunk.(*array.String); ok {
					for j := range sa.Len() {
						out[p] = append(out[p], sa.Value(j))
					}
				}
			}
		}
		return nil
	})
	return out
}

// filesContaining returns the files in which any value contains one of the
// addresses.
func filesContaining(values map[string][]string, addrs map[string]bool) []string {
	var hits []string
	for f, vs := range values {
	scan:
		for _, v := range vs {
			for a := range addrs {
				if strings.Contains(v, a) {
					hits = append(hits, f+" ("+a+")")
					break scan
				}
			}
		}
	}
	return hits
}

// No raw client address reaches silver, geo and ISP come from the full
// address (IPv4 and IPv6), and after bronze retention the raw addresses are
// gone from the warehouse folder entirely.
func TestSilverIsPrivateAndEnriched(t *testing.T) {
	s := newStack(t)
	// Traffic from ten days ago, so a 7-day bronze retention applies to it.
	start := time.Now().Add(-240 * time.Hour).UTC().Format(time.RFC3339)
	sum := s.simulate("--rate", "300", "--duration", "20s", "--seed", "21", "--start", start)
	s.mustRun("run", "--once")

	raw := s.rawAddresses()
	v4, v6 := 0, 0
	for a := range raw {
		if strings.Contains(a, ":") {
			v6++
		} else {
			v4++
		}
	}
	if v4 == 0 || v6 == 0 {
		t.Fatalf("simulated traffic has %d IPv4 and %d IPv6 addresses", v4, v6)
	}
	wh := filepath.Join(s.dir, "warehouse")
	if hits := filesContaining(parquetValues(t, filepath.Join(wh, "silver")), raw); len(hits) > 0 {
		t.Errorf("raw client addresses in silver data files: %v", hits)
	}
	if hits := filesContaining(parquetValues(t, filepath.Join(wh, "bronze")), raw); len(hits) == 0 {
		t.Fatal("bronze holds no raw address: the scan would find nothing anywhere")
	}

	// Geo and ISP per truncated network, against what the database says.
	want := map[string]simulate.Network{}
	for _, n := range simulate.Networks {
		want[n.V4.Addr().String()], want[n.V6.Addr().String()] = n, n
	}
	rows := s.keys("silver.cdn_logs", "client_ip", "country", "subdivision", "city", "asn", "isp")
	rows = append(rows, s.keys("silver.player_events", "client_ip", "country", "subdivision", "city", "asn", "isp")...)
	checked := map[bool]int{}
	for _, r := range rows {
		f := strings.Split(r, "|")
		if f[0] == array.NullValueStr {
			continue // player events in the SDK's form carry no address
		}
		ip := netip.MustParseAddr(f[0])
		// The simulator's networks are /16 (IPv4) and /48 (IPv6): the
		// truncated address's network key is its /16 or /48.
		key := netip.PrefixFrom(ip, map[bool]int{true: 16, false: 48}[ip.Is4()]).Masked().Addr().String()
		n, ok := want[key]
		if !ok {
			t.Fatalf("row %s: address outside the simulated networks", r)
		}
		if got, exp := strings.Join(f[1:], "|"), fmt.Sprintf("%s|%s|%s|%d|%s", n.Country, n.Subdivision, n.City, n.ASN, n.ISP); got != exp {
			t.Errorf("%s: %s, want %s", f[0], got, exp)
		}
		if a, _ := anonymize.TruncateIP(f[0]); a.String() != f[0] {
			t.Errorf("%s is not a truncated address", f[0])
		}
		checked[ip.Is4()]++
	}
	if checked[true] == 0 || checked[false] == 0 {
		t.Errorf("checked %d IPv4 and %d IPv6 rows", checked[true], checked[false])
	}
	if n := len(s.keys("silver.player_events", "event_id")); n != sum.EventsTotal {
		t.Errorf("silver has %d player events, simulated %d", n, sum.EventsTotal)
	}

	// Bronze retention: rows older than 7 days go, and with snapshots
	// expired and orphans removed, so do the files that held them. Expiry
	// keeps the bronze snapshot silver last read (its incremental read
	// starts there), so the files go at the first maintenance pass after
	// silver has read past the delete: in `run`, seconds later.
	maintain := []string{"maintain", "--snapshots-retain", "1", "--snapshot-max-age", "1ms", "--orphan-min-age", "1ms"}
	s.mustRun(maintain...)
	s.mustRun("run", "--once")
	s.mustRun(maintain...)
	if n := len(s.keys("bronze.cdn_logs", "line")) + len(s.keys("bronze.player_events", "payload")); n != 0 {
		t.Errorf("%d bronze rows left after retention", n)
	}
	if hits := filesContaining(parquetValues(t, wh), raw); len(hits) > 0 {
		t.Errorf("raw addresses still in the warehouse after retention: %v", hits)
	}
	var rawFiles []string
	_ = filepath.WalkDir(wh, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			for a := range raw {
				if bytes.Contains(b, []byte(a)) {
					rawFiles = append(rawFiles, p)
					break
				}
			}
		}
		return err
	})
	if len(rawFiles) > 0 {
		t.Errorf("files still holding raw addresses byte for byte: %v", rawFiles)
	}
	if n := len(s.keys("silver.player_events", "event_id")); n != sum.EventsTotal {
		t.Errorf("silver lost rows to bronze retention: %d, want %d", n, sum.EventsTotal)
	}
}

// The same payload twice through Kinesis (a producer retry) and the same log
// file delivered twice appear once in silver; bronze keeps both copies.
func TestDuplicatesAppearOnceInSilver(t *testing.T) {
	s := newStack(t)
	now := time.Now().UnixMilli()
	ev := fmt.Sprintf(`{"metrictype":"play","timestamp":%d,"user_id":"u1","video_id":"v","client_ip":"10.1.2.3"}`, now)
	s.putRecord([]byte(ev))
	s.putRecord([]byte(ev))
	s.putRecord([]byte(strings.Replace(ev, "play", "stop", 1)))
	log := logHeader + logLine(1) + logLine(2)
	s.putObject("a.gz", gz(t, log))
	s.putObject("copy-of-a.gz", gz(t, log))
	s.mustRun("run", "--once")
	if n := len(s.keys("bronze.player_events", "payload")); n != 3 {
		t.Fatalf("bronze has %d events, want 3", n)
	}
	if n := len(s.keys("bronze.cdn_logs", "line")); n != 4 {
		t.Fatalf("bronze has %d lines, want 4", n)
	}
	if got := s.keys("silver.player_events", "event_type"); len(got) != 2 {
		t.Errorf("silver events = %v, want play and stop once each", got)
	}
	if got := s.keys("silver.cdn_logs", "edge_request_id"); len(got) != 2 {
		t.Errorf("silver lines = %v, want 2", got)
	}
	// The duplicate arriving in a later run is dropped too.
	s.putRecord([]byte(ev))
	s.mustRun("run", "--once")
	if got := s.keys("silver.player_events", "event_type"); len(got) != 2 {
		t.Errorf("after a late duplicate: %v", got)
	}
}

// Crashes between bronze and silver commits (the run cut at random points,
// while traffic arrives) leave silver with each bronze row exactly once.
func TestCrashBetweenBronzeAndSilver(t *testing.T) {
	s := newStack(t, "QOSLAKE_SILVER_EVERY", "100ms")
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 3))
	t.Logf("random seed %d", seed)
	for round := range 3 {
		s.simulate("--rate", "400", "--duration", "10s", "--seed", fmt.Sprint(300+round))
		s.cutRuns(rng, 3, 100*time.Millisecond, 2000*time.Millisecond)
	}
	s.mustRun("run", "--once")
	bronzeIDs := map[string]bool{}
	for _, p := range s.keys("bronze.player_events", "payload") {
		bronzeIDs[eventID(p)] = true
	}
	silverIDs := s.keys("silver.player_events", "event_id")
	if dup := firstDuplicate(silverIDs); dup != "" {
		t.Errorf("event %s twice in silver", dup)
	}
	if len(silverIDs) != len(bronzeIDs) {
		t.Errorf("silver has %d events, bronze %d distinct", len(silverIDs), len(bronzeIDs))
	}
	lines := map[string]bool{}
	for _, l := range s.keys("bronze.cdn_logs", "line") {
		lines[l] = true
	}
	cdn := s.keys("silver.cdn_logs", "event_id")
	if dup := firstDuplicate(cdn); dup != "" || len(cdn) != len(lines) {
		t.Errorf("silver has %d CDN rows (duplicate %q), bronze %d distinct lines", len(cdn), dup, len(lines))
	}
	s.checkGoldMatchesSilver()
}

func eventID(payload string) string {
	return silverEventID([]byte(payload))
}

// `qoslake check` on the shared samples prints the expected rows.
func TestCheckSamples(t *testing.T) {
	dir := "../../../shared/samples"
	if _, err := os.Stat(dir); err != nil {
		t.Skip("shared samples not present")
	}
	city, asn, err := simulate.WriteGeoIP(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"QOSLAKE_PSEUDONYM_KEY": testKey, "QOSLAKE_GEOIP_CITY": city, "QOSLAKE_GEOIP_ASN": asn}

	code, out, errOut := run(t, env, "check", filepath.Join(dir, "player_events.jsonl"))
	if code != exitOK {
		t.Fatalf("check player events: exit %d\n%s", code, errOut)
	}
	var rows []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		rows = append(rows, m)
	}
	if len(rows) != 5 || !strings.Contains(errOut, "5 rows, 0 rejected") {
		t.Fatalf("%d rows; stderr %s", len(rows), errOut)
	}
	first := rows[0]
	for k, v := range map[string]any{
		"event_type": "stream", "event_time": "2020-04-08T09:53:58.864Z", "video_id": "bigbuckbunny", "playlist_type": "live",
		"bitrate_bps": 1330203.0, "resolution": "640x360", "width": 640.0, "height": 360.0, "fps": 29.97,
		"position_s": 105.077308, "response_ms": 350.0, "video_duration_s": 597.0, "key_id": "test-1",
		"cdn_tracking_id": "pxiujvunrtzflqxa8oettfjvzrfwsoyfnh8opu0-6azy38ev1vg==",
	} {
		if first[k] != v {
			t.Errorf("%s = %v, want %v", k, first[k], v)
		}
	}
	if uk, _ := first["user_key"].(string); len(uk) != 64 || strings.Contains(out, "810f9e88") {
		t.Errorf("user id not pseudonymised: %v", first["user_key"])
	}
	if rows[4]["buffer_type"] != "firstbuffer" || rows[4]["buffer_duration_ms"] != 735.0 {
		t.Errorf("buffer row: %v", rows[4])
	}

	code, out, errOut = run(t, env, "check", filepath.Join(dir, "cloudfront-standard.log"))
	if code != exitOK {
		t.Fatalf("check cloudfront: exit %d\n%s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d rows", len(lines))
	}
	var l0, l2, l3 map[string]any
	json.Unmarshal([]byte(lines[0]), &l0)
	json.Unmarshal([]byte(lines[2]), &l2)
	json.Unmarshal([]byte(lines[3]), &l3)
	for k, v := range map[string]any{
		"client_ip": "203.0.113.0", "pop": "FRA", "edge_location": "FRA56-P3", "status": 200.0, "time_taken_ms": 14.0,
		"ttfb_ms": 3.0, "cache_hit": true, "browser": "Safari", "os": "Mac OS X", "device_type": "desktop",
		"sc_bytes": 1843201.0, "content_length": 1842688.0, "protocol_version": "HTTP/2.0",
	} {
		if l0[k] != v {
			t.Errorf("line 1 %s = %v, want %v", k, l0[k], v)
		}
	}
	if l2["status"] != 0.0 || l2["error"] != true || l2["edge_detailed_result_type"] != "ClientCommError" {
		t.Errorf("viewer hang-up line: %v", l2)
	}
	if l3["is_bot"] != true || l3["forwarded_for"] != "192.0.2.0, 10.0.0.0" || l3["range_end"] != 5119.0 {
		t.Errorf("bot line: %v", l3)
	}
	if strings.Contains(out, "203.0.113.77") || strings.Contains(out, "2001:db8:4f2a:1200:9c1e") {
		t.Error("check printed a raw client address")
	}

	// A file with a bad record exits 1 and says why on stderr.
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	os.WriteFile(bad, []byte(`{"metrictype":"play","timestamp":1586339638864}`+"\n"+`{"metrictype":`+"\n"), 0o644)
	code, out, errOut = run(t, env, "check", bad)
	if code != exitFailure || strings.Count(out, "\n") != 1 || !strings.Contains(errOut, "malformed_json") {
		t.Errorf("bad file: exit %d, out %q, err %q", code, out, errOut)
	}
	if code, _, _ := run(t, env, "check", "/nonexistent"); code != exitUsage {
		t.Errorf("missing file: exit %d", code)
	}
}

func silverEventID(b []byte) string { return silver.EventID(b) }
