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
type Stage struct {
	Kind           Kind
	Bronze, Silver *lake.Table
	Transformer    *Transformer
	// Lateness is how far behind the newest event time an event may arrive
	// and still be checked for duplicates: the watermark is the newest
	// event time minus Lateness.
	Lateness time.Duration
	// MaxRows bounds one commit when catching up (default 100,000: about
	// 100 MB of silver rows in memory).
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
	// seenAt is the silver snapshot seen reflects: rows another process
	// committed after it are added before the next increment is read.
	seenAt  lake.SnapshotPos
	headers map[string]*cloudfront.Header
}

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
	seenAt := s.Silver.Position()
	if wm != 0 {
		// Rebuild the ids within the watermark from silver itself. The
		// memory is set only once the rebuild is whole: a failed scan is
		// tried again at the next pass.
		col := s.timeColumn()
		filter := iceberg.GreaterThanEqual(iceberg.Reference(col), iceberg.Timestamp(wm))
		if err := s.Silver.Scan(ctx, lake.ScanOptions{Filter: filter, Fields: []string{"event_id", col, "ingest_time"}}, func(r arrow.RecordBatch) error {
			return s.rememberIn(seen, r)
		}); err != nil {
			return err
		}
		seen.prune()
	}
	s.seen, s.seenAt = seen, seenAt
	return nil
}

// catchUp adds the ids of rows another process committed to silver since
// seenAt, so a duplicate split across two processes' increments is caught.
func (s *Stage) catchUp(ctx context.Context) error {
	if s.Silver.Position() == s.seenAt {
		return nil
	}
	inc, err := s.Silver.ReadAppended(ctx, s.seenAt, lake.ReadOptions{Fields: []string{"event_id", s.timeColumn(), "ingest_time"}}, func(r arrow.RecordBatch) error {
		return s.rememberIn(s.seen, r)
	})
	if err != nil && !errors.Is(err, lake.ErrNoChange) {
		return err
	}
	s.seenAt = inc.To
	return nil
}

// rememberIn adds committed silver rows to a duplicate check, by their
// capped event time. The watermark is not moved by them: it is
// checkpointed with each commit.
func (s *Stage) rememberIn(d *dedup, r arrow.RecordBatch) error {
	col := s.timeColumn()
	ids := column[*array.String](r, "event_id")
	ts := column[*array.Timestamp](r, col)
	ingest := column[*array.Timestamp](r, "ingest_time")
	for i := range ids.Len() {
		d.remember(idKey(ids.Value(i)), s.capped(int64(ts.Value(i)), int64(ingest.Value(i))))
	}
	return nil
}

// capped is an event time capped at its ingest time plus MaxClockSkew:
// the time that moves the watermark and ranks ids for eviction.
func (s *Stage) capped(t, ingest int64) int64 {
	return min(t, ingest+s.MaxClockSkew.Microseconds())
}

func (s *Stage) timeColumn() string {
	if s.Kind == CDN {
		return "log_time"
	}
	return "event_time"
}

// RunOnce moves one increment (at most MaxRows rows) and returns how many
// rows it wrote; lake.ErrNoChange when bronze has nothing new.
func (s *Stage) RunOnce(ctx context.Context) (int, error) {
	if _, err := s.Silver.Refresh(ctx); err != nil {
		return 0, err
	}
	if _, err := s.Bronze.Refresh(ctx); err != nil {
		return 0, err
	}
	cp, err := s.Silver.Checkpoint()
	if err != nil {
		return 0, err
	}
	if err := s.init(ctx, cp); err != nil {
		return 0, err
	}
	upKey := lake.UpstreamKey(s.Bronze.Name())
	from, err := lake.ParseSnapshotPos(cp[upKey])
	if err != nil {
		return 0, err
	}
	out, err := s.Silver.NewRows()
	if err != nil {
		return 0, err
	}
	defer out.Release()
	// Ids of this increment are held apart until its commit lands: a read
	// or commit that fails must not leave them looking like duplicates.
	s.seen.begin()
	defer s.seen.abort()
	var rows, dups int
	var fields []string
	inc, err := s.Bronze.ReadAppended(ctx, from, lake.ReadOptions{MaxRows: s.MaxRows}, func(r arrow.RecordBatch) error {
		var n, d int
		var err error
		if s.Kind == CDN {
			n, d, fields, err = s.cdn(r, out, fields)
		} else {
			n, d, err = s.player(r, out)
		}
		rows += n
		dups += d
		return err
	})
	if errors.Is(err, lake.ErrNoChange) {
		return 0, err
	}
	if err != nil {
		return 0, fmt.Errorf("%s from %s: %w", s.Silver.Name(), s.Bronze.Name(), err)
	}
	if inc.Replayed {
		s.Logger.Warn("bronze snapshot expired before silver read it; read by sequence number (no data rewritten since, so exact)",
			"bronze", s.Bronze.Name(), "from", inc.From.String())
	}
	rec := out.Batch()
	defer rec.Release()
	adv := []lake.Position{{Key: upKey, From: cp[upKey], To: inc.To.String()}}
	if wm := strconv.FormatInt(s.seen.pendingWatermark(), 10); s.seen.pendingMax > 0 && wm != cp[watermarkKey] {
		adv = append(adv, lake.Position{Key: watermarkKey, From: cp[watermarkKey], To: wm})
	}
	c, err := s.Silver.Commit(ctx, lake.Batch{Records: []arrow.RecordBatch{rec}, Advance: adv})
	if err != nil {
		return 0, fmt.Errorf("commit %s: %w", s.Silver.Name(), err)
	}
	// Landed: the increment's ids join the duplicate check. Rows other
	// processes committed before ours were read by catchUp. seenAt moves
	// to our snapshot only when it sits right on top of what catchUp read;
	// otherwise (another process committed in between, or our batch was
	// found already landed) the next catchUp reads from where it was, our
	// own rows again included: harmless.
	s.seen.commit()
	if snap := s.Silver.Iceberg().SnapshotByID(c.SnapshotID); !c.AlreadyLanded && snap != nil &&
		snap.ParentSnapshotID != nil && *snap.ParentSnapshotID == s.seenAt.SnapshotID {
		s.seenAt = lake.SnapshotPos{SnapshotID: snap.SnapshotID, SequenceNumber: snap.SequenceNumber}
	}
	s.seen.prune()
	s.Observer.Watermark(s.Silver.Name(), time.UnixMicro(s.seen.watermark()))
	s.Observer.DedupIDs(s.Silver.Name(), len(s.seen.seen), s.seen.takeEvicted())
	s.Logger.Debug("silver committed", "table", s.Silver.Name(), "rows", rows, "duplicates", dups, "bronze_snapshot", inc.To.SnapshotID)
	return rows, nil
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

func (s *Stage) player(r arrow.RecordBatch, out *lake.Rows) (rows, dups int, err error) {
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
		if !s.keep(row.EventID, t, in, probs) {
			dups++
			continue
		}
		row.ShardID, row.SequenceNumber = shards.Value(i), seqs.Value(i)
		row.IngestTime = time.UnixMicro(in).UTC()
		appendPlayer(out, &row)
		rows++
	}
	return rows, dups, nil
}

func (s *Stage) cdn(r arrow.RecordBatch, out *lake.Rows, fields []string) (rows, dups int, _ []string, err error) {
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
			if h, err = cloudfront.ParseHeader(raw); err != nil {
				// Bronze stores only headers it parsed, so only a bronze
				// written by something else leads here: keep the row with
				// its time and source, count the problem, never stall the
				// stage on one row.
				h = nil
			}
			s.headers[raw] = h
		}
		t := int64(times.Value(i))
		var row CDNRow
		var probs []Problem
		row, probs, fields = s.Transformer.CDNRowOf(h, raw, lines.Value(i), time.UnixMicro(t).UTC(), fields)
		in := int64(ingest.Value(i))
		if !s.keep(row.EventID, t, in, probs) {
			dups++
			continue
		}
		row.ObjectKey, row.LineNumber = keys.Value(i), numbers.Value(i)
		row.IngestTime = time.UnixMicro(in).UTC()
		appendCDN(out, &row)
		rows++
	}
	return rows, dups, fields, nil
}

// keep reports whether a row is new within the watermark, and counts the
// duplicates it drops and the values the transform left empty. ingest is
// when bronze read the row: the event time that moves the watermark is
// capped at ingest plus MaxClockSkew.
func (s *Stage) keep(id string, t, ingest int64, probs []Problem) bool {
	if !s.seen.add(idKey(id), s.capped(t, ingest)) {
		s.Observer.Duplicate(s.Silver.Name())
		return false
	}
	for _, p := range probs {
		s.Observer.InvalidValue(s.Silver.Name(), p.Field)
	}
	return true
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
