package bridge

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// LoadStats says what LoadDocType merged into the definition.
type LoadStats struct {
	StandardFields  int // rows in tabDocField
	CustomFields    int // rows in tabCustom Field
	PropertySetters int // tabProperty Setter rows applied
}

// LoadDocType reads a DocType as the site's Frappe sees it: the tabDocType
// row, its tabDocField rows ordered by idx, the site's tabCustom Field rows
// (marked IsCustom), and the tabProperty Setter overrides made with
// Customize Form, in the field order Frappe's Meta computes. Every name read
// from the database is validated before any further use.
func LoadDocType(ctx context.Context, q Querier, name string) (*DocType, *LoadStats, error) {
	if err := ValidateDocTypeName(name); err != nil {
		return nil, nil, err
	}
	cols, err := tableColumns(ctx, q, "tabDocType")
	if err != nil {
		return nil, nil, err
	}
	if cols == nil {
		return nil, nil, fmt.Errorf("%w: the database has no tabDocType table — is it a Frappe site?", ErrNotFound)
	}
	rows, err := selectRows(ctx, q, "tabDocType", cols, docTypeColumns, "name", name, "")
	if err != nil {
		return nil, nil, err
	}
	if len(rows) == 0 {
		return nil, nil, fmt.Errorf("%w: doctype %q is not defined on this site (no tabDocType row)", ErrNotFound, name)
	}
	dt := &DocType{}
	for k, v := range rows[0] {
		setDocTypeProperty(dt, k, v)
	}
	stats := &LoadStats{}

	cols, err = tableColumns(ctx, q, "tabDocField")
	if err != nil {
		return nil, nil, err
	}
	if cols == nil {
		return nil, nil, fmt.Errorf("%w: the database has no tabDocField table — is it a Frappe site?", ErrNotFound)
	}
	rows, err = selectRows(ctx, q, "tabDocField", cols, docFieldColumns, "parent", name, "idx")
	if err != nil {
		return nil, nil, err
	}
	for _, r := range rows {
		if pt, ok := r["parenttype"]; ok && pt != "" && pt != "DocType" {
			continue
		}
		dt.Fields = append(dt.Fields, docFieldFromRow(r))
		stats.StandardFields++
	}

	if cols, err = tableColumns(ctx, q, "tabCustom Field"); err != nil {
		return nil, nil, err
	}
	if cols != nil {
		rows, err = selectRows(ctx, q, "tabCustom Field", cols, docFieldColumns, "dt", name, "idx")
		if err != nil {
			return nil, nil, err
		}
		for _, r := range rows {
			f := docFieldFromRow(r)
			f.IsCustom = true
			dt.Fields = append(dt.Fields, f)
			stats.CustomFields++
		}
	}

	var fieldOrder []string
	if cols, err = tableColumns(ctx, q, "tabProperty Setter"); err != nil {
		return nil, nil, err
	}
	if cols != nil {
		rows, err = selectRows(ctx, q, "tabProperty Setter", cols, propertySetterColumns, "doc_type", name, "")
		if err != nil {
			return nil, nil, err
		}
		for _, r := range rows {
			prop, value := r["property"], r["value"]
			switch r["doctype_or_field"] {
			case "DocType":
				if prop == "field_order" {
					if err := json.Unmarshal([]byte(value), &fieldOrder); err != nil {
						return nil, nil, fmt.Errorf("%w: %s: property setter field_order is not a JSON list: %v", ErrInvalidDocType, name, err)
					}
					stats.PropertySetters++
				} else if setDocTypeProperty(dt, prop, value) {
					stats.PropertySetters++
				}
			case "DocField":
				for i := range dt.Fields {
					if dt.Fields[i].Fieldname == r["field_name"] {
						if setDocFieldProperty(&dt.Fields[i], prop, value) {
							stats.PropertySetters++
						}
						break
					}
				}
			}
		}
	}
	if dt.Name != name {
		return nil, nil, fmt.Errorf("%w: tabDocType row for %q is named %q", ErrInvalidDocType, name, dt.Name)
	}

	// Names come from the database, which is input like any other: check
	// them before ordering, which relies on them being distinct.
	seen := map[string]bool{}
	for i := range dt.Fields {
		f := &dt.Fields[i]
		if err := ValidateFieldname(f.Fieldname); err != nil {
			where := "tabDocField"
			if f.IsCustom {
				where = "tabCustom Field"
			}
			return nil, nil, fmt.Errorf("%w (%s row for doctype %s)", err, where, name)
		}
		if seen[strings.ToLower(f.Fieldname)] {
			return nil, nil, fmt.Errorf("%w: %s has two fields named %q (tabDocField and tabCustom Field)", ErrInvalidDocType, name, f.Fieldname)
		}
		seen[strings.ToLower(f.Fieldname)] = true
	}
	dt.Fields = sortFieldsLikeMeta(dt.Fields, fieldOrder)
	dt.normalize()
	if err := dt.Validate(); err != nil {
		return nil, nil, err
	}
	return dt, stats, nil
}

var (
	docTypeColumns = []string{
		"name", "module", "istable", "issingle", "is_tree", "is_virtual", "is_submittable", "custom",
		"autoname", "naming_rule", "nsm_parent_field", "title_field", "search_fields", "sort_field",
		"sort_order", "track_seen", "track_changes", "engine", "row_format", "modified",
	}
	docFieldColumns = []string{
		"fieldname", "fieldtype", "label", "options", "length", "precision", "default", "reqd",
		"unique", "search_index", "no_copy", "hidden", "read_only", "is_virtual", "set_only_once",
		"allow_on_submit", "translatable", "non_negative", "fetch_from", "fetch_if_empty",
		"insert_after", "idx", "parenttype",
	}
	propertySetterColumns = []string{"doctype_or_field", "field_name", "property", "value"}
)

// tableColumns returns the lower-cased column names of table, or nil when
// the table does not exist. Frappe adds DocType properties over releases, so
// LoadDocType selects only the columns a site has.
func tableColumns(ctx context.Context, q Querier, table string) (map[string]bool, error) {
	info, err := InspectTable(ctx, q, table)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	cols := make(map[string]bool, len(info.Columns))
	for _, c := range info.Columns {
		cols[strings.ToLower(c.Name)] = true
	}
	return cols, nil
}

// selectRows reads the wanted columns that exist from table where
// keyColumn = key, as text; NULL reads as "". orderBy names a column.
func selectRows(ctx context.Context, q Querier, table string, have map[string]bool, want []string, keyColumn, key, orderBy string) ([]map[string]string, error) {
	d := q.Dialect()
	var names, exprs []string
	for _, c := range want {
		if !have[c] {
			continue
		}
		e := d.mustQuote(c)
		if d == Postgres {
			e += "::text"
		}
		names = append(names, c)
		exprs = append(exprs, e)
	}
	query := "SELECT " + strings.Join(exprs, ", ") + " FROM " + d.mustQuote(table) +
		" WHERE " + d.mustQuote(keyColumn) + " = " + d.Placeholder(1)
	if orderBy != "" {
		// Qualified, so PostgreSQL sorts by the column, not by its ::text
		// copy in the select list (which would put 10 before 2).
		query += " ORDER BY " + d.mustQuote(table) + "." + d.mustQuote(orderBy)
	}
	rows, err := q.Query(ctx, query, key)
	if err != nil {
		return nil, fmt.Errorf("bridge: read %s: %w", table, err)
	}
	defer rows.Close()
	var out []map[string]string
	vals := make([]sql.NullString, len(names))
	ptrs := make([]any, len(names))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("bridge: read %s: %w", table, err)
		}
		m := make(map[string]string, len(names))
		for i, n := range names {
			m[n] = vals[i].String
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("bridge: read %s: %w", table, err)
	}
	return out, nil
}

func docFieldFromRow(r map[string]string) DocField {
	var f DocField
	for k, v := range r {
		setDocFieldProperty(&f, k, v)
	}
	return f
}

func truthy(v string) bool { return pyCint(v) != 0 }

// setDocTypeProperty sets one tabDocType column (or DocType property
// setter); it reports whether the property is one the model keeps.
func setDocTypeProperty(dt *DocType, prop, v string) bool {
	switch prop {
	case "name":
		dt.Name = v
	case "module":
		dt.Module = v
	case "istable":
		dt.IsTable = truthy(v)
	case "issingle":
		dt.IsSingle = truthy(v)
	case "is_tree":
		dt.IsTree = truthy(v)
	case "is_virtual":
		dt.IsVirtual = truthy(v)
	case "is_submittable":
		dt.IsSubmittable = truthy(v)
	case "custom":
		dt.Custom = truthy(v)
	case "autoname":
		dt.Autoname = v
	case "naming_rule":
		dt.NamingRule = v
	case "nsm_parent_field":
		dt.NSMParentField = v
	case "title_field":
		dt.TitleField = v
	case "search_fields":
		dt.SearchFields = v
	case "sort_field":
		dt.SortField = v
	case "sort_order":
		dt.SortOrder = v
	case "track_seen":
		dt.TrackSeen = truthy(v)
	case "track_changes":
		dt.TrackChanges = truthy(v)
	case "engine":
		dt.Engine = v
	case "row_format":
		dt.RowFormat = v
	case "modified":
		dt.Modified = v
	default:
		return false
	}
	return true
}

// setDocFieldProperty sets one tabDocField/tabCustom Field column (or
// DocField property setter); it reports whether the model keeps it.
func setDocFieldProperty(f *DocField, prop, v string) bool {
	switch prop {
	case "fieldname":
		f.Fieldname = v
	case "fieldtype":
		f.Fieldtype = v
	case "label":
		f.Label = v
	case "options":
		f.Options = v
	case "length":
		f.Length = int(pyCint(v))
	case "precision":
		f.Precision = v
	case "default":
		f.Default = v
	case "reqd":
		f.Reqd = truthy(v)
	case "unique":
		f.Unique = truthy(v)
	case "search_index":
		f.SearchIndex = truthy(v)
	case "no_copy":
		f.NoCopy = truthy(v)
	case "hidden":
		f.Hidden = truthy(v)
	case "read_only":
		f.ReadOnly = truthy(v)
	case "is_virtual":
		f.IsVirtual = truthy(v)
	case "set_only_once":
		f.SetOnlyOnce = truthy(v)
	case "allow_on_submit":
		f.AllowOnSubmit = truthy(v)
	case "translatable":
		f.Translatable = truthy(v)
	case "non_negative":
		f.NonNegative = truthy(v)
	case "fetch_from":
		f.FetchFrom = v
	case "fetch_if_empty":
		f.FetchIfEmpty = truthy(v)
	case "insert_after":
		f.InsertAfter = v
	case "idx":
		f.Idx = int(pyCint(v))
	default:
		return false
	}
	return true
}

// sortFieldsLikeMeta ports Meta.sort_fields (frappe/model/meta.py, v15):
// a field_order property setter wins; otherwise standard fields keep their
// idx order and each custom field goes after its insert_after field (at
// the top when it has none, at the end when that field does not exist).
// Fieldnames must be distinct.
func sortFieldsLikeMeta(fields []DocField, fieldOrder []string) []DocField {
	if len(fields) == 0 {
		return fields
	}
	byName := make(map[string]int, len(fields))
	for i, f := range fields {
		byName[f.Fieldname] = i
	}
	var order []string
	for _, n := range fieldOrder {
		if _, ok := byName[n]; ok {
			order = append(order, n)
		}
	}
	if len(order) > 0 {
		if len(order) == len(fields) {
			return pick(fields, byName, order)
		}
		if !contains(order, fields[0].Fieldname) {
			var prepend []string
			found := false
			for _, f := range fields {
				if f.IsCustom {
					break
				}
				if contains(order, f.Fieldname) {
					found = true
					break
				}
				prepend = append(prepend, f.Fieldname)
			}
			if found {
				order = append(prepend, order...)
			} else {
				order = prepend
			}
		}
	}
	existing := map[string]bool{}
	for _, n := range order {
		existing[n] = true
	}
	useExisting := len(order) > 0
	insertAfter := map[string][]string{}
	var insertKeys []string // map iteration order must be deterministic
	addAfter := func(after, name string) {
		if _, ok := insertAfter[after]; !ok {
			insertKeys = append(insertKeys, after)
		}
		insertAfter[after] = append(insertAfter[after], name)
	}
	for i, f := range fields {
		if useExisting && existing[f.Fieldname] {
			continue
		}
		switch {
		case !f.IsCustom:
			if useExisting {
				prev := fields[(i-1+len(fields))%len(fields)].Fieldname
				addAfter(prev, f.Fieldname)
			} else {
				order = append(order, f.Fieldname)
			}
		case f.InsertAfter != "":
			addAfter(f.InsertAfter, f.Fieldname)
		default:
			order = append([]string{f.Fieldname}, order...)
		}
	}
	for progress := true; progress && len(insertAfter) > 0; {
		progress = false
		for _, after := range insertKeys {
			names, ok := insertAfter[after]
			if !ok {
				continue
			}
			at := indexOf(order, after)
			if at < 0 {
				continue
			}
			rest := append([]string{}, order[at+1:]...)
			order = append(append(order[:at+1], names...), rest...)
			delete(insertAfter, after)
			progress = true
		}
	}
	for _, after := range insertKeys {
		order = append(order, insertAfter[after]...)
	}
	return pick(fields, byName, order)
}

func pick(fields []DocField, byName map[string]int, order []string) []DocField {
	out := make([]DocField, 0, len(fields))
	used := make(map[string]bool, len(order))
	for _, n := range order {
		if !used[n] {
			out = append(out, fields[byName[n]])
			used[n] = true
		}
	}
	for _, f := range fields { // never lose a field
		if !used[f.Fieldname] {
			out = append(out, f)
		}
	}
	return out
}

func contains(list []string, s string) bool { return indexOf(list, s) >= 0 }

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}
