package lake

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
)

// Column declares one top-level column of a table.
type Column struct {
	Name     string
	Type     iceberg.Type
	Required bool
	Doc      string
}

// PartitionField declares one partition field: a source column and an
// Iceberg transform (identity, day, hour, ...).
type PartitionField struct {
	Column    string
	Transform iceberg.Transform
	Name      string
}

// TableDef is a table as the code expects it. Ensure creates it, or brings an
// existing table up to it by adding the columns it lacks.
type TableDef struct {
	Namespace string
	Name      string
	Doc       string
	Columns   []Column
	Partition []PartitionField
	// Properties are set at creation (for example write.parquet.compression-codec).
	Properties map[string]string
	// SortOrder is the table's write order, set at creation: writers sort
	// the rows of each data file by it, so engines reading a gold table
	// (Athena, Trino, DuckDB) skip files and row groups by window and key.
	SortOrder []SortKey
}

// SortKey is one column of a table's sort order.
type SortKey struct {
	Column     string
	Descending bool
}

// FullName is "namespace.name", the name users query.
func (d TableDef) FullName() string { return d.Namespace + "." + d.Name }

func (d TableDef) ident() table.Identifier { return table.Identifier{d.Namespace, d.Name} }

func (d TableDef) schema() *iceberg.Schema {
	fields := make([]iceberg.NestedField, len(d.Columns))
	for i, c := range d.Columns {
		fields[i] = iceberg.NestedField{ID: i + 1, Name: c.Name, Type: c.Type, Required: c.Required, Doc: c.Doc}
	}
	return iceberg.NewSchema(0, fields...)
}

func (d TableDef) spec(sc *iceberg.Schema) (iceberg.PartitionSpec, error) {
	opts := make([]iceberg.PartitionOption, 0, len(d.Partition))
	for _, p := range d.Partition {
		opts = append(opts, iceberg.AddPartitionFieldByName(p.Column, p.Name, p.Transform, sc, nil))
	}
	return iceberg.NewPartitionSpecOpts(opts...)
}

// Properties every qoslake table gets. Commit retries are switched off in
// iceberg-go because its replay would re-submit a stale checkpoint: Table.Commit
// reloads, re-checks the checkpoint and retries itself.
var baseProperties = map[string]string{
	table.CommitNumRetriesKey:                 "0",
	table.ParquetCompressionKey:               "zstd",
	"format-version":                          "2",
	table.MetadataDeleteAfterCommitEnabledKey: "true",
	table.MetadataPreviousVersionsMaxKey:      "20",
	// Version-1 data pages: every Parquet reader (older Athena/Hive and
	// Spark releases, pyarrow, DuckDB) reads them, and iceberg-go writes
	// version 2 by default.
	table.ParquetPageVersionKey: "1",
}

// Table is a handle on one declared table. It is safe for concurrent use;
// each Commit works on a fresh load when it has to.
type Table struct {
	lake *Lake
	def  TableDef

	// ensured is what Ensure did: created, evolved or existed.
	ensured string
	// drift is how the existing table differs from its declaration.
	drift []string

	mu  sync.Mutex
	tbl *table.Table
}

// Ensure creates the namespace and table when missing, or adds the declared
// columns an existing table lacks (schema evolution). A declared column whose
// type differs from the table's is an error that names both types: that
// change needs a migration, not a silent rewrite.
func (l *Lake) Ensure(ctx context.Context, def TableDef) (*Table, error) {
	ctx = l.ctx(ctx)
	if err := l.cat.CreateNamespace(ctx, table.Identifier{def.Namespace}, nil); err != nil &&
		!errors.Is(err, catalog.ErrNamespaceAlreadyExists) {
		return nil, fmt.Errorf("create namespace %s: %w", def.Namespace, err)
	}
	tbl, err := l.cat.LoadTable(ctx, def.ident())
	ensured := "exists"
	switch {
	case errors.Is(err, catalog.ErrNoSuchTable):
		tbl, err = l.create(ctx, def)
		if err != nil {
			return nil, err
		}
		ensured = "created"
	case err != nil:
		return nil, fmt.Errorf("load %s: %w", def.FullName(), err)
	default:
		before := tbl.Schema().ID
		tbl, err = l.evolve(ctx, def, tbl)
		if err != nil {
			return nil, err
		}
		if tbl.Schema().ID != before {
			ensured = "updated"
		}
	}
	drift := driftOf(def, tbl)
	for _, d := range drift {
		// Not fixed here: changing a partition spec, sort order or write
		// property of a table people query is a migration to decide on.
		l.log.Warn("table differs from its declaration", "table", def.FullName(), "drift", d)
	}
	return &Table{lake: l, def: def, tbl: tbl, ensured: ensured, drift: drift}, nil
}

// Load opens an existing table by its "namespace.name" without a declaration,
// for inspection commands.
func (l *Lake) Load(ctx context.Context, fullName string) (*Table, error) {
	ns, name, ok := strings.Cut(fullName, ".")
	if !ok {
		return nil, fmt.Errorf("table %q: want namespace.name", fullName)
	}
	tbl, err := l.cat.LoadTable(l.ctx(ctx), table.Identifier{ns, name})
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", fullName, err)
	}
	return &Table{lake: l, def: TableDef{Namespace: ns, Name: name}, tbl: tbl}, nil
}

// List returns "namespace.name" of every table in the catalog.
func (l *Lake) List(ctx context.Context) ([]string, error) {
	ctx = l.ctx(ctx)
	nss, err := l.cat.ListNamespaces(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	var out []string
	for _, ns := range nss {
		for id, err := range l.cat.ListTables(ctx, ns) {
			if err != nil {
				return nil, fmt.Errorf("list tables in %s: %w", strings.Join(ns, "."), err)
			}
			out = append(out, strings.Join(id, "."))
		}
	}
	return out, nil
}

func (l *Lake) create(ctx context.Context, def TableDef) (*table.Table, error) {
	sc := def.schema()
	spec, err := def.spec(sc)
	if err != nil {
		return nil, fmt.Errorf("partition spec of %s: %w", def.FullName(), err)
	}
	props := iceberg.Properties{}
	for k, v := range baseProperties {
		props[k] = v
	}
	for k, v := range def.Properties {
		props[k] = v
	}
	if def.Doc != "" {
		props["comment"] = def.Doc
	}
	order, err := def.sortOrder(sc)
	if err != nil {
		return nil, fmt.Errorf("sort order of %s: %w", def.FullName(), err)
	}
	tbl, err := l.cat.CreateTable(ctx, def.ident(), sc,
		catalog.WithPartitionSpec(&spec),
		catalog.WithSortOrder(order),
		catalog.WithProperties(props),
		catalog.WithLocation(l.warehouse+"/"+def.Namespace+"/"+def.Name))
	if errors.Is(err, catalog.ErrTableAlreadyExists) {
		// Another process created it between our load and create.
		tbl, err = l.cat.LoadTable(ctx, def.ident())
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", def.FullName(), err)
		}
		return l.evolve(ctx, def, tbl)
	}
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", def.FullName(), err)
	}
	l.log.Info("table created", "table", def.FullName(), "location", tbl.Location())
	return tbl, nil
}

func (l *Lake) evolve(ctx context.Context, def TableDef, tbl *table.Table) (*table.Table, error) {
	current := tbl.Schema()
	var missing []Column
	for _, c := range def.Columns {
		f, ok := current.FindFieldByName(c.Name)
		if !ok {
			missing = append(missing, c)
			continue
		}
		if !f.Type.Equals(c.Type) {
			return nil, fmt.Errorf("%s column %s is %s in the table but %s in the code: change it with a migration",
				def.FullName(), c.Name, f.Type, c.Type)
		}
	}
	if len(missing) == 0 {
		return tbl, nil
	}
	tx := tbl.NewTransaction()
	upd := tx.UpdateSchema(true, false)
	names := make([]string, len(missing))
	for i, c := range missing {
		// New columns are optional whatever the declaration says: rows
		// written before the change have no value for them.
		upd = upd.AddColumn([]string{c.Name}, c.Type, c.Doc, false, nil)
		names[i] = c.Name
	}
	if err := upd.Commit(); err != nil {
		return nil, fmt.Errorf("add columns %v to %s: %w", names, def.FullName(), err)
	}
	next, err := tx.Commit(ctx)
	if err != nil {
		return nil, fmt.Errorf("add columns %v to %s: %w", names, def.FullName(), err)
	}
	l.log.Info("table schema evolved", "table", def.FullName(), "added_columns", names)
	return next, nil
}

// Ensured says what Ensure did to the table: "created", "updated" (columns
// added) or "exists".
func (t *Table) Ensured() string { return t.ensured }

// Name is "namespace.name".
func (t *Table) Name() string { return t.def.FullName() }

// current returns the last loaded state of the table.
func (t *Table) current() *table.Table {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.tbl
}

func (t *Table) set(tbl *table.Table) {
	t.mu.Lock()
	defer t.mu.Unlock()
	// Keep the newest: a slow commit must not roll the handle back. Newest
	// is the higher last sequence number, which the catalog orders; the
	// last-updated time is the committing host's wall clock, and with skew
	// between hosts it would refuse a fresher state. At an equal sequence
	// number (a maintenance commit that adds no snapshot, such as expiry)
	// the state just loaded or committed wins.
	if t.tbl == nil || tbl.Metadata().LastSequenceNumber() >= t.tbl.Metadata().LastSequenceNumber() {
		t.tbl = tbl
	}
}

// Refresh reloads the table from the catalog.
func (t *Table) Refresh(ctx context.Context) (*table.Table, error) {
	tbl, err := t.lake.cat.LoadTable(t.lake.ctx(ctx), t.def.ident())
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", t.Name(), err)
	}
	// A commit through this handle may have landed while the load was in
	// flight: keep whichever state is newer.
	t.set(tbl)
	return t.current(), nil
}

// ArrowSchema is the Arrow schema writers must produce for this table, with
// Iceberg field ids attached.
func (t *Table) ArrowSchema() (*arrow.Schema, error) {
	return table.SchemaToArrowSchema(t.current().Schema(), nil, true, false)
}

// Iceberg exposes the loaded iceberg-go table for read-only use.
func (t *Table) Iceberg() *table.Table { return t.current() }
