package bridge

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseItemKeepsFrappeFieldOrderAndChildTables(t *testing.T) {
	item := fixture(t, "item.json")
	if item.Name != "Item" || item.Module != "Stock" || item.IsTable || item.Autoname != "field:item_code" || item.NamingRule != "By fieldname" {
		t.Fatalf("Item header = %+v", *item)
	}
	// field_order, not the "fields" array, is the real order.
	raw, err := os.ReadFile(filepath.Join("testdata", "doctypes", "item.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		FieldOrder []string `json:"field_order"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	if len(item.Fields) != len(file.FieldOrder) {
		t.Fatalf("%d fields, field_order has %d", len(item.Fields), len(file.FieldOrder))
	}
	for i, f := range item.Fields {
		if f.Fieldname != file.FieldOrder[i] || f.Idx != i+1 {
			t.Fatalf("field %d is %s (idx %d), field_order says %s", i+1, f.Fieldname, f.Idx, file.FieldOrder[i])
		}
	}
	children := map[string]string{}
	for _, f := range item.TableFields() {
		children[f.Fieldname] = f.Options
	}
	for field, child := range map[string]string{"barcodes": "Item Barcode", "uoms": "UOM Conversion Detail", "item_defaults": "Item Default"} {
		if children[field] != child {
			t.Errorf("Item.%s → %q, want %q", field, children[field], child)
		}
	}
	code := item.Field("item_code")
	if code == nil || !code.Unique || !code.Reqd || code.SearchIndex || code.Fieldtype != "Data" {
		t.Errorf("item_code = %+v", code)
	}
	if f := item.Field("end_of_life"); f == nil || f.Default != "2099-12-31" || f.Fieldtype != "Date" {
		t.Errorf("end_of_life = %+v", f)
	}
	for _, f := range item.ColumnFields() {
		if !f.HasColumn() || f.IsTableField() || noValueFieldtypes[f.Fieldtype] {
			t.Errorf("ColumnFields returned %s (%s)", f.Fieldname, f.Fieldtype)
		}
	}
}

func TestParseChildTableWithoutFieldOrderKeepsFileOrder(t *testing.T) {
	ucd := fixture(t, "uom_conversion_detail.json")
	if !ucd.IsTable || len(ucd.Fields) != 2 || ucd.Fields[0].Fieldname != "uom" || ucd.Fields[1].Fieldname != "conversion_factor" {
		t.Fatalf("UOM Conversion Detail = %+v", ucd)
	}
	// "length": 0 and "unique": 0 in old exports mean "not set".
	if ucd.Fields[0].Length != 0 || ucd.Fields[0].Unique {
		t.Errorf("uom = %+v", ucd.Fields[0])
	}
}

func TestTreeDocTypesGetFrappesNestedSetFields(t *testing.T) {
	ig := fixture(t, "item_group.json")
	if !ig.IsTree || ig.NSMParentField != "parent_item_group" {
		t.Fatalf("Item Group: is_tree=%v nsm_parent_field=%q", ig.IsTree, ig.NSMParentField)
	}
	for _, n := range []string{"lft", "rgt", "old_parent", "is_group", "parent_item_group"} {
		if ig.Field(n) == nil {
			t.Errorf("Item Group has no %s", n)
		}
	}
	// A tree defined without them gets what DocType.add_nestedset_fields adds.
	dt, err := ParseDocType([]byte(`{"doctype":"DocType","name":"Sales Region","is_tree":1,"fields":[{"fieldname":"region_name","fieldtype":"Data"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"region_name", "lft", "rgt", "is_group", "old_parent", "parent_sales_region"}
	var got []string
	for _, f := range dt.Fields {
		got = append(got, f.Fieldname)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("fields = %v, want %v", got, want)
	}
	if dt.NSMParentField != "parent_sales_region" || dt.Field("lft").Fieldtype != "Int" || dt.Field("old_parent").Options != "Sales Region" {
		t.Errorf("nested set fields = %+v", dt.Fields)
	}
}

func TestParseAcceptsFrappesLooseJSONTypes(t *testing.T) {
	dt, err := ParseDocType([]byte(`{"doctype":"DocType","name":"Loose","fields":[
		{"fieldname":"a","fieldtype":"Int","default":7,"reqd":true,"length":"5"},
		{"fieldname":"b","fieldtype":"Data","unique":"1","search_index":1,"precision":2,"default":null}]}`))
	if err != nil {
		t.Fatal(err)
	}
	a, b := dt.Field("a"), dt.Field("b")
	if a.Default != "7" || !a.Reqd || a.Length != 5 {
		t.Errorf("a = %+v", a)
	}
	// DocType.scrub_field_names: a unique field is not also search_index.
	if !b.Unique || b.SearchIndex || b.Precision != "2" || b.Default != "" {
		t.Errorf("b = %+v", b)
	}
}

func TestParseRejectsMaliciousNames(t *testing.T) {
	cases := map[string]string{
		"fieldname":     `{"name":"Item","fields":[{"fieldname":"x` + "`" + `; DROP TABLE y; --","fieldtype":"Data"}]}`,
		"doctype name":  `{"name":"x` + "`" + `; DROP TABLE y; --","fields":[]}`,
		"pg quote":      `{"name":"Item\"; DROP TABLE \"tabUser\"; --","fields":[]}`,
		"child doctype": `{"name":"Item","fields":[{"fieldname":"rows","fieldtype":"Table","options":"Row` + "`" + `; DROP TABLE y"}]}`,
	}
	for what, js := range cases {
		_, err := ParseDocType([]byte(js))
		if !errors.Is(err, ErrInvalidName) {
			t.Errorf("%s: err = %v, want ErrInvalidName", what, err)
		}
	}
}

func TestParseRejectsInconsistentDefinitions(t *testing.T) {
	cases := map[string]struct {
		js   string
		want error
	}{
		"unknown fieldtype":  {`{"name":"Item","fields":[{"fieldname":"a","fieldtype":"Money"}]}`, ErrInvalidDocType},
		"duplicate field":    {`{"name":"Item","fields":[{"fieldname":"a","fieldtype":"Data"},{"fieldname":"A","fieldtype":"Int"}]}`, ErrInvalidDocType},
		"standard column":    {`{"name":"Item","fields":[{"fieldname":"modified","fieldtype":"Datetime"}]}`, ErrInvalidName},
		"child column":       {`{"name":"Item","istable":1,"fields":[{"fieldname":"parent","fieldtype":"Data"}]}`, ErrInvalidName},
		"varchar too long":   {`{"name":"Item","fields":[{"fieldname":"a","fieldtype":"Data","length":1001}]}`, ErrInvalidDocType},
		"bad precision":      {`{"name":"Item","fields":[{"fieldname":"a","fieldtype":"Float","precision":"12"}]}`, ErrInvalidDocType},
		"infinite default":   {`{"name":"Item","fields":[{"fieldname":"a","fieldtype":"Float","default":"inf"}]}`, ErrInvalidValue},
		"not a doctype":      {`{"doctype":"Item","name":"ITEM-0001"}`, ErrInvalidDocType},
		"not json":           {`{"name":`, ErrInvalidDocType},
		"table and single":   {`{"name":"Item","istable":1,"issingle":1,"fields":[]}`, ErrInvalidDocType},
		"missing tree field": {`{"name":"Area","is_tree":1,"nsm_parent_field":"nope","fields":[]}`, ErrInvalidDocType},
	}
	for what, c := range cases {
		if _, err := ParseDocType([]byte(c.js)); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", what, err, c.want)
		}
	}
}

func TestAllFixturesParse(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "doctypes", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("fixtures: %v %v", files, err)
	}
	for _, f := range files {
		if _, err := ReadDocTypeFile(f); err != nil {
			t.Error(err)
		}
	}
}
