package silver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go"

	"github.com/qoslake/qoslake/ingest/cloudfront"
	"github.com/qoslake/qoslake/lake"
)

// Kind says which bronze table a stage reads.
type Kind int

// The two silver stages.
const (
	Player Kind = iota
	CDN
)

// watermarkKey is the silver checkpoint key holding the watermark (event
// time in Unix microseconds, minus the allowed lateness).
const watermarkKey = "watermark"

// Observer is told about what the stage drops and repairs, for metrics.
type Observer interface {
	InvalidValue(table, field string)
	Duplicate(table string)
	Watermark(table string, t time.Time)
	// DedupIDs is how many event ids the duplicate check holds; evicted
	// counts ids forgotten early because the bound (MaxDedupIDs) was reached.
	DedupIDs(table string, ids, evicted int)
}

type nopObserver struct{}

func (nopObserver) InvalidValue(string, string) {}
func (nopObserver) Duplicate(string)            {}
func (nopObserver) Watermark(string, time.Time) {}
func (nopObserver) DedupIDs(string, int, int)   {}

// Stage moves what bronze committed since silver's checkpoint into silver:
// typed, anonymised, enriched and de-duplicated. Each silver commit records
// the bronze snapshot it consumed (compare-and-set), so a crash or restart
// neither loses nor repeats rows.
//
// The CDN stage reads two bronze tables when Realtime is set: standard log
// lines (Bronze) and real-time log records (Realtime), into one row per
// request. Each increment reads the real-time records first, then the
// lines. A record whose request (x-edge-request-id) silver holds no row of
// becomes its row; a record of a request silver holds a row of from the
// other log kind becomes a row of Sightings (silver.cdn_sightings); a
// second record of a request from the same log kind is a duplicate. Both
// tables are append-only. An increment commits its sightings first, then
// its rows with the bronze positions (compare-and-set): after a failure
// between the two, the repeated increment finds its sightings in the
// duplicate check (rebuilt from both tables) and commits only the rows.
// The sightings commit moves positions of its own (sightedKey), so two
// processes moving the same increment do not both commit its sightings.
// Like the duplicate check, recognising a request in both log kinds holds
// within the watermark (Lateness: a standard line later than that gets a
// row of its own).
type Stage struct {
	Kind           Kind
	Bronze, Silver *lake.Table
	// Realtime and Sightings, for the CDN stage: bronze.cdn_realtime, whose
	// records are typed into Silver too, and silver.cdn_sightings. Both or
	// neither.
	Realtime, Sightings *lake.Table
	Transformer         *Transformer
	// Lateness is how far behind the newest event time an event may arrive
	// and still be checked for duplicates: the watermark is the newest
	// event time minus Lateness.
	Lateness time.Duration
	// MaxRows bounds one commit when catching up (default 100,000: about
	// 100 MB of silver rows in memory), per bronze table read.
	MaxRows int64
	// MaxClockSkew is how far ahead of its ingest time an event's own time
	// may move the watermark (default 5 minutes): bronze accepts device
	// clocks up to a day fast, and one such event must not push the
	// watermark a day ahead and switch the duplicate check off.
	MaxClockSkew time.Duration
	// MaxDedupIDs bounds the ids the duplicate check remembers (default
	// 10,000,000, about 500 MB). Past it the oldest ids (by event time) are
	// forgotten first, counted, and a duplicate of one of those is no
	// longer caught; the watermark and the rows are not affected.
	MaxDedupIDs int
	Logger      *slog.Logger
	Observer    Observer

	seen *dedup
	// seenAt and sightedAt are the Silver and Sightings snapshots seen
	// reflects: rows another process committed after them are added before
	// the next increment is read.
	seenAt, sightedAt lake.SnapshotPos
	headers           map[string]*cloudfront.Header
	layouts           map[string]*cloudfront.RealtimeLayout
	// beforeRows, in tests, runs between the sightings and the rows commit.
	beforeRows func()
}

// sightedKey is the Sightings checkpoint key of the position in a bronze
// table up to which its sightings are committed. It is not an upstream
// key: Sightings commits only when an increment has sightings, and must
// not hold back the expiry of bronze snapshots meanwhile.
func sightedKey(bronze string) string { return "sighted:" + bronze }

func (s *Stage) merging() bool { return s.Realtime != nil && s.Sightings != nil }

func (s *Stage) init(ctx context.Context, cp lake.Checkpoint) error {
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.Observer == nil {
		s.Observer = nopObserver{}
	}
	if s.MaxRows <= 0 {
		s.MaxRows = 100_000
	}
	if s.MaxClockSkew <= 0 {
		s.MaxClockSkew = 5 * time.Minute
	}
	if s.MaxDedupIDs <= 0 {
		s.MaxDedupIDs = 10_000_000
	}
	if s.headers == nil {
		s.headers = map[string]*cloudfront.Header{}
		s.layouts = map[string]*cloudfront.RealtimeLayout{}
	}
	var wm int64
	if v := cp[watermarkKey]; v != "" {
		var err error
		if wm, err = strconv.ParseInt(v, 10, 64); err != nil {
			return fmt.Errorf("%s checkpoint %s=%q: %w", s.Silver.Name(), watermarkKey, v, err)
		}
	}
	if s.seen != nil {
		err := s.catchUp(ctx)
		if err == nil {
			// Another process may have moved the watermark further: follow
			// it, so ours never moves the checkpoint back.
			s.seen.follow(wm)
			return nil
		}
		if !errors.Is(err, lake.ErrReplayUnsafe) {
			return err
		}
		// Our last look at silver was expired and silver compacted since:
		// rebuild the memory from silver as at a start.
		s.Logger.Info("silver history rewritten since the duplicate check last looked; rebuilding it", "table", s.Silver.Name())
		s.seen = nil
	}
	seen := newDedup(s.Lateness, wm, s.MaxDedupIDs)
	seenAt, sightedAt := s.Silver.Position(), lake.SnapshotPos{}
	if s.merging() {
		sightedAt = s.Sightings.Position()
	}
	// Rebuild the ids within the watermark from silver itself. The memory
	// is set only once the rebuild is whole: a failed scan is tried again
	// at the next pass. Silver has rows only once it has a watermark;
	// sightings may land before silver's first commit does (it failed).
	for _, m := range s.memories() {
		if wm != 0 || m.sightings {
			filter := iceberg.GreaterThanEqual(iceberg.Reference(m.timeColumn), iceberg.Timestamp(wm))
			if err := m.table.Scan(ctx, lake.ScanOptions{Filter: filter, Fields: m.fields}, func(r arrow.RecordBatch) error {
				return s.rememberIn(seen, r, m)
			}); err != nil {
				return err
			}
		}
	}
	seen.prune()
	s.seen, s.seenAt, s.sightedAt = seen, seenAt, sightedAt
	return nil
}

// memory is a silver table whose rows the duplicate check remembers.
type memory struct {
	table      *lake.Table
	timeColumn string
	fields     []string
	// at is where the check has read the table to.
	at *lake.SnapshotPos
	// sightings: rows are sightings, remembered under sightingTag.
	sightings bool
}

func (s *Stage) memories() []memory {
	switch {
	case s.Kind == Player:
		return []memory{{table: s.Silver, timeColumn: "event_time", fields: []string{"event_id", "event_time", "ingest_time"}, at: &s.seenAt}}
	case !s.merging():
		return []memory{{table: s.Silver, timeColumn: "log_time", fields: cdnMemoryFields, at: &s.seenAt}}
	}
	return []memory{
		{table: s.Silver, timeColumn: "log_time", fields: cdnMemoryFields, at: &s.seenAt},
		{table: s.Sightings, timeColumn: "log_time", fields: []string{"edge_request_id", "log_source", "log_time", "ingest_time"}, at: &s.sightedAt, sightings: true},
	}
}

var cdnMemoryFields = []string{"event_id", "edge_request_id", "log_source", "log_time", "ingest_time"}

// catchUp adds the ids of rows another process committed to silver since
// the check last looked, so a duplicate split across two processes'
// increments is caught.
func (s *Stage) catchUp(ctx context.Context) error {
	for _, m := range s.memories() {
		if m.table.Position() == *m.at {
			continue
		}
		inc, err := m.table.ReadAppended(ctx, *m.at, lake.ReadOptions{Fields: m.fields}, func(r arrow.RecordBatch) error {
			return s.rememberIn(s.seen, r, m)
		})
		if err != nil && !errors.Is(err, lake.ErrNoChange) {
			return err
		}
		*m.at = inc.To
	}
	return nil
}

// rememberIn adds committed silver rows to a duplicate check, by their
// capped event time. The watermark is not moved by them: it is
// checkpointed with each commit.
func (s *Stage) rememberIn(d *dedup, r arrow.RecordBatch, m memory) error {
	ts := column[*array.Timestamp](r, m.timeColumn)
	ingest := column[*array.Timestamp](r, "ingest_time")
	var events, ids, sources *array.String
	if !m.sightings {
		events = column[*array.String](r, "event_id")
	}
	if s.Kind == CDN {
		ids, sources = column[*array.String](r, "edge_request_id"), column[*array.String](r, "log_source")
	}
	tag := rowTag
	if m.sightings {
		tag = sightingTag
	}
	for i := range int(r.NumRows()) {
		var k [16]byte
		if ids == nil || ids.IsNull(i) || ids.Value(i) == "" {
			k = idKey(events.Value(i))
		} else {
			source := LogStandard // rows from before real-time logs have none
			if !sources.IsNull(i) {
				source = sources.Value(i)
			}
			k = requestKey(tag, source, ids.Value(i))
		}
		d.remember(k, s.capped(int64(ts.Value(i)), int64(ingest.Value(i))))
	}
	return nil
}

// Tags of the CDN duplicate check's keys: a request as one log kind's
// record made it a row, or a sighting.
const (
	rowTag      byte = 'r'
	sightingTag byte = 's'
)

// requestKey is the duplicate check's key of a request as a log kind's
// record placed it. x-edge-request-id is compared exactly: both log kinds
// write it as CloudFront made it.
func requestKey(tag byte, source, requestID string) [16]byte {
	sum := sha256.Sum256([]byte(requestID))
	var k [16]byte
	copy(k[:], sum[:16])
	k[0] ^= tag
	if source == LogRealtime {
		k[1] ^= 0xff
	}
	return k
}

// capped is an event time capped at its ingest time plus MaxClockSkew:
// the time that moves the watermark and ranks ids for eviction.
func (s *Stage) capped(t, ingest int64) int64 {
	return min(t, ingest+s.MaxClockSkew.Microseconds())
}

// upstream is a bronze table the stage reads, and how it types a batch of
// its rows.
type upstream struct {
	table *lake.Table
	read  func(r arrow.RecordBatch, inc *increment)
}

func (s *Stage) upstreams() []upstream {
	switch {
	case s.Kind == Player:
		return []upstream{{s.Bronze, s.player}}
	case s.merging():
		// Real-time records first: when both log kinds of a request arrive
		// in one increment, the richer record (CMCD, milliseconds) makes
		// the row.
		return []upstream{{s.Realtime, s.realtime}, {s.Bronze, s.cdn}}
	}
	return []upstream{{s.Bronze, s.cdn}}
}

// increment is what one RunOnce makes of its bronze rows.
type increment struct {
	out, sightings      *lake.Rows
	rows, sighted, dups int
	fields              []string
}

// RunOnce moves one increment (at most MaxRows rows of each bronze table)
// and returns how many rows it wrote; lake.ErrNoChange when bronze has
// nothing new.
func (s *Stage) RunOnce(ctx context.Context) (int, error) {
	tables := []*lake.Table{s.Silver, s.Bronze}
	if s.merging() {
		tables = append(tables, s.Realtime, s.Sightings)
	}
	for _, t := range tables {
		if _, err := t.Refresh(ctx); err != nil {
			return 0, err
		}
	}
	cp, err := s.Silver.Checkpoint()
	if err != nil {
		return 0, err
	}
	if err := s.init(ctx, cp); err != nil {
		return 0, err
	}
	inc := &increment{}
	if inc.out, err = s.Silver.NewRows(); err != nil {
		return 0, err
	}
	defer inc.out.Release()
	if s.merging() {
		if inc.sightings, err = s.Sightings.NewRows(); err != nil {
			return 0, err
		}
		defer inc.sightings.Release()
	}
	// Ids of this increment are held apart until its commit lands: a read
	// or commit that fails must not leave them looking like duplicates.
	s.seen.begin()
	defer s.seen.abort()
	var adv []lake.Position
	var last lake.SnapshotPos
	for _, up := range s.upstreams() {
		key := lake.UpstreamKey(up.table.Name())
		from, err := lake.ParseSnapshotPos(cp[key])
		if err != nil {
			return 0, err
		}
		read, err := up.table.ReadAppended(ctx, from, lake.ReadOptions{MaxRows: s.MaxRows}, func(r arrow.RecordBatch) error {
			up.read(r, inc)
			return nil
		})
		if errors.Is(err, lake.ErrNoChange) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("%s from %s: %w", s.Silver.Name(), up.table.Name(), err)
		}
		if read.Replayed {
			s.Logger.Warn("bronze snapshot expired before silver read it; read by sequence number (no data rewritten since, so exact)",
				"bronze", up.table.Name(), "from", read.From.String())
		}
		adv = append(adv, lake.Position{Key: key, From: cp[key], To: read.To.String()})
		last = read.To
	}
	if len(adv) == 0 {
		return 0, lake.ErrNoChange
	}
	sighted, err := s.commitSightings(ctx, inc, adv)
	if err != nil {
		return 0, err
	}
	if s.beforeRows != nil {
		s.beforeRows()
	}
	rec := inc.out.Batch()
	defer rec.Release()
	if wm := strconv.FormatInt(s.seen.pendingWatermark(), 10); s.seen.pendingMax > 0 && wm != cp[watermarkKey] {
		adv = append(adv, lake.Position{Key: watermarkKey, From: cp[watermarkKey], To: wm})
	}
	c, err := s.Silver.Commit(ctx, lake.Batch{Records: []arrow.RecordBatch{rec}, Advance: adv})
	if err != nil {
		return 0, fmt.Errorf("commit %s: %w", s.Silver.Name(), err)
	}
	// Landed: the increment's ids join the duplicate check. Rows other
	// processes committed before ours were read by catchUp. seenAt (and
	// sightedAt) move to our snapshot only when it sits right on top of
	// what catchUp read; otherwise (another process committed in between,
	// or our batch was found already landed) the next catchUp reads from
	// where it was, our own rows again included: harmless.
	s.seen.commit()
	s.advance(s.Silver, c, &s.seenAt)
	if sighted != nil {
		s.advance(s.Sightings, *sighted, &s.sightedAt)
	}
	s.seen.prune()
	s.Observer.Watermark(s.Silver.Name(), time.UnixMicro(s.seen.watermark()))
	s.Observer.DedupIDs(s.Silver.Name(), len(s.seen.seen), s.seen.takeEvicted())
	s.Logger.Debug("silver committed", "table", s.Silver.Name(), "rows", inc.rows, "sightings", inc.sighted, "duplicates", inc.dups, "bronze_snapshot", last.SnapshotID)
	return inc.rows, nil
}

// commitSightings commits the increment's sightings, before its rows; it
// returns the commit, or nil when there were none.
func (s *Stage) commitSightings(ctx context.Context, inc *increment, adv []lake.Position) (*lake.Committed, error) {
	if inc.sighted == 0 {
		return nil, nil
	}
	cp, err := s.Sightings.Checkpoint()
	if err != nil {
		return nil, err
	}
	moved := make([]lake.Position, len(adv))
	landed := 0
	for i, a := range adv {
		key := sightedKey(strings.TrimPrefix(a.Key, lake.UpstreamKey("")))
		moved[i] = lake.Position{Key: key, From: cp[key], To: a.To}
		if cp[key] == a.To {
			landed++
		}
	}
	switch {
	case landed == len(moved):
		// Another process committed this increment's sightings (two
		// pipelines, the same bronze snapshots): they are there once.
		return nil, nil
	case landed > 0:
		return nil, fmt.Errorf("commit %s: %w", s.Sightings.Name(), lake.ErrCheckpointMoved)
	}
	rec := inc.sightings.Batch()
	defer rec.Release()
	c, err := s.Sightings.Commit(ctx, lake.Batch{Records: []arrow.RecordBatch{rec}, Advance: moved})
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", s.Sightings.Name(), err)
	}
	s.Logger.Debug("sightings committed", "table", s.Sightings.Name(), "rows", inc.sighted)
	return &c, nil
}

// advance moves a memory's position to a commit of ours that sits right on
// top of it.
func (s *Stage) advance(t *lake.Table, c lake.Committed, at *lake.SnapshotPos) {
	if snap := t.Iceberg().SnapshotByID(c.SnapshotID); !c.AlreadyLanded && snap != nil &&
		snap.ParentSnapshotID != nil && *snap.ParentSnapshotID == at.SnapshotID {
		*at = lake.SnapshotPos{SnapshotID: snap.SnapshotID, SequenceNumber: snap.SequenceNumber}
	}
}

// Drain runs until bronze has nothing new. Another process that moved
// the same increment first (lake.ErrCheckpointMoved: several processes
// share the tables) is no failure: the next pass starts from its position.
func (s *Stage) Drain(ctx context.Context) error {
	for {
		_, err := s.RunOnce(ctx)
		switch {
		case errors.Is(err, lake.ErrNoChange):
			return nil
		case errors.Is(err, lake.ErrCheckpointMoved):
			s.Logger.Info("another process moved this increment first; going on from its position", "table", s.Silver.Name())
		case err != nil:
			return err
		}
	}
}

func column[T arrow.Array](r arrow.RecordBatch, name string) T {
	return r.Column(r.Schema().FieldIndices(name)[0]).(T)
}

func (s *Stage) player(r arrow.RecordBatch, inc *increment) {
	payload := column[*array.String](r, "payload")
	types := column[*array.String](r, "event_type")
	times := column[*array.Timestamp](r, "event_time")
	shards := column[*array.String](r, "shard_id")
	seqs := column[*array.String](r, "sequence_number")
	ingest := column[*array.Timestamp](r, "ingest_time")
	for i := range int(r.NumRows()) {
		t := int64(times.Value(i))
		raw := []byte(payload.Value(i))
		row, probs := s.Transformer.PlayerRowOf(raw, types.Value(i), time.UnixMicro(t).UTC())
		if len(probs) > 0 && probs[0].Field == "payload" {
			s.Logger.Warn("bronze payload untypable; row kept with bronze's columns only",
				"shard", shards.Value(i), "sequence", seqs.Value(i), "error", probs[0].Detail)
		}
		in := int64(ingest.Value(i))
		if !s.seen.add(idKey(row.EventID), s.capped(t, in)) {
			s.Observer.Duplicate(s.Silver.Name())
			inc.dups++
			continue
		}
		s.invalid(probs)
		row.ShardID, row.SequenceNumber = shards.Value(i), seqs.Value(i)
		row.IngestTime = time.UnixMicro(in).UTC()
		appendPlayer(inc.out, &row)
		inc.rows++
	}
}

func (s *Stage) cdn(r arrow.RecordBatch, inc *increment) {
	lines := column[*array.String](r, "line")
	headers := column[*array.String](r, "fields")
	times := column[*array.Timestamp](r, "log_time")
	keys := column[*array.String](r, "object_key")
	numbers := column[*array.Int64](r, "line_number")
	ingest := column[*array.Timestamp](r, "ingest_time")
	for i := range int(r.NumRows()) {
		raw := headers.Value(i)
		h, ok := s.headers[raw]
		if !ok {
			var err error
			if h, err = cloudfront.ParseHeader(raw); err != nil {
				// Bronze stores only headers it parsed, so only a bronze
				// written by something else leads here: keep the row with
				// its time and source, count the problem, never stall the
				// stage on one row.
				h = nil
			}
			s.headers[raw] = h
		}
		var row CDNRow
		var probs []Problem
		row, probs, inc.fields = s.Transformer.CDNRowOf(h, raw, lines.Value(i), time.UnixMicro(int64(times.Value(i))).UTC(), inc.fields)
		row.ObjectKey, row.LineNumber = keys.Value(i), numbers.Value(i)
		row.IngestTime = time.UnixMicro(int64(ingest.Value(i))).UTC()
		s.place(&row, probs, inc)
	}
}

func (s *Stage) realtime(r arrow.RecordBatch, inc *increment) {
	records := column[*array.String](r, "record")
	layouts := column[*array.String](r, "fields")
	times := column[*array.Timestamp](r, "log_time")
	rates := column[*array.Int32](r, "sampling_rate")
	shards := column[*array.String](r, "shard_id")
	seqs := column[*array.String](r, "sequence_number")
	ingest := column[*array.Timestamp](r, "ingest_time")
	for i := range int(r.NumRows()) {
		raw := layouts.Value(i)
		l, ok := s.layouts[raw]
		if !ok {
			var err error
			if l, err = cloudfront.ParseRealtimeLayout(raw); err != nil {
				l = nil // as for a standard header: only a bronze written by something else
			}
			s.layouts[raw] = l
		}
		var row CDNRow
		var probs []Problem
		row, probs, inc.fields = s.Transformer.RealtimeRowOf(l, raw, records.Value(i), time.UnixMicro(int64(times.Value(i))).UTC(), rates.Value(i), inc.fields)
		row.ShardID, row.SequenceNumber = shards.Value(i), seqs.Value(i)
		row.IngestTime = time.UnixMicro(int64(ingest.Value(i))).UTC()
		s.place(&row, probs, inc)
	}
}

// place puts a CDN record where it belongs: a row of a request silver
// holds none of, a sighting of a request silver holds a row of from the
// other log kind, or a duplicate. A record with no request id is a row
// unless its event id was seen.
func (s *Stage) place(row *CDNRow, probs []Problem, inc *increment) {
	t := s.capped(row.LogTime.UnixMicro(), row.IngestTime.UnixMicro())
	id := row.EdgeRequestID
	var keep bool
	switch {
	case id == "":
		keep = s.seen.add(idKey(row.EventID), t)
	case s.seen.has(requestKey(rowTag, row.LogSource, id)) || s.seen.has(requestKey(sightingTag, row.LogSource, id)):
		keep = false
	case s.merging() && s.seen.has(requestKey(rowTag, otherLog(row.LogSource), id)):
		s.seen.add(requestKey(sightingTag, row.LogSource, id), t)
		appendSighting(inc.sightings, row)
		inc.sighted++
		return
	default:
		keep = s.seen.add(requestKey(rowTag, row.LogSource, id), t)
	}
	if !keep {
		s.Observer.Duplicate(s.Silver.Name())
		inc.dups++
		return
	}
	s.invalid(probs)
	appendCDN(inc.out, row)
	inc.rows++
}

func otherLog(source string) string {
	if source == LogRealtime {
		return LogStandard
	}
	return LogRealtime
}

// invalid counts the values the transform left empty in a row it keeps.
func (s *Stage) invalid(probs []Problem) {
	for _, p := range probs {
		s.Observer.InvalidValue(s.Silver.Name(), p.Field)
	}
}

// dedup remembers the ids of events within the watermark. Ids are kept as
// their 16 raw bytes, not the 32-character hex of the column: memory grows
// with the events inside the lateness window (about 50 bytes each), and
// CDN logs allow hours.
//
// An increment's ids are pending until its commit lands (begin, add,
// commit or abort): a read or commit that fails leaves the remembered set
// as it was, so the retry does not take its own rows for duplicates.
type dedup struct {
	lateness int64 // microseconds
	max      int64 // newest (capped) event time committed, Unix microseconds
	seen     map[[16]byte]int64
	// limit bounds len(seen); floor is the event time below which ids were
	// evicted to stay within it, evicted how many since last reported.
	limit   int
	floor   int64
	evicted int

	pending    map[[16]byte]int64
	pendingMax int64
}

// idKey turns an event id (hex) into its map key; anything else hashes to
// a key of its own.
func idKey(id string) [16]byte {
	var k [16]byte
	if len(id) == 32 {
		if _, err := hex.Decode(k[:], []byte(id)); err == nil {
			return k
		}
	}
	sum := sha256.Sum256([]byte(id))
	copy(k[:], sum[:])
	return k
}

func newDedup(lateness time.Duration, watermark int64, limit int) *dedup {
	d := &dedup{lateness: lateness.Microseconds(), seen: map[[16]byte]int64{}, limit: limit}
	if watermark != 0 {
		d.max = watermark + d.lateness
	}
	return d
}

func (d *dedup) watermark() int64 { return d.max - d.lateness }

func (d *dedup) pendingWatermark() int64 { return max(d.max, d.pendingMax) - d.lateness }

func (d *dedup) begin() { d.pending, d.pendingMax = map[[16]byte]int64{}, 0 }

// abort forgets a pending increment (a no-op after commit).
func (d *dedup) abort() { d.pending, d.pendingMax = nil, 0 }

func (d *dedup) commit() {
	for k, t := range d.pending {
		d.remember(k, t)
	}
	d.max = max(d.max, d.pendingMax)
	d.abort()
}

// add reports whether id is new, and holds it as pending. t is the event
// time capped near its ingest time (Stage.capped): it moves the watermark
// and ranks the id for pruning and eviction, so a fast device clock can
// neither push the watermark ahead nor keep its ids longest. Ids older
// than the watermark are not remembered (a duplicate of one of those is
// not caught).
func (d *dedup) add(k [16]byte, t int64) bool {
	if _, ok := d.seen[k]; ok {
		return false
	}
	if _, ok := d.pending[k]; ok {
		return false
	}
	d.pendingMax = max(d.pendingMax, t)
	if t >= d.pendingWatermark() && t >= d.floor {
		d.pending[k] = t
	}
	return true
}

// has reports whether k is remembered or pending.
func (d *dedup) has(k [16]byte) bool {
	if _, ok := d.seen[k]; ok {
		return true
	}
	_, ok := d.pending[k]
	return ok
}

// follow moves the watermark up to one another process checkpointed.
func (d *dedup) follow(watermark int64) {
	if watermark > d.watermark() {
		d.max = watermark + d.lateness
		d.prune()
	}
}

// remember adds a committed id.
func (d *dedup) remember(k [16]byte, t int64) {
	if t >= d.watermark() && t >= d.floor {
		d.seen[k] = t
	}
}

// prune forgets ids older than the watermark, then, past the limit, the
// oldest ids until a tenth of the limit is free (so eviction is not paid
// for on every commit).
func (d *dedup) prune() {
	wm := d.watermark()
	for id, t := range d.seen {
		if t < wm {
			delete(d.seen, id)
		}
	}
	if d.limit <= 0 || len(d.seen) <= d.limit {
		return
	}
	times := make([]int64, 0, len(d.seen))
	for _, t := range d.seen {
		times = append(times, t)
	}
	slices.Sort(times)
	d.floor = times[len(times)-d.limit*9/10]
	for id, t := range d.seen {
		if t < d.floor {
			delete(d.seen, id)
			d.evicted++
		}
	}
}

func (d *dedup) takeEvicted() int {
	n := d.evicted
	d.evicted = 0
	return n
}
