package bridge

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Frappe v15 type_map, written down from frappe/database/mariadb/database.py
// and frappe/database/postgres/database.py (setup_type_map).
var frappeTypeMap = []struct {
	fieldtype, mariadb, postgres string
}{
	{"Currency", "decimal(21,9)", "decimal(21,9)"},
	{"Int", "int(11)", "bigint"},
	{"Long Int", "bigint(20)", "bigint"},
	{"Float", "decimal(21,9)", "decimal(21,9)"},
	{"Percent", "decimal(21,9)", "decimal(21,9)"},
	{"Check", "int(1)", "smallint"},
	{"Small Text", "text", "text"},
	{"Long Text", "longtext", "text"},
	{"Code", "longtext", "text"},
	{"Text Editor", "longtext", "text"},
	{"Markdown Editor", "longtext", "text"},
	{"HTML Editor", "longtext", "text"},
	{"Date", "date", "date"},
	{"Datetime", "datetime(6)", "timestamp"},
	{"Time", "time(6)", "time(6)"},
	{"Text", "text", "text"},
	{"Data", "varchar(140)", "varchar(140)"},
	{"Link", "varchar(140)", "varchar(140)"},
	{"Dynamic Link", "varchar(140)", "varchar(140)"},
	{"Password", "text", "text"},
	{"Select", "varchar(140)", "varchar(140)"},
	{"Rating", "decimal(3,2)", "decimal(3,2)"},
	{"Read Only", "varchar(140)", "varchar(140)"},
	{"Attach", "text", "text"},
	{"Attach Image", "text", "text"},
	{"Signature", "longtext", "text"},
	{"Color", "varchar(140)", "varchar(140)"},
	{"Barcode", "longtext", "text"},
	{"Geolocation", "longtext", "text"},
	{"Duration", "decimal(21,9)", "decimal(21,9)"},
	{"Icon", "varchar(140)", "varchar(140)"},
	{"Phone", "varchar(140)", "varchar(140)"},
	{"Autocomplete", "varchar(140)", "varchar(140)"},
	{"JSON", "json", "json"},
	// no_value_fields: no column.
	{"Section Break", "", ""}, {"Column Break", "", ""}, {"Tab Break", "", ""}, {"HTML", "", ""},
	{"Table", "", ""}, {"Table MultiSelect", "", ""}, {"Button", "", ""}, {"Image", "", ""},
	{"Fold", "", ""}, {"Heading", "", ""},
}

func TestColumnTypesMatchFrappeTypeMap(t *testing.T) {
	for _, c := range frappeTypeMap {
		f := &DocField{Fieldname: "f", Fieldtype: c.fieldtype}
		if got := ColumnType(MariaDB, f); got != c.mariadb {
			t.Errorf("MariaDB %s = %q, want %q", c.fieldtype, got, c.mariadb)
		}
		if got := ColumnType(Postgres, f); got != c.postgres {
			t.Errorf("PostgreSQL %s = %q, want %q", c.fieldtype, got, c.postgres)
		}
	}
	if len(frappeTypeMap) != len(dataFieldtypes)+len(noValueFieldtypes) {
		t.Errorf("table covers %d fieldtypes, Frappe has %d", len(frappeTypeMap), len(dataFieldtypes)+len(noValueFieldtypes))
	}
}

// get_definition: length overrides varchar size; Int length > 11 is bigint;
// on MariaDB an Int length below 11 is the display width; precision never
// changes the decimal size in v15; virtual fields have no column.
func TestLengthAndPrecisionFollowGetDefinition(t *testing.T) {
	cases := []struct {
		f                 DocField
		mariadb, postgres string
	}{
		{DocField{Fieldtype: "Data", Length: 255}, "varchar(255)", "varchar(255)"},
		{DocField{Fieldtype: "Link", Length: 20}, "varchar(20)", "varchar(20)"},
		{DocField{Fieldtype: "Select", Length: 40}, "varchar(40)", "varchar(40)"},
		{DocField{Fieldtype: "Int", Length: 5}, "int(5)", "bigint"},
		{DocField{Fieldtype: "Int", Length: 11}, "int(11)", "bigint"},
		{DocField{Fieldtype: "Int", Length: 12}, "bigint(20)", "bigint"},
		{DocField{Fieldtype: "Check", Length: 255}, "int(1)", "smallint"},
		{DocField{Fieldtype: "Text", Length: 255}, "text", "text"},
		{DocField{Fieldtype: "Float", Precision: "9"}, "decimal(21,9)", "decimal(21,9)"},
		{DocField{Fieldtype: "Currency", Precision: "2"}, "decimal(21,9)", "decimal(21,9)"},
		{DocField{Fieldtype: "Data", IsVirtual: true}, "", ""},
	}
	for _, c := range cases {
		c.f.Fieldname = "f"
		if got := ColumnType(MariaDB, &c.f); got != c.mariadb {
			t.Errorf("MariaDB %+v = %q, want %q", c.f, got, c.mariadb)
		}
		if got := ColumnType(Postgres, &c.f); got != c.postgres {
			t.Errorf("PostgreSQL %+v = %q, want %q", c.f, got, c.postgres)
		}
	}
}

// DbColumn.get_definition: Check/Int get "not null default cint(default)",
// Currency/Float/Percent "not null default flt(default)", other fields
// "default '<escaped>'" unless the default is empty, a shortcut resolved at
// insert time (Today, now, __user…) or starts with ":"; unique is appended
// unless the definition is bare text/longtext.
func TestColumnDefinitionsFollowGetDefinition(t *testing.T) {
	cases := []struct {
		f                 DocField
		mariadb, postgres string
	}{
		{DocField{Fieldtype: "Check"}, "int(1) not null default 0", "smallint not null default 0"},
		{DocField{Fieldtype: "Check", Default: "1"}, "int(1) not null default 1", "smallint not null default 1"},
		{DocField{Fieldtype: "Int", Default: "7.9"}, "int(11) not null default 7", "bigint not null default 7"},
		{DocField{Fieldtype: "Int", Default: "abc"}, "int(11) not null default 0", "bigint not null default 0"},
		{DocField{Fieldtype: "Int", Default: "-3"}, "int(11) not null default -3", "bigint not null default -3"},
		{DocField{Fieldtype: "Float", Default: "0.00"}, "decimal(21,9) not null default 0", "decimal(21,9) not null default 0"},
		{DocField{Fieldtype: "Currency", Default: "1,234.50"}, "decimal(21,9) not null default 1234.5", "decimal(21,9) not null default 1234.5"},
		{DocField{Fieldtype: "Percent", Default: "1e-5"}, "decimal(21,9) not null default 0.00001", "decimal(21,9) not null default 0.00001"},
		{DocField{Fieldtype: "Duration", Default: "60"}, "decimal(21,9) default '60'", "decimal(21,9) default '60'"},
		{DocField{Fieldtype: "Select", Default: "Purchase"}, "varchar(140) default 'Purchase'", "varchar(140) default 'Purchase'"},
		{DocField{Fieldtype: "Data", Default: "O'Brien"}, "varchar(140) default 'O''Brien'", "varchar(140) default 'O''Brien'"},
		{DocField{Fieldtype: "Data", Default: `C:\tmp`}, `varchar(140) default 'C:\\tmp'`, `varchar(140) default 'C:\tmp'`},
		{DocField{Fieldtype: "Date", Default: "Today"}, "date", "date"},
		{DocField{Fieldtype: "Datetime", Default: "now"}, "datetime(6)", "timestamp"},
		{DocField{Fieldtype: "Link", Default: "__user"}, "varchar(140)", "varchar(140)"},
		{DocField{Fieldtype: "Link", Default: ":Company"}, "varchar(140)", "varchar(140)"},
		{DocField{Fieldtype: "Data", Unique: true}, "varchar(140) unique", "varchar(140) unique"},
		{DocField{Fieldtype: "Int", Unique: true}, "int(11) not null default 0 unique", "bigint not null default 0 unique"},
		{DocField{Fieldtype: "Text", Unique: true}, "text", "text"},
		{DocField{Fieldtype: "Long Text", Unique: true}, "longtext", "text"},
		{DocField{Fieldtype: "Text", Unique: true, Default: "x"}, "text default 'x' unique", "text default 'x' unique"},
		{DocField{Fieldtype: "JSON", Unique: true}, "json", "json"},
	}
	for _, c := range cases {
		c.f.Fieldname = "f"
		for _, d := range dialects {
			want := c.mariadb
			if d == Postgres {
				want = c.postgres
			}
			col, err := fieldColumn(d, &c.f)
			if err != nil {
				t.Errorf("%v %+v: %v", d, c.f, err)
				continue
			}
			if got := col.Definition(); got != want {
				t.Errorf("%v %+v: %q, want %q", d, c.f, got, want)
			}
		}
	}
}

func TestSinglesAndVirtualDocTypesHaveNoTable(t *testing.T) {
	for _, js := range []string{
		`{"name":"System Settings","issingle":1,"fields":[{"fieldname":"time_zone","fieldtype":"Autocomplete"}]}`,
		`{"name":"Virtual Thing","is_virtual":1,"fields":[]}`,
	} {
		dt, err := ParseDocType([]byte(js))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := CreateTableSQL(MariaDB, dt); !errors.Is(err, ErrNoTable) {
			t.Errorf("%s: err = %v, want ErrNoTable", dt.Name, err)
		}
	}
}

func TestAutoincrementDocTypesUseABigintNameAndASequence(t *testing.T) {
	dt, err := ParseDocType([]byte(`{"name":"Access Log Entry","autoname":"autoincrement","fields":[{"fieldname":"note","fieldtype":"Data"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	m, err := CreateTableSQL(MariaDB, dt)
	if err != nil {
		t.Fatal(err)
	}
	if m[0] != "create sequence if not exists `access_log_entry_id_seq` nocache nocycle" || !strings.Contains(m[1], "`name` bigint primary key") {
		t.Errorf("MariaDB:\n%s", strings.Join(m, "\n"))
	}
	p, err := CreateTableSQL(Postgres, dt)
	if err != nil {
		t.Fatal(err)
	}
	if p[0] != `create sequence if not exists "access_log_entry_id_seq"` || !strings.Contains(p[1], `"name" bigint primary key`) {
		t.Errorf("PostgreSQL:\n%s", strings.Join(p, "\n"))
	}
}

func TestEngineAndRowFormatAreValidatedBeforeReachingDDL(t *testing.T) {
	dt := fixture(t, "uom.json").Clone()
	dt.Engine = "InnoDB; DROP TABLE tabUser"
	if _, err := CreateTableSQL(MariaDB, dt); !errors.Is(err, ErrInvalidDocType) {
		t.Errorf("engine: err = %v", err)
	}
	dt = fixture(t, "uom.json").Clone()
	dt.RowFormat = "Compressed"
	sqls, err := CreateTableSQL(MariaDB, dt)
	if err != nil || !strings.Contains(sqls[0], "ROW_FORMAT=COMPRESSED") {
		t.Errorf("row format: %v %v", sqls, err)
	}
}

func TestCreateTableSQLRejectsIdentifiersPostgresWouldTruncate(t *testing.T) {
	long := "f_" + strings.Repeat("ы", 31) // 64 bytes, 33 characters: fine for Frappe and MariaDB
	dt := &DocType{Name: "Long Names", Fields: []DocField{{Fieldname: long, Fieldtype: "Data"}}}
	if _, err := CreateTableSQL(MariaDB, dt); err != nil {
		t.Errorf("MariaDB: %v", err)
	}
	if _, err := CreateTableSQL(Postgres, dt); !errors.Is(err, ErrInvalidName) {
		t.Errorf("PostgreSQL: err = %v, want ErrInvalidName", err)
	}
}

var update = flag.Bool("update", false, "rewrite testdata/golden files")

// The golden files hold the exact DDL for review; the integration tests
// check what the servers make of it.
func TestCreateTableSQLGolden(t *testing.T) {
	for _, name := range []string{"item", "item_barcode", "item_group", "customer", "uom", "type_probe"} {
		dt := fixture(t, name+".json")
		for _, d := range dialects {
			sqls, err := CreateTableSQL(d, dt)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(sqls, ";\n") + ";\n"
			path := filepath.Join("testdata", "golden", name+"."+d.String()+".sql")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run Golden -update)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs from the golden file; if the change is intended run go test -run Golden -update\n%s", path, got)
			}
		}
	}
}
