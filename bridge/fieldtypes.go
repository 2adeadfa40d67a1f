package bridge

// Fieldtype sets from Frappe v15 frappe/model/__init__.py.

// dataFieldtypes hold a value and get a column (data_fieldtypes).
var dataFieldtypes = map[string]bool{
	"Currency": true, "Int": true, "Long Int": true, "Float": true, "Percent": true,
	"Check": true, "Small Text": true, "Long Text": true, "Code": true,
	"Text Editor": true, "Markdown Editor": true, "HTML Editor": true,
	"Date": true, "Datetime": true, "Time": true, "Text": true, "Data": true,
	"Link": true, "Dynamic Link": true, "Password": true, "Select": true,
	"Rating": true, "Read Only": true, "Attach": true, "Attach Image": true,
	"Signature": true, "Color": true, "Barcode": true, "Geolocation": true,
	"Duration": true, "Icon": true, "Phone": true, "Autocomplete": true, "JSON": true,
}

// noValueFieldtypes are layout or child-table fields: no column
// (no_value_fields).
var noValueFieldtypes = map[string]bool{
	"Section Break": true, "Column Break": true, "Tab Break": true, "HTML": true,
	"Table": true, "Table MultiSelect": true, "Button": true, "Image": true,
	"Fold": true, "Heading": true,
}

// tableFieldtypes point at a child doctype through Options (table_fields).
var tableFieldtypes = map[string]bool{"Table": true, "Table MultiSelect": true}

// IsKnownFieldtype reports whether Frappe v15 defines fieldtype.
func IsKnownFieldtype(fieldtype string) bool {
	return dataFieldtypes[fieldtype] || noValueFieldtypes[fieldtype]
}

// Standard columns (frappe/database/database.py, Database.*_COLUMNS).
var (
	// defaultColumns are on every table, in this order.
	defaultColumns = []string{"name", "creation", "modified", "modified_by", "owner", "docstatus", "idx"}
	// childTableColumns are on child tables (istable) only.
	childTableColumns = []string{"parent", "parentfield", "parenttype"}
	// optionalColumns are Text columns on non-child tables.
	optionalColumns = []string{"_user_tags", "_comments", "_assign", "_liked_by"}
)

// defaultShortcuts are defaults Frappe resolves at insert time, so they are
// never written into DDL (Database.DEFAULT_SHORTCUTS).
var defaultShortcuts = map[string]bool{
	"_Login": true, "__user": true, "_Full Name": true, "Today": true,
	"__today": true, "now": true, "Now": true,
}

// IsStandardColumn reports whether column is one Frappe adds to every table
// (or to child tables, or to non-child tables) rather than one from a DocField.
func IsStandardColumn(column string) bool {
	for _, set := range [][]string{defaultColumns, childTableColumns, optionalColumns} {
		for _, c := range set {
			if c == column {
				return true
			}
		}
	}
	return column == "_seen"
}
