package bridge

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Dialect is the SQL dialect of a Frappe site database. Frappe v15 supports
// exactly two, named by the site_config key db_type.
type Dialect int

const (
	// MariaDB is Frappe's default database (db_type "mariadb").
	MariaDB Dialect = iota + 1
	// Postgres is Frappe's PostgreSQL backend (db_type "postgres").
	Postgres
)

// String returns the db_type spelling Frappe uses in site_config.json.
func (d Dialect) String() string {
	switch d {
	case MariaDB:
		return "mariadb"
	case Postgres:
		return "postgres"
	}
	return fmt.Sprintf("Dialect(%d)", int(d))
}

// ParseDialect maps a site_config db_type value to a Dialect. The empty string
// is MariaDB, as in Frappe.
func ParseDialect(dbType string) (Dialect, error) {
	switch strings.ToLower(strings.TrimSpace(dbType)) {
	case "", "mariadb", "mysql":
		return MariaDB, nil
	case "postgres", "postgresql":
		return Postgres, nil
	}
	return 0, fmt.Errorf("%w: db_type %q — use \"mariadb\" or \"postgres\"", ErrUnsupportedDialect, dbType)
}

func (d Dialect) valid() error {
	if d == MariaDB || d == Postgres {
		return nil
	}
	return fmt.Errorf("%w: %v", ErrUnsupportedDialect, d)
}

// maxIdentBytes is PostgreSQL's NAMEDATALEN-1: longer identifiers are silently
// truncated by the server, which would make two fields share one column.
const maxIdentBytes = 63

// maxIdentChars is MariaDB's limit for table, column and index names.
const maxIdentChars = 64

// QuoteIdent quotes an identifier for d: backticks on MariaDB, double quotes
// on PostgreSQL, with the quote character doubled. Names reach SQL only after
// ValidateDocTypeName/ValidateFieldname; quoting is the second line of defence
// and also rejects what no Frappe name can contain (NUL, over-long names).
func (d Dialect) QuoteIdent(name string) (string, error) {
	if err := d.valid(); err != nil {
		return "", err
	}
	if name == "" {
		return "", fmt.Errorf("%w: empty identifier", ErrInvalidName)
	}
	if !utf8.ValidString(name) || strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("%w: identifier %q is not valid UTF-8 text", ErrInvalidName, name)
	}
	switch d {
	case MariaDB:
		if utf8.RuneCountInString(name) > maxIdentChars {
			return "", fmt.Errorf("%w: identifier %q is longer than MariaDB's %d characters", ErrInvalidName, name, maxIdentChars)
		}
		return "`" + strings.ReplaceAll(name, "`", "``") + "`", nil
	default:
		if len(name) > maxIdentBytes {
			return "", fmt.Errorf("%w: identifier %q is %d bytes; PostgreSQL would truncate it to %d", ErrInvalidName, name, len(name), maxIdentBytes)
		}
		return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`, nil
	}
}

func (d Dialect) mustQuote(name string) string {
	q, err := d.QuoteIdent(name)
	if err != nil {
		// Callers validate first; reaching here is a bug, never user input.
		panic("bridge: unvalidated identifier reached SQL: " + err.Error())
	}
	return q
}

// Placeholder returns the bind-parameter marker for the n-th argument
// (1-based): "?" on MariaDB, "$n" on PostgreSQL.
func (d Dialect) Placeholder(n int) string {
	if d == Postgres {
		return "$" + strconv.Itoa(n)
	}
	return "?"
}

// quoteString renders s as an SQL string literal. It is used only where SQL
// has no bind parameters: DEFAULT clauses in DDL. MariaDB is assumed to run
// without NO_BACKSLASH_ESCAPES (Frappe's own escaping assumes the same) and
// PostgreSQL with standard_conforming_strings on (the default since 9.1).
func (d Dialect) quoteString(s string) (string, error) {
	if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
		return "", fmt.Errorf("%w: literal %q is not valid UTF-8 text without NUL", ErrInvalidValue, s)
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for _, r := range s {
		switch {
		case r == '\'':
			b.WriteString("''")
		case r == '\\' && d == MariaDB:
			b.WriteString(`\\`)
		case r == '\n' && d == MariaDB:
			b.WriteString(`\n`)
		case r == '\r' && d == MariaDB:
			b.WriteString(`\r`)
		case r == 0x1a && d == MariaDB:
			b.WriteString(`\Z`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('\'')
	return b.String(), nil
}
