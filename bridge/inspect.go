package bridge

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"
)

// TableInfo is a table as the database itself reports it
// (information_schema, and pg_catalog for PostgreSQL indexes).
type TableInfo struct {
	Name    string
	Columns []ColumnInfo // in ordinal order
	Indexes []IndexInfo  // including the primary key and unique constraints
	// MariaDB table options; empty on PostgreSQL.
	Engine, RowFormat, Collation string
}

// ColumnInfo is one column as the database reports it.
type ColumnInfo struct {
	Name string
	// Type is comparable with Column.Type after canonicalType: MariaDB's
	// COLUMN_TYPE ("int(11)", "varchar(140)", "longtext"), or on PostgreSQL
	// the type rebuilt from information_schema ("varchar(140)",
	// "decimal(21,9)", "timestamp(6)", "bigint").
	Type      string
	Nullable  bool
	Default   *string // COLUMN_DEFAULT as reported; nil when there is none
	Collation string  // MariaDB text columns
}

// IndexInfo is one index.
type IndexInfo struct {
	Name    string
	Unique  bool
	Primary bool
	Columns []string
}

// Column returns the column named name, or nil. MariaDB compares names
// case-insensitively, as the server does.
func (t *TableInfo) Column(d Dialect, name string) *ColumnInfo {
	for i := range t.Columns {
		if t.Columns[i].Name == name || (d == MariaDB && strings.EqualFold(t.Columns[i].Name, name)) {
			return &t.Columns[i]
		}
	}
	return nil
}

// HasIndexOn reports whether a single-column index on column exists, unique
// or not as asked (Frappe's get_column_index ignores composite indexes).
func (t *TableInfo) HasIndexOn(d Dialect, column string, unique bool) bool {
	for _, ix := range t.Indexes {
		if len(ix.Columns) != 1 || ix.Unique != unique {
			continue
		}
		if ix.Columns[0] == column || (d == MariaDB && strings.EqualFold(ix.Columns[0], column)) {
			return true
		}
	}
	return false
}

// Index returns the index named name, or nil.
func (t *TableInfo) Index(name string) *IndexInfo {
	for i := range t.Indexes {
		if t.Indexes[i].Name == name {
			return &t.Indexes[i]
		}
	}
	return nil
}

// InspectTable reads a table's columns, indexes and options from the
// database. A missing table is an error wrapping ErrNotFound.
func InspectTable(ctx context.Context, q Querier, table string) (*TableInfo, error) {
	d := q.Dialect()
	if _, err := d.QuoteIdent(table); err != nil {
		return nil, err
	}
	t := &TableInfo{Name: table}
	var err error
	if d == MariaDB {
		err = inspectMariaDB(ctx, q, t)
	} else {
		err = inspectPostgres(ctx, q, t)
	}
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("bridge: inspect %s: %w", table, err)
	}
	return t, nil
}

// TableExists reports whether table exists in the current database/schema.
func TableExists(ctx context.Context, q Querier, table string) (bool, error) {
	var query string
	if q.Dialect() == MariaDB {
		query = `SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`
	} else {
		query = `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1`
	}
	var n int64
	if err := queryRow(ctx, q, query, []any{table}, &n); err != nil {
		return false, fmt.Errorf("bridge: look up table %s: %w", table, err)
	}
	return n > 0, nil
}

func inspectMariaDB(ctx context.Context, q Querier, t *TableInfo) error {
	var engine, rowFormat, collation sql.NullString
	err := queryRow(ctx, q, `SELECT ENGINE, ROW_FORMAT, TABLE_COLLATION FROM information_schema.TABLES
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`, []any{t.Name}, &engine, &rowFormat, &collation)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: table %s does not exist", ErrNotFound, t.Name)
	}
	if err != nil {
		return err
	}
	t.Engine, t.RowFormat, t.Collation = engine.String, rowFormat.String, collation.String

	rows, err := q.Query(ctx, `SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, COLLATION_NAME
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?
		ORDER BY ORDINAL_POSITION`, t.Name)
	if err != nil {
		return err
	}
	for rows.Next() {
		var c ColumnInfo
		var nullable string
		var def, coll sql.NullString
		if err := rows.Scan(&c.Name, &c.Type, &nullable, &def, &coll); err != nil {
			rows.Close()
			return err
		}
		c.Nullable = nullable == "YES"
		// MariaDB reports "no default" on a nullable column as the text NULL.
		if def.Valid && def.String != "NULL" {
			s := def.String
			c.Default = &s
		}
		c.Collation = coll.String
		t.Columns = append(t.Columns, c)
	}
	if err := rows.Err(); err != nil {
		return err
	}

	rows, err = q.Query(ctx, `SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME FROM information_schema.STATISTICS
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY INDEX_NAME, SEQ_IN_INDEX`, t.Name)
	if err != nil {
		return err
	}
	for rows.Next() {
		var name, col string
		var nonUnique int64
		if err := rows.Scan(&name, &nonUnique, &col); err != nil {
			rows.Close()
			return err
		}
		t.addIndexColumn(name, nonUnique == 0, name == "PRIMARY", col)
	}
	return rows.Err()
}

func inspectPostgres(ctx context.Context, q Querier, t *TableInfo) error {
	ok, err := TableExists(ctx, q, t.Name)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: table %s does not exist", ErrNotFound, t.Name)
	}
	rows, err := q.Query(ctx, `SELECT column_name::text, data_type::text, is_nullable::text, column_default::text,
			character_maximum_length::int, numeric_precision::int, numeric_scale::int, datetime_precision::int
		FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1
		ORDER BY ordinal_position`, t.Name)
	if err != nil {
		return err
	}
	for rows.Next() {
		var c ColumnInfo
		var dataType, nullable string
		var def sql.NullString
		var charLen, numPrec, numScale, dtPrec sql.NullInt64
		if err := rows.Scan(&c.Name, &dataType, &nullable, &def, &charLen, &numPrec, &numScale, &dtPrec); err != nil {
			rows.Close()
			return err
		}
		c.Nullable = nullable == "YES"
		if def.Valid {
			s := def.String
			c.Default = &s
		}
		c.Type = postgresType(dataType, charLen, numPrec, numScale, dtPrec)
		t.Columns = append(t.Columns, c)
	}
	if err := rows.Err(); err != nil {
		return err
	}

	rows, err = q.Query(ctx, `SELECT i.relname::text, ix.indisunique, ix.indisprimary, a.attname::text
		FROM pg_class t
		JOIN pg_namespace n ON n.oid = t.relnamespace
		JOIN pg_index ix ON ix.indrelid = t.oid
		JOIN pg_class i ON i.oid = ix.indexrelid
		CROSS JOIN LATERAL unnest(ix.indkey) WITH ORDINALITY AS k(attnum, ord)
		JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
		WHERE n.nspname = current_schema() AND t.relname = $1
		ORDER BY i.relname, k.ord`, t.Name)
	if err != nil {
		return err
	}
	for rows.Next() {
		var name, col string
		var unique, primary bool
		if err := rows.Scan(&name, &unique, &primary, &col); err != nil {
			rows.Close()
			return err
		}
		t.addIndexColumn(name, unique, primary, col)
	}
	return rows.Err()
}

func (t *TableInfo) addIndexColumn(name string, unique, primary bool, col string) {
	if n := len(t.Indexes); n > 0 && t.Indexes[n-1].Name == name {
		t.Indexes[n-1].Columns = append(t.Indexes[n-1].Columns, col)
		return
	}
	t.Indexes = append(t.Indexes, IndexInfo{Name: name, Unique: unique, Primary: primary, Columns: []string{col}})
}

// postgresType rebuilds a type name comparable with Frappe's DDL spelling.
func postgresType(dataType string, charLen, numPrec, numScale, dtPrec sql.NullInt64) string {
	withSize := func(base string, n sql.NullInt64) string {
		if !n.Valid {
			return base
		}
		return base + "(" + strconv.FormatInt(n.Int64, 10) + ")"
	}
	switch dataType {
	case "character varying":
		return withSize("varchar", charLen)
	case "character":
		return withSize("char", charLen)
	case "numeric":
		if numPrec.Valid && numScale.Valid {
			return fmt.Sprintf("decimal(%d,%d)", numPrec.Int64, numScale.Int64)
		}
		return "decimal"
	case "timestamp without time zone":
		return withSize("timestamp", dtPrec)
	case "timestamp with time zone":
		return withSize("timestamptz", dtPrec)
	case "time without time zone":
		return withSize("time", dtPrec)
	case "integer":
		return "int"
	}
	return dataType
}

// canonicalType maps a DDL type to the spelling the database reports, so
// the two can be compared: on MariaDB json is longtext and integer types
// carry their display width; on PostgreSQL timestamp and time default to
// microseconds.
func canonicalType(d Dialect, t string) string {
	t = strings.ToLower(strings.TrimSpace(t))
	if d == MariaDB {
		switch t {
		case "json":
			return "longtext"
		case "bigint":
			return "bigint(20)"
		case "int":
			return "int(11)"
		case "smallint":
			return "smallint(6)"
		}
		return t
	}
	switch t {
	case "timestamp", "timestamp without time zone":
		return "timestamp(6)"
	case "time", "time without time zone":
		return "time(6)"
	case "integer":
		return "int"
	}
	if strings.HasPrefix(t, "numeric") {
		return "decimal" + strings.TrimPrefix(t, "numeric")
	}
	return t
}

var (
	pgCastSuffix = regexp.MustCompile(`^(.*?)(::[a-z_ ]+(\([0-9, ]*\))?(\[\])?)+$`)
	numericText  = regexp.MustCompile(`^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$`)
)

// defaultValue turns a reported COLUMN_DEFAULT into a plain value: quotes
// and PostgreSQL casts removed. Expressions come back unchanged.
func defaultValue(d Dialect, raw string) string {
	s := strings.TrimSpace(raw)
	if d == Postgres {
		if m := pgCastSuffix.FindStringSubmatch(s); m != nil {
			s = strings.TrimSpace(m[1])
		}
		s = strings.TrimSuffix(strings.TrimPrefix(s, "("), ")")
	}
	if len(s) >= 2 && s[0] == '\'' && s[len(s)-1] == '\'' {
		return unquoteSQL(d, s[1:len(s)-1])
	}
	return s
}

// unquoteSQL decodes the inside of a string literal: doubled quotes, and on
// MariaDB backslash escapes (information_schema reports 'it\'s').
func unquoteSQL(d Dialect, s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'' && i+1 < len(s) && s[i+1] == '\'':
			b.WriteByte('\'')
			i++
		case c == '\\' && d == MariaDB && i+1 < len(s):
			i++
			switch s[i] {
			case '0':
				b.WriteByte(0)
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'b':
				b.WriteByte('\b')
			case 'Z':
				b.WriteByte(0x1a)
			default:
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// sameDefault compares a wanted default with a reported one.
func sameDefault(d Dialect, want *Default, have *string) bool {
	if want == nil || have == nil {
		return want == nil && have == nil
	}
	got := defaultValue(d, *have)
	if want.Numeric {
		return sameNumber(want.Value, got)
	}
	return want.Value == got
}

func sameNumber(a, b string) bool {
	if !numericText.MatchString(a) || !numericText.MatchString(b) {
		return a == b
	}
	x, ok1 := new(big.Rat).SetString(a)
	y, ok2 := new(big.Rat).SetString(b)
	return ok1 && ok2 && x.Cmp(y) == 0
}
