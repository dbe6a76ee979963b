package lake

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
)

// Drift lists how the existing table differs from its declaration in
// partition spec, sort order and declared properties, one readable line
// each; nil when it matches or the table was created by this Ensure. Ensure
// reports drift (and logs it at WARN) rather than fixing it: such a change
// rewrites how data is laid out, which is a migration, not a start-up step.
func (t *Table) Drift() []string { return slices.Clone(t.drift) }

// sortOrder builds the declared sort order against sc. Nulls sort first
// ascending and last descending, Iceberg's defaults.
func (d TableDef) sortOrder(sc *iceberg.Schema) (table.SortOrder, error) {
	if len(d.SortOrder) == 0 {
		return table.UnsortedSortOrder, nil
	}
	fields := make([]table.SortField, len(d.SortOrder))
	for i, k := range d.SortOrder {
		f, ok := sc.FindFieldByName(k.Column)
		if !ok {
			return table.SortOrder{}, fmt.Errorf("no column %q", k.Column)
		}
		fields[i] = table.SortField{SourceIDs: []int{f.ID}, Transform: iceberg.IdentityTransform{}, Direction: table.SortASC, NullOrder: table.NullsFirst}
		if k.Descending {
			fields[i].Direction, fields[i].NullOrder = table.SortDESC, table.NullsLast
		}
	}
	return table.NewSortOrder(table.InitialSortOrderID, fields)
}

// declaredProperties are the properties a declared table is created with.
func (d TableDef) declaredProperties() map[string]string {
	props := maps.Clone(baseProperties)
	maps.Copy(props, d.Properties)
	if d.Doc != "" {
		props["comment"] = d.Doc
	}
	return props
}

func driftOf(def TableDef, tbl *table.Table) []string {
	var drift []string
	sc := tbl.Schema()
	colName := func(id int) string {
		if n, ok := sc.FindColumnName(id); ok {
			return n
		}
		return "#" + strconv.Itoa(id)
	}

	spec := tbl.Spec()
	var have, want []string
	for _, f := range spec.Fields() {
		have = append(have, fmt.Sprintf("%s=%s(%s)", f.Name, f.Transform, colName(f.SourceID())))
	}
	for _, p := range def.Partition {
		name := p.Name
		if name == "" {
			name = p.Column
		}
		want = append(want, fmt.Sprintf("%s=%s(%s)", name, p.Transform, p.Column))
	}
	if !slices.Equal(have, want) {
		drift = append(drift, fmt.Sprintf("partition spec is [%s], declared [%s]", strings.Join(have, " "), strings.Join(want, " ")))
	}

	have, want = nil, nil
	for _, f := range tbl.SortOrder().Fields() {
		have = append(have, fmt.Sprintf("%s(%s) %s %s", f.Transform, colName(f.SourceID()), f.Direction, f.NullOrder))
	}
	for _, k := range def.SortOrder {
		dir, nulls := table.SortASC, table.NullsFirst
		if k.Descending {
			dir, nulls = table.SortDESC, table.NullsLast
		}
		want = append(want, fmt.Sprintf("%s(%s) %s %s", iceberg.IdentityTransform{}, k.Column, dir, nulls))
	}
	if !slices.Equal(have, want) {
		drift = append(drift, fmt.Sprintf("sort order is [%s], declared [%s]", strings.Join(have, ", "), strings.Join(want, ", ")))
	}

	props := tbl.Properties()
	declared := def.declaredProperties()
	for _, k := range slices.Sorted(maps.Keys(declared)) {
		want := declared[k]
		got, ok := props[k]
		if k == "format-version" {
			// Not kept as a property: it is the metadata's version.
			got, ok = strconv.Itoa(tbl.Metadata().Version()), true
		}
		switch {
		case !ok:
			drift = append(drift, fmt.Sprintf("property %s is unset, declared %q", k, want))
		case got != want:
			drift = append(drift, fmt.Sprintf("property %s is %q, declared %q", k, got, want))
		}
	}
	return drift
}
