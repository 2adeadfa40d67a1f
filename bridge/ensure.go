package bridge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// ChangeKind names a schema change EnsureTable made.
type ChangeKind string

// The changes EnsureTable can make. There is deliberately no kind for
// dropping, narrowing or retyping: those are never done.
const (
	CreatedSequence ChangeKind = "create sequence"
	CreatedTable    ChangeKind = "create table"
	AddedColumn     ChangeKind = "add column"
	AddedIndex      ChangeKind = "add index"
	AddedUnique     ChangeKind = "add unique index"
)

// Change is one statement EnsureTable ran.
type Change struct {
	Kind   ChangeKind
	Table  string
	Target string // column, index or sequence name
	SQL    string
}

func (c Change) String() string { return fmt.Sprintf("%s %s on %s", c.Kind, c.Target, c.Table) }

// Mismatch is a column that exists with a definition other than the
// doctype's. EnsureTable leaves it as it is; the report says how it differs.
type Mismatch struct {
	Column string
	Want   string // Frappe's definition for the field
	Have   string // what the database has
	Reason string
}

// EnsureReport says what EnsureTable found and did.
type EnsureReport struct {
	Table   string
	Created bool     // the table did not exist and was created
	Changes []Change // statements run, in order
	// Mismatches lists doctype columns whose type, nullability or default
	// differ on this site. They are reported, never altered.
	Mismatches []Mismatch
	// SiteColumns are columns the doctype does not define: the site's own
	// custom fields or retired fields. They are never touched.
	SiteColumns []string
}

// Changed reports whether EnsureTable modified the schema.
func (r *EnsureReport) Changed() bool { return len(r.Changes) > 0 }

// EnsureTable brings dt's table on db up to the layout Frappe v15 would
// give it, online and additively: it creates the table when it is missing,
// and otherwise adds missing columns, unique indexes and indexes. It never
// drops, narrows, retypes or renames anything, and leaves columns it does
// not know untouched. The real current layout is read from
// information_schema. Statements run one by one (MariaDB commits DDL
// implicitly anyway); every statement is idempotent, so running EnsureTable
// again after a failure finishes the job. Errors (for example duplicate
// values blocking a unique index) are collected; the report lists what was
// done either way.
func EnsureTable(ctx context.Context, db *DB, dt *DocType) (*EnsureReport, error) {
	d := db.Dialect()
	spec, err := NewTableSpec(d, dt)
	if err != nil {
		return nil, err
	}
	rep := &EnsureReport{Table: spec.Name}
	run := func(kind ChangeKind, target, stmt string) error {
		if _, err := db.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("%w: %s %s on %s: %v", ErrSchema, kind, target, spec.Name, err)
		}
		rep.Changes = append(rep.Changes, Change{Kind: kind, Table: spec.Name, Target: target, SQL: stmt})
		return nil
	}

	info, err := InspectTable(ctx, db, spec.Name)
	if errors.Is(err, ErrNotFound) {
		stmts := spec.CreateSQL(true)
		if spec.Sequence != "" {
			if err := run(CreatedSequence, spec.Sequence, stmts[0]); err != nil {
				return rep, err
			}
			stmts = stmts[1:]
		}
		// On PostgreSQL the index statements follow; they are added below,
		// where a name already taken by another table is handled.
		if err := run(CreatedTable, spec.Name, stmts[0]); err != nil {
			return rep, err
		}
		rep.Created = true
		info, err = InspectTable(ctx, db, spec.Name)
	}
	if err != nil {
		return rep, err
	}

	var errs []error
	for i := range spec.Columns {
		c := &spec.Columns[i]
		have := info.Column(d, c.Name)
		if have == nil {
			if c.PrimaryKey {
				errs = append(errs, fmt.Errorf("%w: %s has no primary key column %q; it was not created by Frappe — fix the table by hand", ErrSchema, spec.Name, c.Name))
				continue
			}
			stmt := "alter table " + d.mustQuote(spec.Name) + " add column if not exists " + d.mustQuote(c.Name) + " " + c.Definition()
			if err := run(AddedColumn, c.Name, stmt); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if m, ok := compareColumn(d, c, have); !ok {
			rep.Mismatches = append(rep.Mismatches, m)
		}
	}
	known := make(map[string]bool, len(spec.Columns))
	for _, c := range spec.Columns {
		known[strings.ToLower(c.Name)] = true
	}
	for _, c := range info.Columns {
		if !known[strings.ToLower(c.Name)] {
			rep.SiteColumns = append(rep.SiteColumns, c.Name)
		}
	}

	// Indexes, re-reading the table so columns added above are seen.
	if info, err = InspectTable(ctx, db, spec.Name); err != nil {
		return rep, errors.Join(append(errs, err)...)
	}
	for _, want := range wantedIndexes(spec) {
		if info.Column(d, want.column) == nil || info.HasIndexOn(d, want.column, want.unique) {
			continue
		}
		stmt, name, err := indexStatement(ctx, db, spec, want)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		kind := AddedIndex
		if want.unique {
			kind = AddedUnique
		}
		if err := run(kind, name, stmt); err != nil {
			errs = append(errs, err)
		}
	}

	// IF NOT EXISTS skips silently when a name is taken; check the result.
	if len(rep.Changes) > 0 {
		if info, err = InspectTable(ctx, db, spec.Name); err != nil {
			return rep, errors.Join(append(errs, err)...)
		}
		for _, c := range spec.Columns {
			if info.Column(d, c.Name) == nil {
				errs = append(errs, fmt.Errorf("%w: column %s.%s is still missing after ALTER TABLE", ErrSchema, spec.Name, c.Name))
			}
		}
		for _, want := range wantedIndexes(spec) {
			if info.Column(d, want.column) != nil && !info.HasIndexOn(d, want.column, want.unique) {
				errs = append(errs, fmt.Errorf("%w: index on %s.%s is still missing after CREATE INDEX", ErrSchema, spec.Name, want.column))
			}
		}
	}
	return rep, errors.Join(errs...)
}

type wantedIndex struct {
	column string
	unique bool
	name   string // Frappe's name when adding it to an existing table
}

// wantedIndexes lists the single-column indexes dt's table must have:
// unique fields, search_index fields, and the standard ones. Names follow
// Frappe's ALTER path: MariaDB "<field>_index" and unique "<field>",
// PostgreSQL "<field>" and unique "unique_<field>" (mariadb/schema.py and
// postgres/schema.py alter()).
func wantedIndexes(spec *TableSpec) []wantedIndex {
	var out []wantedIndex
	for _, c := range spec.Columns {
		if c.Unique {
			name := c.Name
			if spec.Dialect == Postgres {
				name = "unique_" + c.Name
			}
			out = append(out, wantedIndex{column: c.Name, unique: true, name: name})
		}
	}
	for _, ix := range spec.Indexes {
		if len(ix.Columns) != 1 {
			continue
		}
		col := ix.Columns[0]
		name := col
		if spec.Dialect == MariaDB && spec.Column(col) != nil && spec.Column(col).Field != nil {
			name = col + "_index"
		}
		out = append(out, wantedIndex{column: col, name: name})
	}
	return out
}

func indexStatement(ctx context.Context, db *DB, spec *TableSpec, w wantedIndex) (stmt, name string, err error) {
	d := spec.Dialect
	name = w.name
	if d == MariaDB {
		kind := "index"
		if w.unique {
			kind = "unique index"
		}
		if _, err := d.QuoteIdent(name); err != nil {
			name = fallbackIndexName(spec.Name, w.column, w.unique)
		}
		return "alter table " + d.mustQuote(spec.Name) + " add " + kind + " if not exists " + d.mustQuote(name) + " (" + d.mustQuote(w.column) + ")", name, nil
	}
	// PostgreSQL index names share one namespace per schema; Frappe's
	// per-field names collide across tables (two doctypes with an indexed
	// item_name), and CREATE INDEX IF NOT EXISTS would then skip silently.
	free, err := pgRelationNameFree(ctx, db, name)
	if err != nil {
		return "", "", err
	}
	if _, qerr := d.QuoteIdent(name); !free || qerr != nil {
		name = fallbackIndexName(spec.Name, w.column, w.unique)
	}
	kind := "index"
	if w.unique {
		kind = "unique index"
	}
	return "create " + kind + " if not exists " + d.mustQuote(name) + " on " + d.mustQuote(spec.Name) + " (" + d.mustQuote(w.column) + ")", name, nil
}

// fallbackIndexName is a name unique to the table and column, shortened
// with a hash to fit identifier limits.
func fallbackIndexName(table, column string, unique bool) string {
	suffix := "_idx"
	if unique {
		suffix = "_key"
	}
	name := table + "_" + column + suffix
	if len(name) <= maxIdentBytes {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	h := "_" + hex.EncodeToString(sum[:4])
	keep := maxIdentBytes - len(h) - len(suffix)
	b := []byte(table + "_" + column)
	for keep > 0 && keep < len(b) && b[keep]&0xC0 == 0x80 {
		keep-- // do not cut a UTF-8 sequence
	}
	return string(b[:keep]) + h + suffix
}

func pgRelationNameFree(ctx context.Context, q Querier, name string) (bool, error) {
	var n int64
	err := queryRow(ctx, q, `SELECT COUNT(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relname = $1`, []any{name}, &n)
	if err != nil {
		return false, fmt.Errorf("bridge: look up relation %q: %w", name, err)
	}
	return n == 0, nil
}

// compareColumn says how an existing column differs from Frappe's.
func compareColumn(d Dialect, want *Column, have *ColumnInfo) (Mismatch, bool) {
	var reasons []string
	wantType := canonicalType(d, want.Type)
	haveType := canonicalType(d, have.Type)
	if wantType != haveType {
		r := fmt.Sprintf("type is %s, Frappe's is %s", haveType, wantType)
		if wl, hl, ok := varcharLens(wantType, haveType); ok && hl < wl {
			r += fmt.Sprintf(" — values longer than %d characters will be rejected; widen the column on this site", hl)
		}
		reasons = append(reasons, r)
	}
	wantNotNull := want.NotNull || want.PrimaryKey
	if wantNotNull == have.Nullable {
		if have.Nullable {
			reasons = append(reasons, "column is nullable, Frappe's is NOT NULL")
		} else {
			reasons = append(reasons, "column is NOT NULL, Frappe's is nullable")
		}
	}
	if !want.PrimaryKey && !sameDefault(d, want.Default, have.Default) {
		w, h := "none", "none"
		if want.Default != nil {
			w = want.Default.Literal
		}
		if have.Default != nil {
			h = *have.Default
		}
		reasons = append(reasons, fmt.Sprintf("default is %s, Frappe's is %s", h, w))
	}
	if len(reasons) == 0 {
		return Mismatch{}, true
	}
	haveDef := have.Type
	if !have.Nullable {
		haveDef += " not null"
	}
	if have.Default != nil {
		haveDef += " default " + *have.Default
	}
	return Mismatch{Column: want.Name, Want: want.Definition(), Have: haveDef, Reason: strings.Join(reasons, "; ")}, false
}

func varcharLens(want, have string) (int, int, bool) {
	var w, h int
	if _, err := fmt.Sscanf(want, "varchar(%d)", &w); err != nil {
		return 0, 0, false
	}
	if _, err := fmt.Sscanf(have, "varchar(%d)", &h); err != nil {
		return 0, 0, false
	}
	return w, h, true
}
