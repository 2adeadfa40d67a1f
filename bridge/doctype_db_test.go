package bridge

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// installFrappeMeta creates Frappe's own metadata tables (tabDocType,
// tabDocField, tabCustom Field, tabProperty Setter) from their DocType
// definitions, as a fresh site has them.
func installFrappeMeta(t *testing.T, ctx context.Context, db *DB) {
	t.Helper()
	for _, f := range []string{"doctype.json", "docfield.json", "custom_field.json", "property_setter.json"} {
		mustEnsure(t, ctx, db, fixture(t, f))
	}
}

func insertRow(t *testing.T, ctx context.Context, q Querier, table string, row map[string]any) {
	t.Helper()
	d := q.Dialect()
	keys := make([]string, 0, len(row))
	for k := range row {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	cols, marks, args := make([]string, len(keys)), make([]string, len(keys)), make([]any, len(keys))
	for i, k := range keys {
		cols[i], marks[i], args[i] = d.mustQuote(k), d.Placeholder(i+1), row[k]
	}
	mustExec(t, ctx, q, "INSERT INTO "+d.mustQuote(table)+" ("+strings.Join(cols, ", ")+") VALUES ("+strings.Join(marks, ", ")+")", args...)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func fieldRow(f *DocField) map[string]any {
	return map[string]any{
		"fieldname": f.Fieldname, "fieldtype": f.Fieldtype, "label": f.Label, "options": f.Options,
		"length": f.Length, "precision": f.Precision, "default": f.Default, "reqd": b2i(f.Reqd),
		"unique": b2i(f.Unique), "search_index": b2i(f.SearchIndex), "no_copy": b2i(f.NoCopy),
		"hidden": b2i(f.Hidden), "read_only": b2i(f.ReadOnly), "is_virtual": b2i(f.IsVirtual),
		"set_only_once": b2i(f.SetOnlyOnce), "allow_on_submit": b2i(f.AllowOnSubmit),
		"translatable": b2i(f.Translatable), "non_negative": b2i(f.NonNegative),
		"fetch_from": f.FetchFrom, "fetch_if_empty": b2i(f.FetchIfEmpty), "idx": f.Idx,
	}
}

// storeDocType writes dt the way Frappe stores a synced DocType: one
// tabDocType row and one tabDocField row per field. Rows go in reverse order
// so that only ORDER BY idx yields the right order.
func storeDocType(t *testing.T, ctx context.Context, q Querier, dt *DocType) {
	t.Helper()
	insertRow(t, ctx, q, "tabDocType", map[string]any{
		"name": dt.Name, "module": dt.Module, "istable": b2i(dt.IsTable), "issingle": b2i(dt.IsSingle),
		"is_tree": b2i(dt.IsTree), "is_virtual": b2i(dt.IsVirtual), "is_submittable": b2i(dt.IsSubmittable),
		"custom": b2i(dt.Custom), "autoname": dt.Autoname, "naming_rule": dt.NamingRule,
		"nsm_parent_field": dt.NSMParentField, "title_field": dt.TitleField, "search_fields": dt.SearchFields,
		"sort_field": dt.SortField, "sort_order": dt.SortOrder, "track_seen": b2i(dt.TrackSeen),
		"track_changes": b2i(dt.TrackChanges), "engine": dt.Engine, "modified": "2025-12-01 10:34:34.788317",
	})
	for i := len(dt.Fields) - 1; i >= 0; i-- {
		row := fieldRow(&dt.Fields[i])
		row["name"] = fmt.Sprintf("%s-%04d", strings.ReplaceAll(dt.Name, " ", ""), i)
		row["parent"], row["parenttype"], row["parentfield"] = dt.Name, "DocType", "fields"
		insertRow(t, ctx, q, "tabDocField", row)
	}
}

func addCustomField(t *testing.T, ctx context.Context, q Querier, doctype string, idx int, f DocField) {
	t.Helper()
	row := fieldRow(&f)
	row["name"], row["dt"], row["insert_after"], row["idx"] = doctype+"-"+f.Fieldname, doctype, f.InsertAfter, idx
	cols, err := tableColumns(ctx, q, "tabCustom Field")
	if err != nil {
		t.Fatal(err)
	}
	for k := range row {
		if !cols[k] {
			delete(row, k) // Custom Field lacks some DocField properties (set_only_once…)
		}
	}
	insertRow(t, ctx, q, "tabCustom Field", row)
}

func addPropertySetter(t *testing.T, ctx context.Context, q Querier, doctype, field, property, propertyType, value string) {
	t.Helper()
	on := "DocField"
	if field == "" {
		on = "DocType"
	}
	insertRow(t, ctx, q, "tabProperty Setter", map[string]any{
		"name": doctype + "-" + field + "-" + property, "doctype_or_field": on, "doc_type": doctype,
		"field_name": field, "property": property, "property_type": propertyType, "value": value,
	})
}

func fieldnames(dt *DocType) []string {
	var out []string
	for _, f := range dt.Fields {
		out = append(out, f.Fieldname)
	}
	return out
}

func TestLoadDocTypeReadsTheDefinitionFrappeStored(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d Dialect) {
		ctx := testContext(t)
		td := newTestDatabase(t, d)
		installFrappeMeta(t, ctx, td.DB)
		for _, file := range []string{"item.json", "item_group.json", "item_barcode.json"} {
			want := fixture(t, file)
			storeDocType(t, ctx, td.DB, want)
			got, stats, err := LoadDocType(ctx, td.DB, want.Name)
			if err != nil {
				t.Fatal(err)
			}
			if stats.StandardFields != len(want.Fields) || stats.CustomFields != 0 || stats.PropertySetters != 0 {
				t.Errorf("%s stats = %+v", want.Name, stats)
			}
			want = want.Clone()
			want.RowFormat = "" // a file-only key: tabDocType has no row_format column in v15
			want.Modified = "2025-12-01 10:34:34.788317"
			if !reflect.DeepEqual(got, want) {
				for i := range want.Fields {
					if i < len(got.Fields) && !reflect.DeepEqual(got.Fields[i], want.Fields[i]) {
						t.Errorf("field %d:\n got %+v\nwant %+v", i, got.Fields[i], want.Fields[i])
						break
					}
				}
				got.Fields, want.Fields = nil, nil
				t.Errorf("%s:\n got %+v\nwant %+v", want.Name, got, want)
			}
		}
	})
}

func TestLoadDocTypeMergesCustomFieldsAndPropertySettersLikeFrappesMeta(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d Dialect) {
		ctx := testContext(t)
		td := newTestDatabase(t, d)
		installFrappeMeta(t, ctx, td.DB)
		item := fixture(t, "item.json")
		storeDocType(t, ctx, td.DB, item)

		addCustomField(t, ctx, td.DB, "Item", 1, DocField{Fieldname: "custom_site_note", Fieldtype: "Data", InsertAfter: "item_name"})
		addCustomField(t, ctx, td.DB, "Item", 2, DocField{Fieldname: "custom_top", Fieldtype: "Check", Default: "1"})
		addCustomField(t, ctx, td.DB, "Item", 3, DocField{Fieldname: "custom_after_custom", Fieldtype: "Int", InsertAfter: "custom_site_note"})
		addCustomField(t, ctx, td.DB, "Item", 4, DocField{Fieldname: "custom_orphan", Fieldtype: "Data", InsertAfter: "no_such_field"})
		addPropertySetter(t, ctx, td.DB, "Item", "item_name", "length", "Int", "200")
		addPropertySetter(t, ctx, td.DB, "Item", "brand", "search_index", "Check", "1")
		addPropertySetter(t, ctx, td.DB, "Item", "", "track_seen", "Check", "1")
		addPropertySetter(t, ctx, td.DB, "Item", "no_such_field", "hidden", "Check", "1") // ignored, as in Meta

		got, stats, err := LoadDocType(ctx, td.DB, "Item")
		if err != nil {
			t.Fatal(err)
		}
		if stats.StandardFields != len(item.Fields) || stats.CustomFields != 4 || stats.PropertySetters != 3 {
			t.Errorf("stats = %+v", stats)
		}
		// Meta.sort_fields: a custom field without insert_after goes first,
		// chains follow their anchor, an unknown anchor goes last.
		want := []string{"custom_top"}
		for _, n := range fieldnames(item) {
			want = append(want, n)
			if n == "item_name" {
				want = append(want, "custom_site_note", "custom_after_custom")
			}
		}
		want = append(want, "custom_orphan")
		if g := fieldnames(got); strings.Join(g, ",") != strings.Join(want, ",") {
			t.Errorf("field order:\n got %v\nwant %v", g, want)
		}
		for _, n := range []string{"custom_top", "custom_site_note", "custom_after_custom", "custom_orphan"} {
			if f := got.Field(n); f == nil || !f.IsCustom {
				t.Errorf("%s: %+v, want IsCustom", n, f)
			}
		}
		if got.Field("item_code").IsCustom {
			t.Error("item_code marked custom")
		}
		if got.Field("item_name").Length != 200 || !got.Field("brand").SearchIndex || !got.TrackSeen {
			t.Errorf("property setters not applied: item_name length %d, brand search_index %v, track_seen %v",
				got.Field("item_name").Length, got.Field("brand").SearchIndex, got.TrackSeen)
		}

		// The site's view builds the site's table: custom columns included.
		mustEnsure(t, ctx, td.DB, got)
		info := mustInspect(t, ctx, td.DB, "tabItem")
		facts := map[Dialect]string{
			MariaDB: `
				item_name            varchar(200)  NULL      -
				custom_top           int(1)        NOT-NULL  1
				custom_site_note     varchar(140)  NULL      -
				custom_after_custom  int(11)       NOT-NULL  0
				_seen                text          NULL      -`,
			Postgres: `
				item_name            varchar(200)  NULL      -
				custom_top           smallint      NOT-NULL  1
				custom_site_note     varchar(140)  NULL      -
				custom_after_custom  bigint        NOT-NULL  0
				_seen                text          NULL      -`,
		}[d]
		checkColumns(t, d, info, facts, false)
		if !info.HasIndexOn(d, "brand", false) {
			t.Errorf("no index on brand: %s", describeIndexes(info))
		}
	})
}

func TestLoadDocTypeHonoursAFieldOrderPropertySetter(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d Dialect) {
		ctx := testContext(t)
		td := newTestDatabase(t, d)
		installFrappeMeta(t, ctx, td.DB)
		storeDocType(t, ctx, td.DB, fixture(t, "uom.json"))
		addPropertySetter(t, ctx, td.DB, "UOM", "", "field_order", "Data", `["must_be_whole_number", "uom_name", "enabled"]`)
		got, _, err := LoadDocType(ctx, td.DB, "UOM")
		if err != nil {
			t.Fatal(err)
		}
		if g := strings.Join(fieldnames(got), ","); g != "must_be_whole_number,uom_name,enabled" {
			t.Errorf("field order = %s", g)
		}
	})
}

func TestLoadDocTypeValidatesNamesReadFromTheDatabase(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d Dialect) {
		ctx := testContext(t)
		td := newTestDatabase(t, d)
		installFrappeMeta(t, ctx, td.DB)
		storeDocType(t, ctx, td.DB, fixture(t, "uom.json"))
		addCustomField(t, ctx, td.DB, "UOM", 1, DocField{Fieldname: "x`; DROP TABLE `tabDocField`; --", Fieldtype: "Data"})
		_, _, err := LoadDocType(ctx, td.DB, "UOM")
		if !errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), "tabCustom Field") {
			t.Errorf("err = %v, want ErrInvalidName naming tabCustom Field", err)
		}
		if ok, _ := TableExists(ctx, td.DB, "tabDocField"); !ok {
			t.Error("tabDocField is gone")
		}
	})
}

func TestLoadDocTypeReportsMissingDefinitions(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d Dialect) {
		ctx := testContext(t)
		td := newTestDatabase(t, d)
		if _, _, err := LoadDocType(ctx, td.DB, "Item"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "tabDocType") {
			t.Errorf("no metadata tables: err = %v", err)
		}
		installFrappeMeta(t, ctx, td.DB)
		if _, _, err := LoadDocType(ctx, td.DB, "Item"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"Item"`) {
			t.Errorf("no Item row: err = %v", err)
		}
	})
}
