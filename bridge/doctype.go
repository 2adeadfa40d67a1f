package bridge

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// DocType is the part of a Frappe DocType definition that decides how its
// documents are stored: the table layout and the naming and tree rules.
// It comes from a DocType JSON file (ParseDocType) or from a site's
// tabDocType/tabDocField/tabCustom Field rows (LoadDocType).
type DocType struct {
	Name           string
	Module         string
	IsTable        bool // istable: a child table; rows carry parent/parentfield/parenttype
	IsSingle       bool // issingle: values live in tabSingles, no table of its own
	IsTree         bool // is_tree: nested set with lft/rgt/old_parent
	IsVirtual      bool // is_virtual: no table at all
	IsSubmittable  bool
	Custom         bool   // created on a site (Customize / DocType form), not shipped by an app
	Autoname       string // e.g. "field:item_code", "hash", "naming_series:", "autoincrement"
	NamingRule     string // e.g. "By fieldname", "Random", `By "Naming Series" field`
	NSMParentField string // tree: the Link field that holds the parent
	TitleField     string
	SearchFields   string
	SortField      string
	SortOrder      string
	TrackSeen      bool   // adds a _seen column
	TrackChanges   bool   // Frappe writes Version documents
	Engine         string // MariaDB storage engine; "" means InnoDB
	RowFormat      string // MariaDB row format; "" means Dynamic
	Modified       string // the definition's own modified timestamp, as written
	Fields         []DocField
}

// DocField is one field of a DocType, standard or custom.
type DocField struct {
	Fieldname     string
	Fieldtype     string
	Label         string
	Options       string // Link/Table target doctype, Select choices, …
	Length        int    // varchar length; 0 means Frappe's 140. For Int, >11 means bigint
	Precision     string // "" or "0".."9"; decimals are always (21,9) in v15 storage
	Default       string // as Frappe stores it; "" means none
	Reqd          bool
	Unique        bool
	SearchIndex   bool
	NoCopy        bool
	Hidden        bool
	ReadOnly      bool
	IsVirtual     bool // computed by the controller; no column
	SetOnlyOnce   bool
	AllowOnSubmit bool
	Translatable  bool
	NonNegative   bool
	FetchFrom     string
	FetchIfEmpty  bool
	InsertAfter   string // custom fields: placed after this fieldname
	IsCustom      bool   // from tabCustom Field, i.e. site-specific
	Idx           int    // 1-based position after ordering
}

// HasColumn reports whether the field is stored in a column of the
// doctype's table (data fieldtypes that are not virtual).
func (f *DocField) HasColumn() bool {
	return dataFieldtypes[f.Fieldtype] && !f.IsVirtual
}

// IsTableField reports whether the field holds child rows (Table, Table
// MultiSelect); Options names the child doctype.
func (f *DocField) IsTableField() bool { return tableFieldtypes[f.Fieldtype] }

// Table returns the doctype's table name, "tab"+Name.
func (dt *DocType) Table() string { return TablePrefix + dt.Name }

// HasTable reports whether documents of dt are stored in a table of their own.
func (dt *DocType) HasTable() bool { return !dt.IsSingle && !dt.IsVirtual }

// Field returns the field named fieldname, or nil.
func (dt *DocType) Field(fieldname string) *DocField {
	for i := range dt.Fields {
		if dt.Fields[i].Fieldname == fieldname {
			return &dt.Fields[i]
		}
	}
	return nil
}

// ColumnFields returns the fields that have a column, in field order.
func (dt *DocType) ColumnFields() []*DocField {
	var out []*DocField
	for i := range dt.Fields {
		if dt.Fields[i].HasColumn() {
			out = append(out, &dt.Fields[i])
		}
	}
	return out
}

// TableFields returns the child-table fields, in field order.
func (dt *DocType) TableFields() []*DocField {
	var out []*DocField
	for i := range dt.Fields {
		if dt.Fields[i].IsTableField() {
			out = append(out, &dt.Fields[i])
		}
	}
	return out
}

// Clone returns a deep copy, so callers may change fields without touching
// a shared definition.
func (dt *DocType) Clone() *DocType {
	c := *dt
	c.Fields = append([]DocField(nil), dt.Fields...)
	return &c
}

// reservedFieldnames cannot be DocFields: they are Frappe's standard
// columns (frappe.model default_fields + child_table_fields).
var reservedFieldnames = map[string]bool{
	"name": true, "creation": true, "modified": true, "modified_by": true, "owner": true,
	"docstatus": true, "idx": true, "parent": true, "parentfield": true, "parenttype": true,
}

// Validate checks every name and the field definitions. It is called by
// ParseDocType and LoadDocType; call it again after changing a DocType by hand.
func (dt *DocType) Validate() error {
	if err := ValidateDocTypeName(dt.Name); err != nil {
		return err
	}
	if dt.IsTable && dt.IsSingle {
		return fmt.Errorf("%w: %s is both a child table (istable) and a Single (issingle)", ErrInvalidDocType, dt.Name)
	}
	seen := make(map[string]bool, len(dt.Fields))
	var errs []error
	for i := range dt.Fields {
		f := &dt.Fields[i]
		if err := ValidateFieldname(f.Fieldname); err != nil {
			errs = append(errs, fmt.Errorf("%w (doctype %s, field #%d)", err, dt.Name, i+1))
			continue
		}
		// MariaDB column names are case-insensitive, so "Foo" and "foo" collide.
		key := strings.ToLower(f.Fieldname)
		if seen[key] {
			errs = append(errs, fmt.Errorf("%w: %s has two fields named %q", ErrInvalidDocType, dt.Name, f.Fieldname))
			continue
		}
		seen[key] = true
		if !IsKnownFieldtype(f.Fieldtype) {
			errs = append(errs, fmt.Errorf("%w: %s.%s has fieldtype %q, which Frappe v15 does not define", ErrInvalidDocType, dt.Name, f.Fieldname, f.Fieldtype))
			continue
		}
		if f.HasColumn() && reservedFieldnames[key] {
			errs = append(errs, fmt.Errorf("%w: %s.%s: %q is a Frappe standard column; rename the field", ErrInvalidName, dt.Name, f.Fieldname, f.Fieldname))
			continue
		}
		if f.IsTableField() && f.Options != "" {
			if err := ValidateDocTypeName(f.Options); err != nil {
				errs = append(errs, fmt.Errorf("%w (child table of %s.%s)", err, dt.Name, f.Fieldname))
			}
		}
		if f.HasColumn() {
			if err := f.validateStorage(dt.Name); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if dt.IsTree && dt.NSMParentField != "" && dt.Field(dt.NSMParentField) == nil {
		errs = append(errs, fmt.Errorf("%w: %s is a tree whose parent field %q does not exist", ErrInvalidDocType, dt.Name, dt.NSMParentField))
	}
	return errors.Join(errs...)
}

func (f *DocField) validateStorage(doctype string) error {
	if isVarcharType(f.Fieldtype) && f.Length != 0 && (f.Length < 1 || f.Length > 1000) {
		// frappe/database/schema.py DBTable.validate
		return fmt.Errorf("%w: %s.%s has length %d; Frappe allows 1..1000", ErrInvalidDocType, doctype, f.Fieldname, f.Length)
	}
	if f.Length < 0 {
		return fmt.Errorf("%w: %s.%s has negative length %d", ErrInvalidDocType, doctype, f.Fieldname, f.Length)
	}
	if f.Precision != "" {
		if p, err := strconv.Atoi(f.Precision); err != nil || p < 0 || p > 9 {
			return fmt.Errorf("%w: %s.%s has precision %q; Frappe allows 0..9", ErrInvalidDocType, doctype, f.Fieldname, f.Precision)
		}
	}
	if floatLike[f.Fieldtype] && f.Default != "" {
		if v := pyFlt(f.Default); math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%w: %s.%s has default %q, which is not a finite number", ErrInvalidValue, doctype, f.Fieldname, f.Default)
		}
	}
	return nil
}

// normalize applies what Frappe does to every DocType before it builds a
// table, so a definition read from a file and one read from a site agree.
func (dt *DocType) normalize() {
	if dt.IsTree {
		dt.addNestedSetFields()
	}
	for i := range dt.Fields {
		// DocType.scrub_field_names: "unique is automatically an index".
		if dt.Fields[i].Unique {
			dt.Fields[i].SearchIndex = false
		}
	}
	dt.renumber()
}

// addNestedSetFields mirrors DocType.add_nestedset_fields (doctype.py):
// a tree doctype without lft gets lft, rgt, is_group, old_parent and
// parent_<doctype>.
func (dt *DocType) addNestedSetFields() {
	if dt.Field("lft") != nil {
		return
	}
	add := func(f DocField) {
		if dt.Field(f.Fieldname) == nil {
			dt.Fields = append(dt.Fields, f)
		}
	}
	add(DocField{Fieldname: "lft", Fieldtype: "Int", Label: "Left", ReadOnly: true, Hidden: true, NoCopy: true})
	add(DocField{Fieldname: "rgt", Fieldtype: "Int", Label: "Right", ReadOnly: true, Hidden: true, NoCopy: true})
	add(DocField{Fieldname: "is_group", Fieldtype: "Check", Label: "Is Group"})
	add(DocField{Fieldname: "old_parent", Fieldtype: "Link", Label: "Old Parent", Options: dt.Name})
	parentLabel := "Parent " + dt.Name
	parentField := scrub(parentLabel)
	add(DocField{Fieldname: parentField, Fieldtype: "Link", Label: parentLabel, Options: dt.Name})
	if dt.NSMParentField == "" {
		dt.NSMParentField = parentField
	}
}

func (dt *DocType) renumber() {
	for i := range dt.Fields {
		dt.Fields[i].Idx = i + 1
	}
}
