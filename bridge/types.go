package bridge

import (
	"math"
	"strconv"
	"strings"
)

// varcharLen is Frappe's Database.VARCHAR_LEN.
const varcharLen = 140

// colType is one entry of Frappe's type_map: a base SQL type and its size
// argument ("" when the type takes none).
type colType struct{ base, size string }

// mariadbTypes is MariaDBDatabase.setup_type_map (frappe/database/mariadb/database.py, v15).
var mariadbTypes = map[string]colType{
	"Currency": {"decimal", "21,9"}, "Int": {"int", "11"}, "Long Int": {"bigint", "20"},
	"Float": {"decimal", "21,9"}, "Percent": {"decimal", "21,9"}, "Check": {"int", "1"},
	"Small Text": {"text", ""}, "Long Text": {"longtext", ""}, "Code": {"longtext", ""},
	"Text Editor": {"longtext", ""}, "Markdown Editor": {"longtext", ""}, "HTML Editor": {"longtext", ""},
	"Date": {"date", ""}, "Datetime": {"datetime", "6"}, "Time": {"time", "6"}, "Text": {"text", ""},
	"Data": {"varchar", "140"}, "Link": {"varchar", "140"}, "Dynamic Link": {"varchar", "140"},
	"Password": {"text", ""}, "Select": {"varchar", "140"}, "Rating": {"decimal", "3,2"},
	"Read Only": {"varchar", "140"}, "Attach": {"text", ""}, "Attach Image": {"text", ""},
	"Signature": {"longtext", ""}, "Color": {"varchar", "140"}, "Barcode": {"longtext", ""},
	"Geolocation": {"longtext", ""}, "Duration": {"decimal", "21,9"}, "Icon": {"varchar", "140"},
	"Phone": {"varchar", "140"}, "Autocomplete": {"varchar", "140"}, "JSON": {"json", ""},
}

// postgresTypes is PostgresDatabase.setup_type_map (frappe/database/postgres/database.py, v15).
var postgresTypes = map[string]colType{
	"Currency": {"decimal", "21,9"}, "Int": {"bigint", ""}, "Long Int": {"bigint", ""},
	"Float": {"decimal", "21,9"}, "Percent": {"decimal", "21,9"}, "Check": {"smallint", ""},
	"Small Text": {"text", ""}, "Long Text": {"text", ""}, "Code": {"text", ""},
	"Text Editor": {"text", ""}, "Markdown Editor": {"text", ""}, "HTML Editor": {"text", ""},
	"Date": {"date", ""}, "Datetime": {"timestamp", ""}, "Time": {"time", "6"}, "Text": {"text", ""},
	"Data": {"varchar", "140"}, "Link": {"varchar", "140"}, "Dynamic Link": {"varchar", "140"},
	"Password": {"text", ""}, "Select": {"varchar", "140"}, "Rating": {"decimal", "3,2"},
	"Read Only": {"varchar", "140"}, "Attach": {"text", ""}, "Attach Image": {"text", ""},
	"Signature": {"text", ""}, "Color": {"varchar", "140"}, "Barcode": {"text", ""},
	"Geolocation": {"text", ""}, "Duration": {"decimal", "21,9"}, "Icon": {"varchar", "140"},
	"Phone": {"varchar", "140"}, "Autocomplete": {"varchar", "140"}, "JSON": {"json", ""},
}

func typeMap(d Dialect) map[string]colType {
	if d == Postgres {
		return postgresTypes
	}
	return mariadbTypes
}

// floatLike fieldtypes get "not null default <number>" (DbColumn.get_definition).
var floatLike = map[string]bool{"Currency": true, "Float": true, "Percent": true}

// intLike fieldtypes get "not null default <integer>".
var intLike = map[string]bool{"Check": true, "Int": true}

func isVarcharType(fieldtype string) bool { return mariadbTypes[fieldtype].base == "varchar" }

// ColumnType returns the SQL type Frappe v15 gives a field on d, or "" when
// the field has no column. It ports frappe/database/schema.py get_definition:
//   - Int with length > 11 becomes Long Int (bigint);
//   - a varchar's length overrides 140;
//   - on MariaDB an Int's length below 11 becomes its display width, int(n);
//   - precision never changes the type: Currency/Float/Percent are already (21,9).
func ColumnType(d Dialect, f *DocField) string {
	if !f.HasColumn() {
		return ""
	}
	tm := typeMap(d)
	t, ok := tm[f.Fieldtype]
	if !ok {
		return ""
	}
	if f.Fieldtype == "Int" && f.Length > 11 {
		t = tm["Long Int"]
	}
	size := t.size
	if size != "" && f.Length > 0 {
		switch {
		case t.base == "varchar":
			size = strconv.Itoa(f.Length)
		case t.base == "int" && f.Length < 11:
			size = strconv.Itoa(f.Length)
		}
	}
	if size == "" {
		return t.base
	}
	return t.base + "(" + size + ")"
}

// baseType strips the size: "varchar(140)" → "varchar".
func baseType(sqlType string) string {
	if i := strings.IndexByte(sqlType, '('); i >= 0 {
		return sqlType[:i]
	}
	return sqlType
}

// indexable mirrors Frappe's rule that text and longtext columns get no
// index and no unique constraint. JSON is excluded as well: Frappe tries, and
// PostgreSQL rejects it (json has no equality operator).
func indexable(sqlType string) bool {
	switch baseType(sqlType) {
	case "text", "longtext", "json":
		return false
	}
	return true
}

// pyFloat parses like Python's float(): surrounding whitespace allowed,
// underscores between digits allowed, no hexadecimal.
func pyFloat(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	l := strings.ToLower(strings.TrimLeft(s, "+-"))
	if strings.HasPrefix(l, "0x") || strings.HasPrefix(l, "0b") || strings.HasPrefix(l, "0o") {
		return 0, false
	}
	if strings.Contains(s, "_") {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			if s[i] == '_' {
				if i == 0 || i == len(s)-1 || !isASCIIDigit(rune(s[i-1])) || !isASCIIDigit(rune(s[i+1])) {
					return 0, false
				}
				continue
			}
			b.WriteByte(s[i])
		}
		s = b.String()
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, false
	}
	return v, true
}

// pyFlt mirrors frappe.utils.flt without precision: commas are dropped,
// anything unparseable is 0.
func pyFlt(s string) float64 {
	v, ok := pyFloat(strings.ReplaceAll(s, ",", ""))
	if !ok {
		return 0
	}
	return v
}

// pyCint mirrors frappe.utils.cint: int(float(s)), truncating toward zero;
// anything unparseable (or not finite, or out of int64) is 0.
func pyCint(s string) int64 {
	v, ok := pyFloat(s)
	if !ok || math.IsNaN(v) || math.IsInf(v, 0) || v >= math.MaxInt64 || v <= math.MinInt64 {
		return 0
	}
	return int64(v)
}

// formatNumber renders a float default the way a DDL literal needs it, with
// no exponent: Python would print 1e-05, the column stores the same value.
func formatNumber(v float64) string {
	if v == 0 {
		return "0"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}
