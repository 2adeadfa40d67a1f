package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"meridian/bridge"
	"meridian/node"
)

// throwawayDB creates a database on the local MariaDB or PostgreSQL server
// (as CI provides them), returns its URL and a connection, and drops it
// when the test ends.
func throwawayDB(t testing.TB, dialect string) (string, *bridge.Site) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := make([]byte, 5)
	rand.Read(b)
	name := "meridian_e2e_" + hex.EncodeToString(b)
	admin, url := "mysql://root@127.0.0.1:3306/mysql", "mysql://root@127.0.0.1:3306/"+name
	if dialect == "postgres" {
		admin, url = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "postgres://postgres@127.0.0.1:5432/"+name+"?sslmode=disable"
	}
	a, err := bridge.OpenDSN(ctx, admin)
	if err != nil {
		t.Fatalf("%s server: %v", dialect, err)
	}
	defer a.Close()
	create := "CREATE DATABASE `" + name + "` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
	if dialect == "postgres" {
		create = `CREATE DATABASE "` + name + `"`
	}
	if _, err := a.DB.Exec(ctx, create); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		a, err := bridge.OpenDSN(ctx, admin)
		if err != nil {
			return
		}
		defer a.Close()
		drop := "DROP DATABASE IF EXISTS `" + name + "`"
		if dialect == "postgres" {
			drop = `DROP DATABASE IF EXISTS "` + name + `" WITH (FORCE)`
		}
		a.DB.Exec(ctx, drop)
	})
	s, err := bridge.OpenDSN(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return url, s
}

// column reads one value of a row as text, as the server prints it.
func column(t testing.TB, s *bridge.Site, table, name, col string) (string, bool) {
	t.Helper()
	d := s.Dialect()
	tq, _ := d.QuoteIdent(table)
	cq, _ := d.QuoteIdent(col)
	nq, _ := d.QuoteIdent("name")
	sel := "CAST(" + cq + " AS CHAR)"
	if d == bridge.Postgres {
		sel = "CAST(" + cq + " AS text)"
	}
	rows, err := s.DB.Query(context.Background(), "SELECT "+sel+" FROM "+tq+" WHERE "+nq+" = "+d.Placeholder(1), name)
	if err != nil {
		if strings.Contains(err.Error(), "exist") { // the table is not created yet
			return "", false
		}
		t.Fatal(err)
	}
	defer rows.Close()
	if !rows.Next() {
		return "", false
	}
	var v sql.NullString
	if err := rows.Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v.String, true
}

func count(t testing.TB, s *bridge.Site, table, where string) int {
	t.Helper()
	d := s.Dialect()
	tq, _ := d.QuoteIdent(table)
	q := "SELECT COUNT(*) FROM " + tq
	if where != "" {
		q += " WHERE " + where
	}
	rows, err := s.DB.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	rows.Next()
	var n int64
	if err := rows.Scan(&n); err != nil {
		t.Fatal(err)
	}
	return int(n)
}

func bridgeConfig(t testing.TB, s *site) {
	t.Helper()
	schemas, err := filepath.Abs("testdata/schemas")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(s.dir, node.ConfigFile), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "\n[bridge]\ndoctypes = [\"Item\"]\nschemas = %q\n", schemas)
	f.Close()
}

// Documents written on site A (MariaDB) appear in site B's PostgreSQL
// database with the same values; a delete removes the row and its child
// rows; B's own column keeps its value; a crash of B loses and repeats
// nothing.
func TestBridgeWritesConvergedMastersIntoEachSitesDatabase(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	urlA, dbA := throwawayDB(t, "mariadb")
	urlB, dbB := throwawayDB(t, "postgres")
	a := newSite(t, "A")
	b := newSite(t, "B")
	bridgeConfig(t, a)
	bridgeConfig(t, b)
	// A's site already holds Items from before Meridian: they are adopted.
	for _, f := range []string{"item.json", "item_barcode.json"} {
		dt, err := bridge.ReadDocTypeFile(filepath.Join("testdata/schemas", f))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bridge.EnsureTable(context.Background(), dbA.DB, dt); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 3; i++ {
		if _, err := dbA.DB.Exec(context.Background(), "INSERT INTO `tabItem` (`name`, `creation`, `modified`, `modified_by`, `owner`, `item_code`, `item_name`, `valuation_rate`) VALUES (?, '2025-01-01 09:00:00', '2025-01-01 09:00:00', 'legacy', 'legacy', ?, ?, 7.25)",
			fmt.Sprintf("LEGACY-%d", i), fmt.Sprintf("LEGACY-%d", i), fmt.Sprintf("Legacy %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := dbA.DB.Exec(context.Background(), "INSERT INTO `tabItem Barcode` (`name`, `parent`, `parenttype`, `parentfield`, `idx`, `barcode`) VALUES ('lb1', 'LEGACY-1', 'Item', 'barcodes', 1, '5000000000001')"); err != nil {
		t.Fatal(err)
	}
	a.start("--db", urlA)
	b.start("--db", urlB)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- A log\n%s\n---- B log\n%s", tail(a.log.String(), 5000), tail(b.log.String(), 5000))
		}
	})
	b.must("peers", "add", a.addr())
	if out := a.must("bridge", "adopt", "Item"); !strings.Contains(out, "adopted Item: 3 rows read, 3 documents written") {
		t.Fatalf("adopt: %s", out)
	}
	waitFor(t, 30*time.Second, "the adopted Items in B's database", func() bool {
		v, _ := column(t, dbB, "tabItem", "LEGACY-3", "item_name")
		return v == "Legacy 3" && count(t, dbB, "tabItem Barcode", `"parent" = 'LEGACY-1'`) == 1
	})
	if out := a.must("bridge", "adopt", "Item"); !strings.Contains(out, "3 rows read, 0 documents written") {
		t.Fatalf("adopting again wrote something: %s", out)
	}
	if v, _ := column(t, dbA, "tabItem", "LEGACY-1", "modified_by"); v != "legacy" {
		t.Fatalf("adoption rewrote A's own row (modified_by %q)", v)
	}

	a.must("doc", "put", "Item", "ITEM-1", "--json", `{"item_code": "ITEM-1", "item_name": "Widget", "valuation_rate": 12.5,
		"shelf_life_in_days": 30, "end_of_life": "2030-01-01", "barcodes": [{"barcode": "4006381333931", "barcode_type": "EAN"}]}`)
	waitFor(t, 30*time.Second, "ITEM-1 in both sites' databases", func() bool {
		_, okA := column(t, dbA, "tabItem", "ITEM-1", "item_name")
		_, okB := column(t, dbB, "tabItem", "ITEM-1", "item_name")
		return okA && okB
	})
	for _, col := range []string{"item_code", "item_name", "shelf_life_in_days", "disabled", "modified_by", "docstatus"} {
		va, _ := column(t, dbA, "tabItem", "ITEM-1", col)
		vb, _ := column(t, dbB, "tabItem", "ITEM-1", col)
		if va != vb {
			t.Errorf("%s: A has %q, B has %q", col, va, vb)
		}
	}
	for db, want := range map[*bridge.Site]string{dbA: "12.5", dbB: "12.5"} {
		if v, _ := column(t, db, "tabItem", "ITEM-1", "valuation_rate"); !strings.HasPrefix(v, want) {
			t.Errorf("valuation_rate %q", v)
		}
	}
	ea, _ := column(t, dbA, "tabItem", "ITEM-1", "end_of_life")
	eb, _ := column(t, dbB, "tabItem", "ITEM-1", "end_of_life")
	if ea != "2030-01-01" || eb != "2030-01-01" {
		t.Errorf("end_of_life: A %q, B %q", ea, eb)
	}
	ma, _ := column(t, dbA, "tabItem", "ITEM-1", "modified")
	mb, _ := column(t, dbB, "tabItem", "ITEM-1", "modified")
	if ma == "" || strings.TrimRight(ma, "0") != strings.TrimRight(mb, "0") {
		t.Errorf("modified differs: A %q, B %q (both are the write's time in the site's zone)", ma, mb)
	}
	if n := count(t, dbB, "tabItem Barcode", `"parent" = 'ITEM-1' AND "parenttype" = 'Item' AND "parentfield" = 'barcodes'`); n != 1 {
		t.Fatalf("B has %d barcode rows for ITEM-1", n)
	}

	// B's own column keeps its value through updates from the mesh.
	if _, err := dbB.DB.Exec(context.Background(), `ALTER TABLE "tabItem" ADD COLUMN "custom_shelf" varchar(140)`); err != nil {
		t.Fatal(err)
	}
	if _, err := dbB.DB.Exec(context.Background(), `UPDATE "tabItem" SET "custom_shelf" = 'B-12' WHERE "name" = 'ITEM-1'`); err != nil {
		t.Fatal(err)
	}
	a.must("doc", "put", "Item", "ITEM-1", "--json", `{"item_name": "Widget Mk II", "barcodes": []}`)
	waitFor(t, 30*time.Second, "the update in B's database", func() bool {
		v, _ := column(t, dbB, "tabItem", "ITEM-1", "item_name")
		return v == "Widget Mk II"
	})
	if v, _ := column(t, dbB, "tabItem", "ITEM-1", "custom_shelf"); v != "B-12" {
		t.Fatalf("B's own column lost its value: %q", v)
	}
	if n := count(t, dbB, "tabItem Barcode", `"parent" = 'ITEM-1'`); n != 0 {
		t.Fatalf("a removed row is still in B's database (%d rows)", n)
	}

	// A Desk edit on B (an UPDATE with a bumped modified, as Frappe saves)
	// flows back to A; B's row keeps the clerk's modified_by (no echo).
	kolkata, _ := time.LoadLocation("Asia/Kolkata") // the site's zone: Frappe's default
	now := func() string { return time.Now().In(kolkata).Format("2006-01-02 15:04:05.000000") }
	if _, err := dbB.DB.Exec(context.Background(), `UPDATE "tabItem" SET "item_name" = 'Edited at B', "shelf_life_in_days" = 45, "modified" = $1, "modified_by" = 'clerk@b' WHERE "name" = 'ITEM-1'`, now()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "B's Desk edit on A", func() bool {
		v, _ := column(t, dbA, "tabItem", "ITEM-1", "item_name")
		return v == "Edited at B" && a.field("Item", "ITEM-1", "item_name") == "Edited at B"
	})
	if v, _ := column(t, dbA, "tabItem", "ITEM-1", "shelf_life_in_days"); v != "45" {
		t.Fatalf("shelf_life_in_days on A: %q", v)
	}
	time.Sleep(2 * time.Second)
	if v, _ := column(t, dbB, "tabItem", "ITEM-1", "modified_by"); v != "clerk@b" {
		t.Fatalf("the bridge wrote B's own edit back over it (modified_by %q)", v)
	}
	if v, _ := column(t, dbB, "tabItem", "ITEM-1", "custom_shelf"); v != "B-12" {
		t.Fatalf("B's own column lost its value: %q", v)
	}

	// A Desk delete on B (the row goes, tabDeleted Document gets one) deletes on A.
	dd, err := bridge.ReadDocTypeFile("testdata/frappe/deleted_document.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bridge.EnsureTable(context.Background(), dbB.DB, dd); err != nil {
		t.Fatal(err)
	}
	a.must("doc", "put", "Item", "ITEM-3", "--json", `{"item_code": "ITEM-3", "item_name": "Deleted at B"}`)
	waitFor(t, 30*time.Second, "ITEM-3 in B's database", func() bool { _, ok := column(t, dbB, "tabItem", "ITEM-3", "name"); return ok })
	if _, err := dbB.DB.Exec(context.Background(), `DELETE FROM "tabItem" WHERE "name" = 'ITEM-3'`); err != nil {
		t.Fatal(err)
	}
	if _, err := dbB.DB.Exec(context.Background(), `INSERT INTO "tabDeleted Document" ("name", "creation", "modified", "owner", "deleted_doctype", "deleted_name", "data") VALUES ('dd1', $1, $1, 'clerk@b', 'Item', 'ITEM-3', '{}')`, now()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "B's Desk delete on A", func() bool {
		_, ok := column(t, dbA, "tabItem", "ITEM-3", "name")
		return !ok && !a.has("Item", "ITEM-3")
	})

	// Deleted on A: gone from B's database.
	a.must("doc", "put", "Item", "ITEM-2", "--json", `{"item_code": "ITEM-2", "item_name": "Doomed", "barcodes": [{"barcode": "0012345678905"}]}`)
	waitFor(t, 30*time.Second, "ITEM-2 in B's database", func() bool { _, ok := column(t, dbB, "tabItem", "ITEM-2", "name"); return ok })
	a.must("doc", "delete", "Item", "ITEM-2")
	waitFor(t, 30*time.Second, "ITEM-2 removed from B's database", func() bool {
		_, ok := column(t, dbB, "tabItem", "ITEM-2", "name")
		return !ok && count(t, dbB, "tabItem Barcode", `"parent" = 'ITEM-2'`) == 0
	})

	// B crashes (kill -9) while A writes; after restart B's database holds
	// every document once and its applied vector matches the node's.
	b.kill()
	for i := range 300 {
		a.must("doc", "put", "Item", fmt.Sprintf("BULK-%03d", i), "--json", fmt.Sprintf(`{"item_code": "BULK-%03d", "item_name": "bulk %d"}`, i, i))
		if i == 150 {
			b.start("--db", urlB)
		}
	}
	b.kill()
	b.start("--db", urlB)
	waitFor(t, 60*time.Second, "all 304 Items in B's database", func() bool { return count(t, dbB, "tabItem", "") == 304 })
	waitFor(t, 30*time.Second, "B's bridge to settle", func() bool {
		var st node.BridgeStatus
		if json.Unmarshal([]byte(b.must("bridge", "status", "--json")), &st) != nil || len(st.Doctypes) != 1 {
			return false
		}
		return st.Doctypes[0].Pending == 0 && st.Doctypes[0].Failures == 0 && st.Doctypes[0].Applied == vvOf(b.status(), "Item")
	})
	if out := b.must("synclog"); !strings.Contains(out, "empty") {
		t.Fatalf("sync log: %s", out)
	}
	if v, _ := column(t, dbB, "tabItem", "BULK-299", "item_name"); v != "bulk 299" {
		t.Fatalf("BULK-299 on B: %q", v)
	}
}

func vvOf(st node.Status, dt string) string {
	for _, d := range st.Doctypes {
		if d.Doctype == dt {
			return d.VV
		}
	}
	return ""
}

// A site that calls the mesh's Item "Product" (and item_name
// "product_name", with valuations in cents) shares Item through a mapping.
func TestBridgeMapsASitesOwnNames(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	urlA, dbA := throwawayDB(t, "mariadb")
	urlC, dbC := throwawayDB(t, "mariadb")
	a := newSite(t, "A")
	c := newSite(t, "C")
	bridgeConfig(t, a)
	schemas, _ := filepath.Abs("testdata/schemas_product")
	f, err := os.OpenFile(filepath.Join(c.dir, node.ConfigFile), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, `
[bridge]
doctypes = ["Item"]
schemas = %q
[bridge.map.Item]
doctype = "Product"
fields = { item_name = "product_name" }
to_site = { valuation_rate = "value * 100.0" }
to_mesh = { valuation_rate = "value / 100.0" }
`, schemas)
	f.Close()
	// C runs beside a bench: the node reads sites/<site>/site_config.json
	// over sites/common_site_config.json, as Frappe does, and invalidates
	// Frappe's Redis cache for what it writes.
	bench := filepath.Join(t.TempDir(), "sites")
	siteDir := filepath.Join(bench, "c.example.com")
	if err := os.MkdirAll(siteDir, 0o755); err != nil {
		t.Fatal(err)
	}
	dbName := urlC[strings.LastIndex(urlC, "/")+1:]
	os.WriteFile(filepath.Join(bench, "common_site_config.json"), []byte(`{"db_host": "127.0.0.1", "redis_cache": "redis://127.0.0.1:6379/0"}`), 0o644)
	os.WriteFile(filepath.Join(siteDir, "site_config.json"), []byte(fmt.Sprintf(`{"db_name": %q, "db_user": "root", "db_password": "", "db_type": "mariadb"}`, dbName)), 0o644)
	a.start("--db", urlA)
	c.start("--site", siteDir)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- A log\n%s\n---- C log\n%s", tail(a.log.String(), 4000), tail(c.log.String(), 4000))
		}
	})
	c.must("peers", "add", a.addr())
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	cacheKey := dbName + "|document_cache::Product::ITEM-1" // a stale copy Frappe cached on C
	if err := rdb.Set(context.Background(), cacheKey, "stale", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Del(context.Background(), cacheKey) })
	a.must("doc", "put", "Item", "ITEM-1", "--json", `{"item_code": "ITEM-1", "item_name": "Widget", "valuation_rate": 12.5, "barcodes": [{"barcode": "123"}]}`)
	waitFor(t, 30*time.Second, "ITEM-1 as a Product on C", func() bool {
		v, _ := column(t, dbC, "tabProduct", "ITEM-1", "product_name")
		return v == "Widget"
	})
	waitFor(t, 10*time.Second, "Frappe's cached copy on C to be dropped", func() bool {
		return rdb.Exists(context.Background(), cacheKey).Val() == 0
	})
	if v, _ := column(t, dbC, "tabProduct", "ITEM-1", "valuation_rate"); !strings.HasPrefix(v, "1250") {
		t.Fatalf("valuation on C: %q, want 1250 (cents)", v)
	}
	if n := count(t, dbC, "tabItem Barcode", "`parenttype` = 'Product' AND `parent` = 'ITEM-1'"); n != 1 {
		t.Fatalf("C's barcode rows: %d", n)
	}
	// A Desk edit of the Product on C reaches A's Item, in the mesh's terms.
	kolkata, _ := time.LoadLocation("Asia/Kolkata")
	if _, err := dbC.DB.Exec(context.Background(), "UPDATE `tabProduct` SET `product_name` = 'Widget (C)', `valuation_rate` = 1399, `modified` = ? WHERE `name` = 'ITEM-1'",
		time.Now().In(kolkata).Format("2006-01-02 15:04:05.000000")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "C's edit on A", func() bool {
		v, _ := column(t, dbA, "tabItem", "ITEM-1", "item_name")
		return v == "Widget (C)"
	})
	if v, _ := column(t, dbA, "tabItem", "ITEM-1", "valuation_rate"); !strings.HasPrefix(v, "13.99") {
		t.Fatalf("valuation on A: %q, want 13.99", v)
	}
	if out := a.must("doc", "get", "Item", "ITEM-1", "--json"); strings.Contains(out, "product_name") {
		t.Fatalf("C's own field name reached the mesh: %s", out)
	}
	// resync writes documents again: one, then all; the row is restored.
	if _, err := dbC.DB.Exec(context.Background(), "DELETE FROM `tabProduct` WHERE `name` = 'ITEM-1'"); err != nil {
		t.Fatal(err)
	}
	if out := c.must("resync", "Item", "ITEM-1"); !strings.Contains(out, "1 documents written again") {
		t.Fatalf("resync one: %s", out)
	}
	if v, _ := column(t, dbC, "tabProduct", "ITEM-1", "product_name"); v != "Widget (C)" {
		t.Fatalf("after resync: %q", v)
	}
	if out := c.must("resync", "--all"); !strings.Contains(out, "1 documents written again") {
		t.Fatalf("resync --all: %s", out)
	}
	if out, err := c.run("resync", "Customer"); err == nil || !strings.Contains(out, "not a master") {
		t.Fatalf("resync of a doctype the bridge does not write: %v\n%s", err, out)
	}
	if out := c.must("bridge", "status"); !strings.Contains(out, "Item") || !strings.Contains(out, "mariadb") {
		t.Fatalf("bridge status:\n%s", out)
	}
}

// When the authority publishes a new master version, a bridged site
// re-reads the DocType (here its schemas directory, where the new
// definition was put), adds the new column online, and fills it for the
// documents it already holds.
func TestBridgeAddsColumnsWhenANewMasterVersionArrives(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	urlB, dbB := throwawayDB(t, "postgres")
	h := newSite(t, "H")
	var k struct {
		PublicKey string `json:"public_key"`
		Mesh      string `json:"mesh"`
	}
	if err := json.Unmarshal([]byte(h.must("authority", "init", "--json")), &k); err != nil {
		t.Fatal(err)
	}
	h.start()
	b := newMeshSite(t, "B", k.PublicKey, k.Mesh)
	// B's DocType files: version 1 of Item has no description field.
	schemas := t.TempDir()
	full, err := os.ReadFile("testdata/schemas/item.json")
	if err != nil {
		t.Fatal(err)
	}
	var def map[string]any
	json.Unmarshal(full, &def)
	var v1 []any
	for _, f := range def["fields"].([]any) {
		if f.(map[string]any)["fieldname"] != "description" {
			v1 = append(v1, f)
		}
	}
	def["fields"] = v1
	older, _ := json.Marshal(def)
	os.WriteFile(filepath.Join(schemas, "item.json"), older, 0o644)
	barcode, _ := os.ReadFile("testdata/schemas/item_barcode.json")
	os.WriteFile(filepath.Join(schemas, "item_barcode.json"), barcode, 0o644)
	f, _ := os.OpenFile(filepath.Join(b.dir, node.ConfigFile), os.O_APPEND|os.O_WRONLY, 0)
	fmt.Fprintf(f, "\n[bridge]\ndoctypes = [\"Item\"]\nschemas = %q\n", schemas)
	f.Close()
	b.start("--db", urlB)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- B log\n%s", tail(b.log.String(), 5000))
		}
	})
	H, B := h.id(), b.id()
	h.must("authority", "grant", H, "Item", "--write")
	h.must("authority", "grant", B, "Item", "--read")
	v1file := filepath.Join(t.TempDir(), "item_v1.json")
	os.WriteFile(v1file, older, 0o644)
	h.must("authority", "version", "publish", "Item", "--schema", v1file)
	b.must("peers", "add", h.addr())
	h.must("doc", "put", "Item", "ITEM-1", "--json", `{"item_code": "ITEM-1", "item_name": "Widget", "description": "<p>first</p>"}`)
	waitFor(t, 30*time.Second, "ITEM-1 in B's database", func() bool { _, ok := column(t, dbB, "tabItem", "ITEM-1", "item_name"); return ok })
	info, err := bridge.InspectTable(context.Background(), dbB.DB, "tabItem")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range info.Columns {
		if c.Name == "description" {
			t.Fatal("version 1 already has a description column")
		}
	}
	// Version 2: B's site now has the new definition; the authority publishes it.
	os.WriteFile(filepath.Join(schemas, "item.json"), full, 0o644)
	h.must("authority", "version", "publish", "Item", "--schema", "testdata/schemas/item.json")
	waitFor(t, 30*time.Second, "the new column, filled, in B's database", func() bool {
		v, _ := column(t, dbB, "tabItem", "ITEM-1", "description")
		return v == "<p>first</p>"
	})
}

// tcpGate forwards to a server once opened: a site database that is down
// when the node starts and comes up later.
type tcpGate struct {
	ln     net.Listener
	target string
	open   atomic.Bool
}

func newTCPGate(t testing.TB, target string) *tcpGate {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &tcpGate{ln: ln, target: target}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !g.open.Load() {
				c.Close() // down: the connection is refused at once
				continue
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go func() { io.Copy(s, c); s.Close() }()
			go func() { io.Copy(c, s); c.Close() }()
		}
	}()
	return g
}

// A site whose database is down when its node starts still replicates; the
// bridge connects when the database answers and catches up.
func TestBridgeConnectsWhenTheDatabaseComesUp(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	url, db := throwawayDB(t, "mariadb")
	gate := newTCPGate(t, "127.0.0.1:3306")
	viaGate := strings.Replace(url, "127.0.0.1:3306", gate.ln.Addr().String(), 1)
	a := newSite(t, "A")
	b := newSite(t, "B")
	bridgeConfig(t, b)
	a.start()
	b.start("--db", viaGate)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- B log\n%s", tail(b.log.String(), 4000))
		}
	})
	b.must("peers", "add", a.addr())
	for i := range 5 {
		a.must("doc", "put", "Item", fmt.Sprintf("EARLY-%d", i), "--json", `{"item_name": "written while B's database is down"}`)
	}
	converged(t, 30*time.Second, "Item", a, b) // replication does not wait for the database
	if out, err := b.run("bridge", "status"); err == nil || !strings.Contains(out, "not answered yet") {
		t.Fatalf("bridge status with the database down: %v\n%s", err, out)
	}
	gate.open.Store(true)
	waitFor(t, 60*time.Second, "B's database to catch up", func() bool {
		_, ok := column(t, db, "tabItem", "EARLY-4", "name")
		return ok && count(t, db, "tabItem", "") == 5
	})
}
