package bridge

import (
	"sort"
	"strings"
	"testing"
)

// Column facts as each server reports them for tables Frappe v15 creates:
// "column  type  NULL|NOT-NULL  default" with "-" for no default. They are
// written down from mariadb/schema.py and postgres/schema.py create() and
// schema.py get_definition, not computed by the code under test.
var standardColumnFacts = map[Dialect]string{
	MariaDB: `
		name         varchar(140)  NOT-NULL  -
		creation     datetime(6)   NULL      -
		modified     datetime(6)   NULL      -
		modified_by  varchar(140)  NULL      -
		owner        varchar(140)  NULL      -
		docstatus    int(1)        NOT-NULL  0
		idx          int(8)        NOT-NULL  0`,
	Postgres: `
		name         varchar(140)  NOT-NULL  -
		creation     timestamp(6)  NULL      -
		modified     timestamp(6)  NULL      -
		modified_by  varchar(140)  NULL      -
		owner        varchar(140)  NULL      -
		docstatus    smallint      NOT-NULL  0
		idx          bigint        NOT-NULL  0`,
}

var childColumnFacts = `
		parent       varchar(140)  NULL      -
		parentfield  varchar(140)  NULL      -
		parenttype   varchar(140)  NULL      -`

var optionalColumnFacts = `
		_user_tags   text          NULL      -
		_comments    text          NULL      -
		_assign      text          NULL      -
		_liked_by    text          NULL      -`

// Item Barcode: a child table with a unique Data field.
var itemBarcodeFacts = map[Dialect]struct{ columns, indexes string }{
	MariaDB: {
		columns: standardColumnFacts[MariaDB] + `
		barcode      varchar(140)  NULL      -
		barcode_type varchar(140)  NULL      -
		uom          varchar(140)  NULL      -` + childColumnFacts,
		indexes: `PRIMARY PRIMARY(name) | barcode UNIQUE(barcode) | parent (parent)`,
	},
	Postgres: {
		columns: standardColumnFacts[Postgres] + `
		barcode      varchar(140)  NULL      -
		barcode_type varchar(140)  NULL      -
		uom          varchar(140)  NULL      -` + childColumnFacts,
		// Frappe v15's PostgreSQL create() adds no index on parent.
		indexes: `tabItem Barcode_pkey PRIMARY(name) | tabItem Barcode_barcode_key UNIQUE(barcode)`,
	},
}

// UOM: a non-child table with Check defaults 0 and 1.
var uomFacts = map[Dialect]struct{ columns, indexes string }{
	MariaDB: {
		columns: standardColumnFacts[MariaDB] + `
		enabled              int(1)        NOT-NULL  1
		uom_name             varchar(140)  NULL      -
		must_be_whole_number int(1)        NOT-NULL  0` + optionalColumnFacts,
		indexes: `PRIMARY PRIMARY(name) | uom_name UNIQUE(uom_name) | modified (modified)`,
	},
	Postgres: {
		columns: standardColumnFacts[Postgres] + `
		enabled              smallint      NOT-NULL  1
		uom_name             varchar(140)  NULL      -
		must_be_whole_number smallint      NOT-NULL  0` + optionalColumnFacts,
		indexes: `tabUOM_pkey PRIMARY(name) | tabUOM_uom_name_key UNIQUE(uom_name)`,
	},
}

// A selection of Item columns covering every storage rule Item exercises.
var itemColumnFacts = map[Dialect]string{
	MariaDB: `
		item_code                     varchar(140)   NULL      -
		item_name                     varchar(140)   NULL      -
		disabled                      int(1)         NOT-NULL  0
		is_stock_item                 int(1)         NOT-NULL  1
		opening_stock                 decimal(21,9)  NOT-NULL  0.000000000
		valuation_rate                decimal(21,9)  NOT-NULL  0.000000000
		min_order_qty                 decimal(21,9)  NOT-NULL  0.000000000
		shelf_life_in_days            int(11)        NOT-NULL  0
		end_of_life                   date           NULL      2099-12-31
		default_material_request_type varchar(140)   NULL      Purchase
		variant_based_on              varchar(140)   NULL      Item Attribute
		image                         text           NULL      -
		description                   longtext       NULL      -
		customer_code                 text           NULL      -`,
	Postgres: `
		item_code                     varchar(140)   NULL      -
		item_name                     varchar(140)   NULL      -
		disabled                      smallint       NOT-NULL  0
		is_stock_item                 smallint       NOT-NULL  1
		opening_stock                 decimal(21,9)  NOT-NULL  0
		valuation_rate                decimal(21,9)  NOT-NULL  0
		min_order_qty                 decimal(21,9)  NOT-NULL  0
		shelf_life_in_days            bigint         NOT-NULL  0
		end_of_life                   date           NULL      2099-12-31
		default_material_request_type varchar(140)   NULL      Purchase
		variant_based_on              varchar(140)   NULL      Item Attribute
		image                         text           NULL      -
		description                   text           NULL      -
		customer_code                 text           NULL      -`,
}

var itemIndexFacts = map[Dialect]string{
	MariaDB:  `PRIMARY PRIMARY(name) | item_code UNIQUE(item_code) | item_name (item_name) | item_group (item_group) | disabled (disabled) | variant_of (variant_of) | modified (modified)`,
	Postgres: `tabItem_pkey PRIMARY(name) | tabItem_item_code_key UNIQUE(item_code) | item_name (item_name) | item_group (item_group) | disabled (disabled) | variant_of (variant_of)`,
}

type columnFact struct{ name, typ, null, def string }

func parseFacts(t *testing.T, s string) []columnFact {
	t.Helper()
	var out []columnFact
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 4 {
			t.Fatalf("bad fact line %q", line)
		}
		out = append(out, columnFact{f[0], f[1], f[2], strings.Join(f[3:], " ")})
	}
	return out
}

func reportedFact(d Dialect, c *ColumnInfo) columnFact {
	null, def := "NULL", "-"
	if !c.Nullable {
		null = "NOT-NULL"
	}
	if c.Default != nil {
		def = defaultValue(d, *c.Default)
	}
	return columnFact{c.Name, canonicalType(d, c.Type), null, def}
}

// checkColumns asserts each fact; with exact, also that the table has
// exactly these columns in this order.
func checkColumns(t *testing.T, d Dialect, info *TableInfo, facts string, exact bool) {
	t.Helper()
	want := parseFacts(t, facts)
	for _, w := range want {
		c := info.Column(d, w.name)
		if c == nil {
			t.Errorf("%s: column %s is missing", info.Name, w.name)
			continue
		}
		w.typ = canonicalType(d, w.typ)
		if got := reportedFact(d, c); got != w {
			t.Errorf("%s.%s = %v, Frappe makes %v", info.Name, w.name, got, w)
		}
	}
	if exact {
		var got, exp []string
		for _, c := range info.Columns {
			got = append(got, c.Name)
		}
		for _, w := range want {
			exp = append(exp, w.name)
		}
		if strings.Join(got, ",") != strings.Join(exp, ",") {
			t.Errorf("%s columns:\n got %v\nwant %v", info.Name, got, exp)
		}
	}
}

func describeIndexes(info *TableInfo) string {
	var out []string
	for _, ix := range info.Indexes {
		kind := ""
		switch {
		case ix.Primary:
			kind = "PRIMARY"
		case ix.Unique:
			kind = "UNIQUE"
		}
		out = append(out, ix.Name+" "+kind+"("+strings.Join(ix.Columns, ",")+")")
	}
	sort.Strings(out)
	return strings.Join(out, " | ")
}

func checkIndexes(t *testing.T, info *TableInfo, facts string) {
	t.Helper()
	want := strings.Split(facts, " | ")
	for i := range want {
		want[i] = strings.TrimSpace(want[i])
	}
	sort.Strings(want)
	if got := describeIndexes(info); got != strings.Join(want, " | ") {
		t.Errorf("%s indexes:\n got %s\nwant %s", info.Name, got, strings.Join(want, " | "))
	}
}

// MariaDBTable.create: ENGINE=InnoDB ROW_FORMAT=DYNAMIC CHARACTER
// SET=utf8mb4 COLLATE=utf8mb4_unicode_ci; every text column inherits the
// collation (JSON columns are MariaDB's utf8mb4_bin LONGTEXT alias).
func checkMariaDBTableOptions(t *testing.T, info *TableInfo) {
	t.Helper()
	if info.Engine != "InnoDB" || info.RowFormat != "Dynamic" || info.Collation != "utf8mb4_unicode_ci" {
		t.Errorf("%s: engine=%s row_format=%s collation=%s, want InnoDB Dynamic utf8mb4_unicode_ci", info.Name, info.Engine, info.RowFormat, info.Collation)
	}
	for _, c := range info.Columns {
		if c.Collation != "" && c.Collation != "utf8mb4_unicode_ci" && c.Collation != "utf8mb4_bin" {
			t.Errorf("%s.%s collation %s", info.Name, c.Name, c.Collation)
		}
		if strings.HasPrefix(c.Type, "varchar") && c.Collation != "utf8mb4_unicode_ci" {
			t.Errorf("%s.%s collation %q, want utf8mb4_unicode_ci", info.Name, c.Name, c.Collation)
		}
	}
}

func TestCreateTableSQLBuildsTheTablesFrappeBuilds(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d Dialect) {
		ctx := testContext(t)
		td := newTestDatabase(t, d)
		for _, c := range []struct {
			file string
			want struct{ columns, indexes string }
		}{
			{"item_barcode.json", itemBarcodeFacts[d]},
			{"uom.json", uomFacts[d]},
		} {
			dt := fixture(t, c.file)
			stmts, err := CreateTableSQL(d, dt)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range stmts {
				mustExec(t, ctx, td.DB, s)
			}
			info := mustInspect(t, ctx, td.DB, dt.Table())
			checkColumns(t, d, info, c.want.columns, true)
			checkIndexes(t, info, c.want.indexes)
			if d == MariaDB {
				checkMariaDBTableOptions(t, info)
			}
		}
	})
}

func TestEnsureTableCreatesItemWithItsChildTablesAsFrappeDoes(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d Dialect) {
		ctx := testContext(t)
		td := newTestDatabase(t, d)
		item := fixture(t, "item.json")
		for _, file := range []string{"item.json", "item_barcode.json", "uom_conversion_detail.json", "item_default.json", "item_group.json", "customer.json", "uom.json"} {
			dt := fixture(t, file)
			rep := mustEnsure(t, ctx, td.DB, dt)
			if !rep.Created || rep.Changes[0].Kind != CreatedTable || len(rep.Mismatches) != 0 || len(rep.SiteColumns) != 0 {
				t.Errorf("%s: first EnsureTable = %+v", dt.Name, rep)
			}
			again := mustEnsure(t, ctx, td.DB, dt)
			if again.Created || again.Changed() || len(again.Mismatches) != 0 {
				t.Errorf("%s: second EnsureTable changed something: %+v", dt.Name, again)
			}
		}

		// Every child table Item points at exists.
		for _, f := range item.TableFields() {
			switch f.Options {
			case "Item Barcode", "UOM Conversion Detail", "Item Default":
				if ok, err := TableExists(ctx, td.DB, "tab"+f.Options); err != nil || !ok {
					t.Errorf("child table tab%s: exists=%v err=%v", f.Options, ok, err)
				}
			}
		}

		info := mustInspect(t, ctx, td.DB, "tabItem")
		checkColumns(t, d, info, standardColumnFacts[d]+itemColumnFacts[d]+optionalColumnFacts, false)
		checkIndexes(t, info, itemIndexFacts[d])
		// Exactly: standard columns, one per value field in field order,
		// then the optional columns; no column for layout or Table fields.
		want := append([]string{}, defaultColumns...)
		for _, f := range item.ColumnFields() {
			want = append(want, f.Fieldname)
		}
		want = append(want, optionalColumns...)
		var got []string
		for _, c := range info.Columns {
			got = append(got, c.Name)
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("tabItem columns:\n got %v\nwant %v", got, want)
		}
		for _, f := range item.Fields {
			if !f.HasColumn() && info.Column(d, f.Fieldname) != nil {
				t.Errorf("%s field %s got a column", f.Fieldtype, f.Fieldname)
			}
		}
		if d == MariaDB {
			checkMariaDBTableOptions(t, info)
		}

		// Item Group is a tree: lft and rgt are search_index Int fields.
		ig := mustInspect(t, ctx, td.DB, "tabItem Group")
		facts := `
			lft          int(11)       NOT-NULL  0
			rgt          int(11)       NOT-NULL  0
			old_parent   varchar(140)  NULL      -
			is_group     int(1)        NOT-NULL  0`
		if d == Postgres {
			facts = `
			lft          bigint        NOT-NULL  0
			rgt          bigint        NOT-NULL  0
			old_parent   varchar(140)  NULL      -
			is_group     smallint      NOT-NULL  0`
		}
		checkColumns(t, d, ig, facts, false)
		if !ig.HasIndexOn(d, "lft", false) || !ig.HasIndexOn(d, "rgt", false) {
			t.Errorf("tabItem Group indexes: %s", describeIndexes(ig))
		}

		// Item Default is a child table: parent index on MariaDB only.
		idf := mustInspect(t, ctx, td.DB, "tabItem Default")
		checkColumns(t, d, idf, childColumnFacts, false)
		if got := idf.HasIndexOn(d, "parent", false); got != (d == MariaDB) {
			t.Errorf("tabItem Default parent index = %v on %v", got, d)
		}
	})
}

// Every fieldtype, lengths, defaults with quotes and backslashes, shortcuts,
// unique and indexed fields of every kind, track_seen.
func TestEnsureTableStoresEveryFieldtypeAsFrappeDoes(t *testing.T) {
	facts := map[Dialect]string{
		MariaDB: `
			f_data_long     varchar(255)   NULL      -
			f_data_short    varchar(20)    NULL      -
			f_select        varchar(140)   NULL      Purchase
			f_check         int(1)         NOT-NULL  1
			f_int           int(11)        NOT-NULL  7
			f_int_small     int(5)         NOT-NULL  0
			f_int_big       bigint(20)     NOT-NULL  0
			f_currency      decimal(21,9)  NOT-NULL  1234.500000000
			f_float         decimal(21,9)  NOT-NULL  0.000000000
			f_duration      decimal(21,9)  NULL      -
			f_rating        decimal(3,2)   NULL      -
			f_date          date           NULL      2099-12-31
			f_date_today    date           NULL      -
			f_datetime      datetime(6)    NULL      -
			f_time          time(6)        NULL      -
			f_text          text           NULL      it's a "default" with \ and %
			f_code          longtext       NULL      -
			f_json          longtext       NULL      -
			f_company       varchar(140)   NULL      -
			_seen           text           NULL      -`,
		Postgres: `
			f_data_long     varchar(255)   NULL      -
			f_data_short    varchar(20)    NULL      -
			f_select        varchar(140)   NULL      Purchase
			f_check         smallint       NOT-NULL  1
			f_int           bigint         NOT-NULL  7
			f_int_small     bigint         NOT-NULL  0
			f_int_big       bigint         NOT-NULL  0
			f_currency      decimal(21,9)  NOT-NULL  1234.5
			f_float         decimal(21,9)  NOT-NULL  0
			f_duration      decimal(21,9)  NULL      -
			f_rating        decimal(3,2)   NULL      -
			f_date          date           NULL      2099-12-31
			f_date_today    date           NULL      -
			f_datetime      timestamp(6)   NULL      -
			f_time          time(6)        NULL      -
			f_text          text           NULL      it's a "default" with \ and %
			f_code          text           NULL      -
			f_json          json           NULL      -
			f_company       varchar(140)   NULL      -
			_seen           text           NULL      -`,
	}
	indexes := map[Dialect]string{
		MariaDB:  `PRIMARY PRIMARY(name) | f_unique_code UNIQUE(f_unique_code) | f_data_long (f_data_long) | modified (modified)`,
		Postgres: `tabType Probe_pkey PRIMARY(name) | tabType Probe_f_unique_code_key UNIQUE(f_unique_code) | f_data_long (f_data_long)`,
	}
	forEachDialect(t, func(t *testing.T, d Dialect) {
		ctx := testContext(t)
		td := newTestDatabase(t, d)
		dt := fixture(t, "type_probe.json")
		mustEnsure(t, ctx, td.DB, dt)
		info := mustInspect(t, ctx, td.DB, dt.Table())
		checkColumns(t, d, info, facts[d], false)
		// search_index on text and JSON makes no index; unique on bare text none.
		checkIndexes(t, info, indexes[d])
		for _, n := range []string{"f_html", "f_button", "f_heading", "f_image", "f_rows", "f_tags", "f_virtual", "section_main", "col_1"} {
			if info.Column(d, n) != nil {
				t.Errorf("%s has a column; Frappe gives it none", n)
			}
		}
		// The value the default names really is what a row gets.
		mustExec(t, ctx, td.DB, "INSERT INTO "+d.mustQuote(dt.Table())+" ("+d.mustQuote("name")+") VALUES ("+d.Placeholder(1)+")", "p1")
		var text, sel string
		if err := queryRow(ctx, td.DB, "SELECT "+d.mustQuote("f_text")+", "+d.mustQuote("f_select")+" FROM "+d.mustQuote(dt.Table()), nil, &text, &sel); err != nil {
			t.Fatal(err)
		}
		if text != `it's a "default" with \ and %` || sel != "Purchase" {
			t.Errorf("defaults stored as %q, %q", text, sel)
		}
	})
}
