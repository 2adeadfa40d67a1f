package bridge

import (
	"fmt"
	"strconv"
	"strings"
)

// Column is one column of a table exactly as Frappe v15 would create it.
type Column struct {
	Name       string
	Type       string // SQL type as written in DDL: "varchar(140)", "int(1)", "bigint", "timestamp"
	NotNull    bool
	PrimaryKey bool
	Unique     bool      // column-level UNIQUE constraint
	Default    *Default  // nil: no DEFAULT clause
	Field      *DocField // the DocField behind the column; nil for standard columns
}

// Default is a column default. Literal is what goes into DDL; Value is the
// plain value, used to compare with what information_schema reports.
type Default struct {
	Literal string // "0", "'Purchase'"
	Value   string // "0", "Purchase"
	Numeric bool
}

// Definition renders the column definition after the name, as Frappe does:
// "varchar(140) default 'x' unique", "int(1) not null default 0".
func (c *Column) Definition() string {
	var b strings.Builder
	b.WriteString(c.Type)
	if c.PrimaryKey {
		b.WriteString(" primary key")
	}
	if c.NotNull {
		b.WriteString(" not null")
	}
	if c.Default != nil {
		b.WriteString(" default ")
		b.WriteString(c.Default.Literal)
	}
	if c.Unique {
		b.WriteString(" unique")
	}
	return b.String()
}

// Index is a secondary index.
type Index struct {
	Name    string
	Columns []string
	Unique  bool
}

// TableSpec is the table Frappe v15 creates for a doctype on one dialect.
// Build it with NewTableSpec; CreateSQL renders it.
type TableSpec struct {
	Dialect Dialect
	DocType string
	Name    string // "tab" + DocType
	Columns []Column
	// Indexes are the non-unique indexes of Frappe's CREATE: search_index
	// fields, plus parent (child tables) or modified (others) on MariaDB.
	// Unique fields are column constraints (Column.Unique), not listed here.
	Indexes []Index
	// Sequence is the name of the sequence an autoincrement doctype draws
	// its names from; "" otherwise.
	Sequence string
	// MariaDB table options; empty on PostgreSQL.
	Engine, RowFormat, Charset, Collation string
}

// Column returns the column named name, or nil.
func (t *TableSpec) Column(name string) *Column {
	for i := range t.Columns {
		if t.Columns[i].Name == name {
			return &t.Columns[i]
		}
	}
	return nil
}

// Frappe's MariaDB table options (mariadb/schema.py MariaDBTable.create).
const (
	mariadbCharset   = "utf8mb4"
	mariadbCollation = "utf8mb4_unicode_ci"
)

var (
	allowedEngines    = map[string]string{"innodb": "InnoDB", "myisam": "MyISAM"}
	allowedRowFormats = map[string]string{"dynamic": "DYNAMIC", "compressed": "COMPRESSED", "compact": "COMPACT", "redundant": "REDUNDANT"}
)

// NewTableSpec builds the table Frappe v15 would create for dt on d: the
// standard columns, one column per value field (custom fields included),
// the optional columns of non-child tables, child-table columns, indexes
// and table options. Every identifier is validated and quotable on d.
func NewTableSpec(d Dialect, dt *DocType) (*TableSpec, error) {
	if err := d.valid(); err != nil {
		return nil, err
	}
	if err := dt.Validate(); err != nil {
		return nil, err
	}
	if !dt.HasTable() {
		kind := "a Single (its values live in tabSingles)"
		if dt.IsVirtual {
			kind = "virtual"
		}
		return nil, fmt.Errorf("%w: %s is %s", ErrNoTable, dt.Name, kind)
	}
	t := &TableSpec{Dialect: d, DocType: dt.Name, Name: dt.Table()}
	if _, err := d.QuoteIdent(t.Name); err != nil {
		return nil, fmt.Errorf("%w (table of doctype %s)", err, dt.Name)
	}

	// Standard columns, as in MariaDBTable.create / PostgresTable.create.
	vc := "varchar(" + strconv.Itoa(varcharLen) + ")"
	name := Column{Name: "name", Type: vc, PrimaryKey: true}
	if dt.Autoname == "autoincrement" {
		name.Type = "bigint"
		t.Sequence = scrub(dt.Name + "_id_seq")
	}
	zero := &Default{Literal: "'0'", Value: "0", Numeric: true}
	if d == MariaDB {
		t.Columns = append(t.Columns, name,
			Column{Name: "creation", Type: "datetime(6)"},
			Column{Name: "modified", Type: "datetime(6)"},
			Column{Name: "modified_by", Type: vc},
			Column{Name: "owner", Type: vc},
			Column{Name: "docstatus", Type: "int(1)", NotNull: true, Default: zero},
			Column{Name: "idx", Type: "int(8)", NotNull: true, Default: zero},
		)
	} else {
		t.Columns = append(t.Columns, name,
			Column{Name: "creation", Type: "timestamp(6)"},
			Column{Name: "modified", Type: "timestamp(6)"},
			Column{Name: "modified_by", Type: vc},
			Column{Name: "owner", Type: vc},
			Column{Name: "docstatus", Type: "smallint", NotNull: true, Default: zero},
			Column{Name: "idx", Type: "bigint", NotNull: true, Default: zero},
		)
	}

	// Field columns, then the optional columns (DBTable.get_columns_from_docfields).
	for _, f := range dt.ColumnFields() {
		if isOptionalColumn(f.Fieldname) {
			return nil, fmt.Errorf("%w: %s.%s: %q is a Frappe standard column; rename the field", ErrInvalidName, dt.Name, f.Fieldname, f.Fieldname)
		}
		c, err := fieldColumn(d, f)
		if err != nil {
			return nil, fmt.Errorf("%w (doctype %s)", err, dt.Name)
		}
		t.Columns = append(t.Columns, c)
	}
	if !dt.IsTable {
		for _, n := range optionalColumns {
			t.Columns = append(t.Columns, Column{Name: n, Type: "text"})
		}
		if dt.TrackSeen {
			t.Columns = append(t.Columns, Column{Name: "_seen", Type: "text"})
		}
	}
	if dt.IsTable {
		for _, n := range childTableColumns {
			t.Columns = append(t.Columns, Column{Name: n, Type: vc})
		}
	}

	// Indexes (DBTable.get_index_definitions, PostgresTable.create_indexes).
	for i := range t.Columns {
		c := &t.Columns[i]
		if c.Field == nil || !c.Field.SearchIndex || !indexable(c.Type) {
			continue
		}
		if d == MariaDB && c.Unique {
			continue
		}
		t.Indexes = append(t.Indexes, Index{Name: c.Name, Columns: []string{c.Name}})
	}
	if d == MariaDB {
		if dt.IsTable {
			t.Indexes = append(t.Indexes, Index{Name: "parent", Columns: []string{"parent"}})
		} else {
			t.Indexes = append(t.Indexes, Index{Name: "modified", Columns: []string{"modified"}})
		}
	}
	for _, ix := range t.Indexes {
		if _, err := d.QuoteIdent(ix.Name); err != nil {
			return nil, fmt.Errorf("%w (index on %s)", err, t.Name)
		}
	}
	if t.Sequence != "" {
		if _, err := d.QuoteIdent(t.Sequence); err != nil {
			return nil, fmt.Errorf("%w (sequence of doctype %s)", err, dt.Name)
		}
	}

	if d == MariaDB {
		engine := "InnoDB"
		if dt.Engine != "" {
			e, ok := allowedEngines[strings.ToLower(dt.Engine)]
			if !ok {
				return nil, fmt.Errorf("%w: %s has engine %q; Frappe allows InnoDB or MyISAM", ErrInvalidDocType, dt.Name, dt.Engine)
			}
			engine = e
		}
		rowFormat := "DYNAMIC"
		if dt.RowFormat != "" {
			r, ok := allowedRowFormats[strings.ToLower(dt.RowFormat)]
			if !ok {
				return nil, fmt.Errorf("%w: %s has row_format %q; use Dynamic, Compressed, Compact or Redundant", ErrInvalidDocType, dt.Name, dt.RowFormat)
			}
			rowFormat = r
		}
		t.Engine, t.RowFormat, t.Charset, t.Collation = engine, rowFormat, mariadbCharset, mariadbCollation
	}
	return t, nil
}

func isOptionalColumn(name string) bool {
	for _, n := range optionalColumns {
		if n == name {
			return true
		}
	}
	return name == "_seen"
}

// fieldColumn ports DbColumn.get_definition (frappe/database/schema.py).
func fieldColumn(d Dialect, f *DocField) (Column, error) {
	if _, err := d.QuoteIdent(f.Fieldname); err != nil {
		return Column{}, err
	}
	c := Column{Name: f.Fieldname, Type: ColumnType(d, f), Field: f}
	switch {
	case intLike[f.Fieldtype]:
		v := strconv.FormatInt(pyCint(f.Default), 10)
		c.NotNull = true
		c.Default = &Default{Literal: v, Value: v, Numeric: true}
	case floatLike[f.Fieldtype]:
		v := formatNumber(pyFlt(f.Default))
		c.NotNull = true
		c.Default = &Default{Literal: v, Value: v, Numeric: true}
	case f.Default != "" && !defaultShortcuts[f.Default] && !strings.HasPrefix(f.Default, ":"):
		lit, err := d.quoteString(f.Default)
		if err != nil {
			return Column{}, fmt.Errorf("%w (default of field %s)", err, f.Fieldname)
		}
		c.Default = &Default{Literal: lit, Value: f.Default}
	}
	// Frappe appends " unique" unless the definition so far is exactly
	// "text" or "longtext"; we also never make JSON unique (see indexable).
	if f.Unique && baseType(c.Type) != "json" && (indexable(c.Type) || c.Default != nil) {
		c.Unique = true
	}
	return c, nil
}

// CreateTableSQL returns the statements that create dt's table on d exactly
// as Frappe v15 does: for an autoincrement doctype the sequence first, then
// CREATE TABLE, then (PostgreSQL) one CREATE INDEX per search_index field.
func CreateTableSQL(d Dialect, dt *DocType) ([]string, error) {
	t, err := NewTableSpec(d, dt)
	if err != nil {
		return nil, err
	}
	return t.CreateSQL(false), nil
}

// CreateSQL renders the spec. ifNotExists adds IF NOT EXISTS to every
// statement, for idempotent use by EnsureTable.
func (t *TableSpec) CreateSQL(ifNotExists bool) []string {
	d := t.Dialect
	ine := ""
	if ifNotExists {
		ine = "if not exists "
	}
	var out []string
	if t.Sequence != "" {
		// frappe/database/sequence.py create_sequence(check_not_exists=True, cache=0)
		s := "create sequence if not exists " + d.mustQuote(t.Sequence)
		if d == MariaDB {
			s += " nocache nocycle"
		}
		out = append(out, s)
	}
	defs := make([]string, 0, len(t.Columns)+len(t.Indexes))
	for i := range t.Columns {
		defs = append(defs, d.mustQuote(t.Columns[i].Name)+" "+t.Columns[i].Definition())
	}
	var b strings.Builder
	b.WriteString("create table " + ine + d.mustQuote(t.Name) + " (\n\t")
	if d == MariaDB {
		for _, ix := range t.Indexes {
			defs = append(defs, "index "+d.mustQuote(ix.Name)+"("+quoteList(d, ix.Columns)+")")
		}
		b.WriteString(strings.Join(defs, ",\n\t"))
		fmt.Fprintf(&b, "\n) ENGINE=%s ROW_FORMAT=%s CHARACTER SET=%s COLLATE=%s", t.Engine, t.RowFormat, t.Charset, t.Collation)
		return append(out, b.String())
	}
	b.WriteString(strings.Join(defs, ",\n\t"))
	b.WriteString("\n)")
	out = append(out, b.String())
	for _, ix := range t.Indexes {
		out = append(out, "create index if not exists "+d.mustQuote(ix.Name)+" on "+d.mustQuote(t.Name)+" ("+quoteList(d, ix.Columns)+")")
	}
	return out
}

func quoteList(d Dialect, names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = d.mustQuote(n)
	}
	return strings.Join(q, ", ")
}
