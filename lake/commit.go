package lake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/google/uuid"
)

// Snapshot summary keys written by qoslake.
//
// Every snapshot qoslake commits carries the table's whole checkpoint (all
// "qoslake.cp.*" keys), not only what that batch advanced: snapshot expiry
// may remove any older snapshot, and the current one is always kept.
const (
	summaryPrefix     = "qoslake."
	checkpointPrefix  = "qoslake.cp."
	summaryVersionKey = "qoslake.checkpoint-version"
	summaryVersion    = "1"
	// SummaryCommitID identifies the batch a snapshot holds, so a retry can
	// tell whether its batch already landed.
	SummaryCommitID = "qoslake.commit-id"
	// summaryLastRewriteKey is the sequence number of the last snapshot
	// that rewrote data files (compaction, a retention delete), carried
	// forward by every later snapshot like the checkpoint.
	summaryLastRewriteKey = "qoslake.last-rewrite-seq"
)

var (
	// ErrCheckpointMoved means another writer advanced one of the batch's
	// checkpoint keys past the position the batch started from. The batch
	// must be dropped (not retried): the caller resumes from Checkpoint.
	ErrCheckpointMoved = errors.New("checkpoint moved by another writer")
	// ErrConflictRetriesExhausted means the table kept changing under us.
	ErrConflictRetriesExhausted = errors.New("commit conflicts: retries exhausted")
)

// Checkpoint is the set of source positions a table's data covers, for
// example Kinesis shard id → last sequence number committed.
type Checkpoint map[string]string

// Position moves one checkpoint key from From (the value the batch was read
// after, "" when the key is new) to To; a To of "" removes the key (a
// source that is finished, such as an object read to its end).
type Position struct {
	Key, From, To string
}

// Batch is rows to append together with the checkpoint positions they
// advance. A batch lands exactly once or not at all.
type Batch struct {
	// ID names the batch in the snapshot summary; a random one is used when
	// empty.
	ID string
	// Records must match Table.ArrowSchema. Commit does not release them.
	Records []arrow.RecordBatch
	// Advance are checkpoint moves, checked and applied atomically with the
	// rows (compare-and-set per key).
	Advance []Position
	// Summary holds extra snapshot summary properties for this snapshot only
	// (for example the upstream snapshot a derived table consumed). Keys get
	// the "qoslake." prefix.
	Summary map[string]string
	// Strict makes every key have to be at its From: by default a batch
	// whose keys are all at To already counts as landed (another writer
	// committed the same positions), which is right only when the keys
	// describe all of the batch's rows.
	Strict bool
	// Guard, when set, is called before each commit attempt with the table
	// state the batch would be committed on; an error stops the commit
	// (wrapped in ErrGuard) and nothing lands. It checks what a checkpoint
	// cannot express, such as "no other writer committed this object".
	Guard func(ctx context.Context, s State) error
}

// Committed reports how a batch landed.
type Committed struct {
	SnapshotID int64
	Rows       int64
	// AlreadyLanded is true when the table already held this batch (a retry
	// after an unknown commit outcome, or another writer that committed the
	// same positions): nothing new was written.
	AlreadyLanded bool
	Attempts      int
}

// Retry bounds. Many writers on one table commit about once a second
// each; 25 attempts with capped, jittered backoff rides out tens of
// concurrent writers. A transient failure (a network error, throttling, a
// busy catalog) is retried fewer times: past that it is an outage, and the
// caller's restart with backoff is the better place to wait.
const (
	maxCommitAttempts    = 25
	maxTransientAttempts = 6
	minBackoff           = 20 * time.Millisecond
	maxBackoff           = 2 * time.Second
)

// ErrGuard wraps the error a Batch.Guard returned: the batch was not
// committed, and retrying it as it is would fail the same way.
var ErrGuard = errors.New("commit guard refused the batch")

// Commit writes the batch's rows as Parquet data files once and commits them
// with the advanced checkpoint. On a conflict with another writer it
// reloads the table, checks whether the batch already landed and whether
// its checkpoint keys are still where the batch started, runs the batch's
// guard again, and retries with capped, jittered backoff. Errors that no
// retry can fix (access denied, invalid metadata) are returned at once.
func (t *Table) Commit(ctx context.Context, b Batch) (Committed, error) {
	ctx = t.lake.ctx(ctx)
	if b.ID == "" {
		b.ID = uuid.NewString()
	}
	tbl := t.current()
	if err := checkAdvance(b.Advance); err != nil {
		return Committed{}, err
	}

	var rows int64
	for _, r := range b.Records {
		rows += r.NumRows()
	}
	files, err := t.writeFiles(ctx, tbl, b.Records)
	if err != nil {
		return Committed{}, err
	}
	return t.commitLoop(ctx, tbl, b, rows, func(ctx context.Context, tbl *table.Table, props iceberg.Properties) (*table.Transaction, error) {
		tx := tbl.NewTransaction()
		var err error
		if len(files) == 0 {
			// A batch of only checkpoint moves still needs a snapshot.
			err = tx.AddFiles(ctx, nil, props, false)
		} else {
			err = tx.AddDataFiles(ctx, files, props, table.WithoutDuplicateCheck())
		}
		return tx, err
	})
}

// stageFunc builds one commit attempt's transaction on tbl, the table as
// reloaded for that attempt, with the snapshot properties that carry the
// checkpoint forward (it may add to them).
type stageFunc func(ctx context.Context, tbl *table.Table, props iceberg.Properties) (*table.Transaction, error)

// commitLoop is the retry loop Commit and Replace share: find the batch's
// commit id, compare-and-set the checkpoint, run the guard, stage and
// commit, and on a conflict reload and start over.
func (t *Table) commitLoop(ctx context.Context, tbl *table.Table, b Batch, rows int64, stage stageFunc) (Committed, error) {
	base := tbl.CurrentSnapshot()
	transient := 0
	for attempt := 1; ; attempt++ {
		cp, err := checkpointOf(tbl)
		if err != nil {
			return Committed{}, fmt.Errorf("%s: %w", t.Name(), err)
		}
		if s := findCommit(tbl, base, b.ID); s != nil {
			return Committed{SnapshotID: s.SnapshotID, AlreadyLanded: true, Attempts: attempt}, nil
		}
		state := compareAdvance(cp, b.Advance)
		if b.Strict && state == advanceDone {
			state = advanceMoved
		}
		switch state {
		case advanceDone:
			t.lake.log.Info("batch positions already committed by another writer",
				"table", t.Name(), "batch", b.ID)
			return Committed{SnapshotID: tbl.CurrentSnapshot().SnapshotID, AlreadyLanded: true, Attempts: attempt}, nil
		case advanceMoved:
			if attempt == 1 {
				// The handle may be behind the catalog: look again before
				// telling the caller to start over.
				if tbl, err = t.Refresh(ctx); err != nil {
					return Committed{}, err
				}
				continue
			}
			return Committed{}, fmt.Errorf("%s: %w", t.Name(), ErrCheckpointMoved)
		}
		if b.Guard != nil {
			// Checked against the very state the commit is based on: a
			// writer that commits after this check makes our commit
			// conflict, and the guard runs again on the reload.
			if err := b.Guard(ctx, State{t: t, tbl: tbl}); err != nil {
				return Committed{}, fmt.Errorf("%s: %w: %w", t.Name(), ErrGuard, err)
			}
		}

		props := snapshotProps(tbl, cp, b)
		tx, err := stage(ctx, tbl, props)
		if err != nil {
			return Committed{}, fmt.Errorf("stage commit to %s: %w", t.Name(), err)
		}
		staged := tbl
		next, err := tx.Commit(ctx)
		commitErr := err
		if err == nil {
			t.set(next)
			t.lake.obs.Committed(t.Name(), rows)
			return Committed{SnapshotID: next.CurrentSnapshot().SnapshotID, Rows: rows, Attempts: attempt}, nil
		}
		if ctx.Err() != nil {
			return Committed{}, fmt.Errorf("commit to %s: %w", t.Name(), ctx.Err())
		}
		kind := classifyCommitError(err)
		if kind == commitFailed {
			return Committed{}, fmt.Errorf("commit to %s: %w", t.Name(), err)
		}
		if kind == commitTransient {
			// The outcome is unknown (the catalog may have applied it):
			// the reload below finds our commit id if it did.
			transient++
			t.lake.log.Warn("commit outcome unknown, checking", "table", t.Name(), "batch", b.ID, "error", err)
			if transient >= maxTransientAttempts {
				return Committed{}, fmt.Errorf("commit to %s after %d transient failures: %w", t.Name(), transient, err)
			}
		}
		if attempt >= maxCommitAttempts {
			return Committed{}, fmt.Errorf("%s after %d attempts: %w (last: %w)", t.Name(), attempt, ErrConflictRetriesExhausted, err)
		}
		if err := sleep(ctx, backoff(attempt)); err != nil {
			return Committed{}, err
		}
		if tbl, err = t.Refresh(ctx); err != nil {
			return Committed{}, err
		}
		if kind == commitConflict {
			if !errors.Is(commitErr, table.ErrCommitFailed) && tbl.MetadataLocation() == staged.MetadataLocation() {
				// A lost race leaves the table changed by someone else; this
				// one did not: the message matched, the cause is another.
				return Committed{}, fmt.Errorf("commit to %s: %w", t.Name(), commitErr)
			}
			t.lake.obs.Conflict(t.Name())
		}
	}
}

// State is a table as one commit attempt sees it, for a Batch.Guard.
type State struct {
	t   *Table
	tbl *table.Table
}

// Position is the state's current snapshot.
func (s State) Position() SnapshotPos { return positionOf(s.tbl) }

// ReadAppended reads what was appended after from up to this state (see
// Table.ReadAppended).
func (s State) ReadAppended(ctx context.Context, from SnapshotPos, o ReadOptions, fn func(arrow.RecordBatch) error) (Increment, error) {
	return s.t.readAppended(ctx, s.tbl, from, o, fn)
}

// Checkpoint is the state's checkpoint.
func (s State) Checkpoint() (Checkpoint, error) { return checkpointOf(s.tbl) }

func (t *Table) writeFiles(ctx context.Context, tbl *table.Table, recs []arrow.RecordBatch) ([]iceberg.DataFile, error) {
	var nonEmpty []arrow.RecordBatch
	for _, r := range recs {
		if r.NumRows() > 0 {
			nonEmpty = append(nonEmpty, r)
		}
	}
	if len(nonEmpty) == 0 {
		return nil, nil
	}
	seq := func(yield func(arrow.RecordBatch, error) bool) {
		for _, r := range nonEmpty {
			// WriteRecords releases what it consumes; the caller keeps its own
			// reference.
			r.Retain()
			if !yield(r, nil) {
				return
			}
		}
	}
	var files []iceberg.DataFile
	for df, err := range table.WriteRecords(ctx, tbl, nonEmpty[0].Schema(), seq) {
		if err != nil {
			return nil, fmt.Errorf("write data files for %s: %w", t.Name(), err)
		}
		files = append(files, df)
	}
	return files, nil
}

// Checkpoint returns the table's committed checkpoint as of the last load.
// Call Refresh first to see other writers' commits.
func (t *Table) Checkpoint() (Checkpoint, error) {
	return checkpointOf(t.current())
}

// SnapshotSummary returns the qoslake summary properties (without prefix) of
// the current snapshot, or nil for an empty table.
func (t *Table) SnapshotSummary() map[string]string {
	s := t.current().CurrentSnapshot()
	if s == nil || s.Summary == nil {
		return nil
	}
	out := map[string]string{}
	for k, v := range s.Summary.Properties {
		if strings.HasPrefix(k, summaryPrefix) {
			out[strings.TrimPrefix(k, summaryPrefix)] = v
		}
	}
	return out
}

// checkpointOf reads the checkpoint from the newest snapshot that carries
// one. Snapshots written by other tools (Spark compaction, say) carry none,
// so the walk goes back through parents until it finds one.
func checkpointOf(tbl *table.Table) (Checkpoint, error) {
	meta := tbl.Metadata()
	for s := meta.CurrentSnapshot(); s != nil; {
		if s.Summary != nil && s.Summary.Properties[summaryVersionKey] != "" {
			return checkpointFromProps(s.Summary.Properties), nil
		}
		if s.ParentSnapshotID == nil {
			break
		}
		parent := meta.SnapshotByID(*s.ParentSnapshotID)
		if parent == nil {
			// History expired before a checkpoint-bearing snapshot: starting
			// from scratch would duplicate everything.
			return nil, fmt.Errorf("no checkpoint in the retained snapshot history (snapshot %d has no qoslake summary and its parent %d is expired)",
				s.SnapshotID, *s.ParentSnapshotID)
		}
		s = parent
	}
	return Checkpoint{}, nil
}

// lastRewriteOf is the sequence number of the last qoslake snapshot that
// rewrote data files, as carried by the newest qoslake snapshot; 0 when none
// did.
func lastRewriteOf(tbl *table.Table) int64 {
	meta := tbl.Metadata()
	for s := meta.CurrentSnapshot(); s != nil; {
		if s.Summary != nil && s.Summary.Properties[summaryVersionKey] != "" {
			n, _ := strconv.ParseInt(s.Summary.Properties[summaryLastRewriteKey], 10, 64) // absent: none
			return n
		}
		if s.ParentSnapshotID == nil {
			return 0
		}
		s = meta.SnapshotByID(*s.ParentSnapshotID)
	}
	return 0
}

func checkpointFromProps(p iceberg.Properties) Checkpoint {
	cp := Checkpoint{}
	for k, v := range p {
		if strings.HasPrefix(k, checkpointPrefix) {
			cp[strings.TrimPrefix(k, checkpointPrefix)] = v
		}
	}
	return cp
}

// checkpointProps renders a whole checkpoint as summary properties.
func checkpointProps(cp Checkpoint) iceberg.Properties {
	props := iceberg.Properties{summaryVersionKey: summaryVersion}
	for k, v := range cp {
		props[checkpointPrefix+k] = v
	}
	return props
}

func snapshotProps(tbl *table.Table, cp Checkpoint, b Batch) iceberg.Properties {
	next := Checkpoint{}
	for k, v := range cp {
		next[k] = v
	}
	for _, p := range b.Advance {
		if p.To == "" {
			delete(next, p.Key)
			continue
		}
		next[p.Key] = p.To
	}
	props := checkpointProps(next)
	if last := lastRewriteOf(tbl); last > 0 {
		props[summaryLastRewriteKey] = strconv.FormatInt(last, 10)
	}
	props[SummaryCommitID] = b.ID
	for k, v := range b.Summary {
		props[summaryPrefix+k] = v
	}
	return props
}

// findCommit looks for a snapshot committed after base that holds batch id.
func findCommit(tbl *table.Table, base *table.Snapshot, id string) *table.Snapshot {
	meta := tbl.Metadata()
	for s := meta.CurrentSnapshot(); s != nil; {
		if base != nil && s.SnapshotID == base.SnapshotID {
			return nil
		}
		if s.Summary != nil && s.Summary.Properties[SummaryCommitID] == id {
			return s
		}
		if s.ParentSnapshotID == nil {
			return nil
		}
		s = meta.SnapshotByID(*s.ParentSnapshotID)
	}
	return nil
}

type advanceState int

const (
	advanceReady advanceState = iota // every key is at From
	advanceDone                      // every key is already at To
	advanceMoved                     // some key is elsewhere
)

func compareAdvance(cp Checkpoint, adv []Position) advanceState {
	if len(adv) == 0 {
		return advanceReady
	}
	atFrom, atTo := 0, 0
	for _, p := range adv {
		switch cp[p.Key] {
		case p.From:
			atFrom++
		case p.To:
			atTo++
		}
	}
	switch {
	case atFrom == len(adv):
		return advanceReady
	case atTo == len(adv):
		return advanceDone
	default:
		return advanceMoved
	}
}

func checkAdvance(adv []Position) error {
	keys := make([]string, 0, len(adv))
	for _, p := range adv {
		if p.Key == "" || (p.To == "" && p.From == "") {
			return fmt.Errorf("checkpoint position %+v: key and a value must be set", p)
		}
		if p.From == p.To {
			return fmt.Errorf("checkpoint position %s: does not move (%s)", p.Key, p.To)
		}
		keys = append(keys, p.Key)
	}
	slices.Sort(keys)
	for i := 1; i < len(keys); i++ {
		if keys[i] == keys[i-1] {
			return fmt.Errorf("checkpoint key %s moved twice in one batch", keys[i])
		}
	}
	return nil
}

type commitErrorKind int

const (
	commitConflict  commitErrorKind = iota // another writer changed the table first; nothing applied
	commitTransient                        // may or may not have applied; reload and look
	commitFailed                           // no retry can fix it
)

// classifyCommitError says what a failed catalog commit means for a retry.
//
// The SQL and Glue catalogs report a lost race in two ways: wrapped in
// table.ErrCommitFailed (the catalog row or Glue version moved), or as the
// plain error of a failed requirement when they validate the commit against
// the table they load ("requirement failed: branch main has changed: ...").
// iceberg-go v0.7.0 gives no type for the second, so its message is matched,
// narrowly; the caller then confirms the table really changed.
func classifyCommitError(err error) commitErrorKind {
	if errors.Is(err, table.ErrCommitFailed) {
		return commitConflict
	}
	msg := strings.ToLower(err.Error())
	if strings.Contains(msg, "requirement failed:") &&
		(strings.Contains(msg, "has changed") || strings.Contains(msg, "concurrently") || strings.Contains(msg, "is missing")) {
		return commitConflict
	}
	if isTransient(err) {
		return commitTransient
	}
	return commitFailed
}

// isTransient reports failures worth trying again: the SDK's own view of
// retryable AWS errors (throttling, 5xx, connection resets), network
// timeouts, a cut connection, and a busy SQLite catalog.
func isTransient(err error) bool {
	if retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err) == aws.TrueTernary {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "database is locked") || strings.Contains(msg, "sqlite_busy")
}

// backoff is capped exponential with full jitter.
func backoff(attempt int) time.Duration {
	d := minBackoff << min(attempt-1, 10)
	if d > maxBackoff {
		d = maxBackoff
	}
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}
