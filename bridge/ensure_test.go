package bridge

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// uomVersion returns the UOM fixture with some fields dropped and some added,
// standing for two schema versions of one master.
func uomVersion(t *testing.T, drop []string, add ...DocField) *DocType {
	t.Helper()
	dt := fixture(t, "uom.json").Clone()
	var fields []DocField
	for _, f := range dt.Fields {
		if !contains(drop, f.Fieldname) {
			fields = append(fields, f)
		}
	}
	dt.Fields = append(fields, add...)
	if err := dt.Validate(); err != nil {
		t.Fatal(err)
	}
	return dt
}

func countRows(t *testing.T, ctx context.Context, q Querier, table string) int64 {
	t.Helper()
	var n int64
	if err := queryRow(ctx, q, "SELECT COUNT(*) FROM "+q.Dialect().mustQuote(table), nil, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestEnsureTableAddsColumnsToATableWithRowsAndKeepsSiteColumns(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d Dialect) {
		ctx := testContext(t)
		td := newTestDatabase(t, d)
		q := d.mustQuote
		v1 := uomVersion(t, []string{"must_be_whole_number"})
		mustEnsure(t, ctx, td.DB, v1)

		ins := "INSERT INTO " + q("tabUOM") + " (" + q("name") + ", " + q("uom_name") + ", " + q("enabled") + ") VALUES (" + d.Placeholder(1) + ", " + d.Placeholder(2) + ", " + d.Placeholder(3) + ")"
		mustExec(t, ctx, td.DB, ins, "Nos", "Nos", 1)
		mustExec(t, ctx, td.DB, ins, "Kg", "Kg", 0)
		// The site's own column: a custom field added with Customize Form.
		mustExec(t, ctx, td.DB, "ALTER TABLE "+q("tabUOM")+" ADD COLUMN "+q("custom_site_note")+" varchar(50) DEFAULT 'local'")
		mustExec(t, ctx, td.DB, "UPDATE "+q("tabUOM")+" SET "+q("custom_site_note")+" = "+d.Placeholder(1)+" WHERE "+q("name")+" = "+d.Placeholder(2), "keep me", "Kg")
		before := mustInspect(t, ctx, td.DB, "tabUOM")

		v2 := uomVersion(t, nil,
			DocField{Fieldname: "symbol", Fieldtype: "Data", SearchIndex: true},
			DocField{Fieldname: "conversion_hint", Fieldtype: "Float", Default: "1.5"},
			DocField{Fieldname: "uom_code", Fieldtype: "Data", Unique: true},
			DocField{Fieldname: "is_metric", Fieldtype: "Check", Default: "1"},
			DocField{Fieldname: "notes", Fieldtype: "Small Text"},
		)
		rep := mustEnsure(t, ctx, td.DB, v2)
		if rep.Created {
			t.Error("EnsureTable says it created an existing table")
		}
		var changes []string
		for _, c := range rep.Changes {
			changes = append(changes, string(c.Kind)+" "+c.Target)
		}
		indexName := "symbol_index" // mariadb/schema.py alter(): ADD INDEX `<field>_index`
		if d == Postgres {
			indexName = "symbol" // postgres/schema.py alter(): CREATE INDEX "<field>"
		}
		want := []string{
			"add column must_be_whole_number", "add column symbol", "add column conversion_hint",
			"add column uom_code", "add column is_metric", "add column notes", "add index " + indexName,
		}
		if strings.Join(changes, ", ") != strings.Join(want, ", ") {
			t.Errorf("changes:\n got %v\nwant %v", changes, want)
		}
		if !reflect.DeepEqual(rep.SiteColumns, []string{"custom_site_note"}) || len(rep.Mismatches) != 0 {
			t.Errorf("site columns %v, mismatches %+v", rep.SiteColumns, rep.Mismatches)
		}

		after := mustInspect(t, ctx, td.DB, "tabUOM")
		if got, was := *after.Column(d, "custom_site_note"), *before.Column(d, "custom_site_note"); !reflect.DeepEqual(got, was) {
			t.Errorf("site column changed: %+v → %+v", was, got)
		}
		checkColumns(t, d, after, map[Dialect]string{
			MariaDB: `
				must_be_whole_number int(1)        NOT-NULL  0
				symbol               varchar(140)  NULL      -
				conversion_hint      decimal(21,9) NOT-NULL  1.500000000
				uom_code             varchar(140)  NULL      -
				is_metric            int(1)        NOT-NULL  1
				notes                text          NULL      -`,
			Postgres: `
				must_be_whole_number smallint      NOT-NULL  0
				symbol               varchar(140)  NULL      -
				conversion_hint      decimal(21,9) NOT-NULL  1.5
				uom_code             varchar(140)  NULL      -
				is_metric            smallint      NOT-NULL  1
				notes                text          NULL      -`,
		}[d], false)
		if !after.HasIndexOn(d, "uom_code", true) || !after.HasIndexOn(d, "symbol", false) {
			t.Errorf("indexes after adding columns: %s", describeIndexes(after))
		}

		// Existing rows keep their values and get the new defaults.
		if n := countRows(t, ctx, td.DB, "tabUOM"); n != 2 {
			t.Fatalf("%d rows after EnsureTable, want 2", n)
		}
		var note, hint string
		var metric, whole int64
		err := queryRow(ctx, td.DB, "SELECT "+q("custom_site_note")+", "+q("conversion_hint")+", "+q("is_metric")+", "+q("must_be_whole_number")+
			" FROM "+q("tabUOM")+" WHERE "+q("name")+" = "+d.Placeholder(1), []any{"Kg"}, &note, &hint, &metric, &whole)
		if err != nil {
			t.Fatal(err)
		}
		if note != "keep me" || !sameNumber(hint, "1.5") || metric != 1 || whole != 0 {
			t.Errorf("row Kg = note %q, hint %s, is_metric %d, whole %d", note, hint, metric, whole)
		}

		if again := mustEnsure(t, ctx, td.DB, v2); again.Changed() || len(again.Mismatches) != 0 {
			t.Errorf("second EnsureTable: %+v", again)
		}
	})
}

func TestEnsureTableNeverDropsNarrowsOrRetypes(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d Dialect) {
		ctx := testContext(t)
		td := newTestDatabase(t, d)
		mustEnsure(t, ctx, td.DB, fixture(t, "uom.json"))
		mustExec(t, ctx, td.DB, "INSERT INTO "+d.mustQuote("tabUOM")+" ("+d.mustQuote("name")+", "+d.mustQuote("uom_name")+") VALUES ("+d.Placeholder(1)+", "+d.Placeholder(2)+")", "N", strings.Repeat("N", 120))
		before := mustInspect(t, ctx, td.DB, "tabUOM")

		v3 := uomVersion(t, []string{"must_be_whole_number"})
		v3.Field("uom_name").Length = 100                                                     // narrower
		*v3.Field("enabled") = DocField{Fieldname: "enabled", Fieldtype: "Int", Default: "5"} // other type and default
		rep := mustEnsure(t, ctx, td.DB, v3)
		if rep.Changed() {
			t.Errorf("EnsureTable changed the schema: %v", rep.Changes)
		}
		if !reflect.DeepEqual(mustInspect(t, ctx, td.DB, "tabUOM"), before) {
			t.Error("table layout changed")
		}
		if !reflect.DeepEqual(rep.SiteColumns, []string{"must_be_whole_number"}) {
			t.Errorf("site columns = %v; a field dropped from the doctype keeps its column", rep.SiteColumns)
		}
		got := map[string]string{}
		for _, m := range rep.Mismatches {
			got[m.Column] = m.Reason
		}
		if len(got) != 2 || !strings.Contains(got["uom_name"], "type is varchar(140), Frappe's is varchar(100)") ||
			!strings.Contains(got["enabled"], "type is") || !strings.Contains(got["enabled"], "default is") {
			t.Errorf("mismatches = %+v", rep.Mismatches)
		}

		wider := fixture(t, "uom.json").Clone()
		wider.Field("uom_name").Length = 200
		rep = mustEnsure(t, ctx, td.DB, wider)
		if rep.Changed() || len(rep.Mismatches) != 1 || !strings.Contains(rep.Mismatches[0].Reason, "values longer than 140 characters will be rejected") {
			t.Errorf("wider field: changes %v, mismatches %+v", rep.Changes, rep.Mismatches)
		}
	})
}

func TestEnsureTableAddsMissingIndexesAndReportsDuplicatesBlockingAUniqueIndex(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d Dialect) {
		ctx := testContext(t)
		td := newTestDatabase(t, d)
		q := d.mustQuote
		uom := fixture(t, "uom.json")
		stmts, err := CreateTableSQL(d, uom)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range stmts {
			mustExec(t, ctx, td.DB, s)
		}
		// An older table: no unique index on uom_name, no modified index.
		if d == MariaDB {
			mustExec(t, ctx, td.DB, "ALTER TABLE `tabUOM` DROP INDEX `uom_name`, DROP INDEX `modified`")
		} else {
			mustExec(t, ctx, td.DB, `ALTER TABLE "tabUOM" DROP CONSTRAINT "tabUOM_uom_name_key"`)
		}
		ins := "INSERT INTO " + q("tabUOM") + " (" + q("name") + ", " + q("uom_name") + ") VALUES (" + d.Placeholder(1) + ", " + d.Placeholder(2) + ")"
		mustExec(t, ctx, td.DB, ins, "a", "Nos")
		mustExec(t, ctx, td.DB, ins, "b", "Nos")

		rep, err := EnsureTable(ctx, td.DB, uom)
		if !errors.Is(err, ErrSchema) || !strings.Contains(err.Error(), "uom_name") {
			t.Fatalf("err = %v, want ErrSchema naming uom_name", err)
		}
		var kinds []string
		for _, c := range rep.Changes {
			kinds = append(kinds, string(c.Kind)+" "+c.Target)
		}
		wantKinds := ""
		if d == MariaDB {
			wantKinds = "add index modified" // the other missing index is still added
		}
		if strings.Join(kinds, ", ") != wantKinds {
			t.Errorf("changes = %v, want %q", kinds, wantKinds)
		}

		mustExec(t, ctx, td.DB, "DELETE FROM "+q("tabUOM")+" WHERE "+q("name")+" = "+d.Placeholder(1), "b")
		rep = mustEnsure(t, ctx, td.DB, uom)
		uniqueName := "uom_name" // mariadb alter(): ADD UNIQUE INDEX IF NOT EXISTS <field>
		if d == Postgres {
			uniqueName = "unique_uom_name" // postgres alter(): CREATE UNIQUE INDEX "unique_<field>"
		}
		if len(rep.Changes) != 1 || rep.Changes[0].Kind != AddedUnique || rep.Changes[0].Target != uniqueName {
			t.Errorf("changes = %v", rep.Changes)
		}
		if !mustInspect(t, ctx, td.DB, "tabUOM").HasIndexOn(d, "uom_name", true) {
			t.Error("no unique index on uom_name")
		}
	})
}

func TestEnsureTableRejectsMaliciousNamesBeforeAnySQL(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d Dialect) {
		ctx := testContext(t)
		td := newTestDatabase(t, d)
		mustEnsure(t, ctx, td.DB, fixture(t, "uom.json")) // the table an attack would target
		tables := func() []string {
			rows, err := td.DB.Query(ctx, map[Dialect]string{
				MariaDB:  "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME",
				Postgres: "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name",
			}[d])
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var out []string
			for rows.Next() {
				var n string
				if err := rows.Scan(&n); err != nil {
					t.Fatal(err)
				}
				out = append(out, n)
			}
			return out
		}
		before := tables()

		attacks := []*DocType{
			{Name: "Item", Fields: []DocField{{Fieldname: "x`; DROP TABLE `tabUOM`; --", Fieldtype: "Data"}}},
			{Name: "Item", Fields: []DocField{{Fieldname: `x"; DROP TABLE "tabUOM"; --`, Fieldtype: "Data"}}},
			{Name: "x`; DROP TABLE `tabUOM`; --", Fields: []DocField{{Fieldname: "a", Fieldtype: "Data"}}},
			{Name: `Item"; DROP TABLE "tabUOM"; --`, Fields: []DocField{{Fieldname: "a", Fieldtype: "Data"}}},
			{Name: "Item", Fields: []DocField{{Fieldname: "rows", Fieldtype: "Table", Options: "Row`; DROP TABLE `tabUOM"}}},
		}
		for _, dt := range attacks {
			if _, err := EnsureTable(ctx, td.DB, dt); !errors.Is(err, ErrInvalidName) {
				t.Errorf("EnsureTable(%q / %q) err = %v, want ErrInvalidName", dt.Name, dt.Fields[0].Fieldname, err)
			}
		}
		if _, _, err := LoadDocType(ctx, td.DB, "x`; DROP TABLE `tabUOM`; --"); !errors.Is(err, ErrInvalidName) {
			t.Errorf("LoadDocType err = %v, want ErrInvalidName", err)
		}
		if got := tables(); !reflect.DeepEqual(got, before) {
			t.Errorf("tables changed: %v → %v", before, got)
		}
	})
}

func TestEnsureTableGivesPostgresIndexesNamesNoOtherTableHolds(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d Dialect) {
		ctx := testContext(t)
		td := newTestDatabase(t, d)
		mustEnsure(t, ctx, td.DB, fixture(t, "item.json")) // indexes item_name on tabItem
		alias, err := ParseDocType([]byte(`{"name":"Item Alias","fields":[{"fieldname":"item_name","fieldtype":"Data","search_index":1}]}`))
		if err != nil {
			t.Fatal(err)
		}
		rep := mustEnsure(t, ctx, td.DB, alias)
		info := mustInspect(t, ctx, td.DB, "tabItem Alias")
		if !info.HasIndexOn(d, "item_name", false) {
			t.Fatalf("tabItem Alias has no index on item_name: %s", describeIndexes(info))
		}
		// PostgreSQL index names are per schema, so Frappe's name "item_name"
		// is taken by tabItem's index and CREATE INDEX IF NOT EXISTS would
		// silently do nothing. MariaDB names are per table.
		want := "item_name"
		if d == Postgres {
			want = "tabItem Alias_item_name_idx"
		}
		if info.Index(want) == nil {
			t.Errorf("index names: %s; changes %v", describeIndexes(info), rep.Changes)
		}
		if !mustInspect(t, ctx, td.DB, "tabItem").HasIndexOn(d, "item_name", false) {
			t.Error("tabItem lost its index")
		}
	})
}

func TestEnsureTableCreatesTheSequenceOfAnAutoincrementDocType(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d Dialect) {
		ctx := testContext(t)
		td := newTestDatabase(t, d)
		dt, err := ParseDocType([]byte(`{"name":"Sync Note","autoname":"autoincrement","fields":[{"fieldname":"note","fieldtype":"Data"}]}`))
		if err != nil {
			t.Fatal(err)
		}
		rep := mustEnsure(t, ctx, td.DB, dt)
		if len(rep.Changes) < 2 || rep.Changes[0].Kind != CreatedSequence || rep.Changes[1].Kind != CreatedTable {
			t.Fatalf("changes = %v", rep.Changes)
		}
		next := map[Dialect]string{MariaDB: "SELECT nextval(`sync_note_id_seq`)", Postgres: `SELECT nextval('"sync_note_id_seq"')`}[d]
		var n int64
		if err := queryRow(ctx, td.DB, next, nil, &n); err != nil || n != 1 {
			t.Errorf("nextval = %d, %v", n, err)
		}
		checkColumns(t, d, mustInspect(t, ctx, td.DB, "tabSync Note"), "name bigint NOT-NULL -", false)
	})
}
