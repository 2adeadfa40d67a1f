package bridge

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"meridian/crdt"
)

// itemDocTypes returns Item (with the child tables we have fixtures for)
// and its child doctypes.
func itemDocTypes(t testing.TB) []*DocType {
	t.Helper()
	item := fixture(t, "item.json").Clone()
	keep := map[string]bool{"Item Barcode": true, "UOM Conversion Detail": true, "Item Default": true}
	var fields []DocField
	for _, f := range item.Fields {
		if tableFieldtypes[f.Fieldtype] && !keep[f.Options] {
			continue
		}
		fields = append(fields, f)
	}
	item.Fields = fields
	return []*DocType{item, fixture(t, "item_barcode.json"), fixture(t, "uom_conversion_detail.json"), fixture(t, "item_default.json")}
}

// docWriter builds replicated documents the way a replica does.
type docWriter struct {
	site crdt.SiteID
	seq  uint64
	hlc  crdt.HLC
	now  int64
}

func newDocWriter() *docWriter {
	return &docWriter{site: "12D3KooWTestSiteAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixMilli()}
}

func (w *docWriter) write(t testing.TB, d *crdt.Doc, ops ...crdt.Op) {
	t.Helper()
	w.seq++
	w.now += 1000
	w.hlc = crdt.MakeHLC(w.now, 0)
	if _, err := d.Write(crdt.Dot{Site: w.site, Seq: w.seq}, w.hlc, ops); err != nil {
		t.Fatal(err)
	}
}

func set(field string, v crdt.Value) crdt.Op {
	return crdt.Op{Kind: crdt.OpSet, Field: field, Value: v}
}

func rowSet(table, row, field string, v crdt.Value) crdt.Op {
	return crdt.Op{Kind: crdt.OpSet, Table: table, Row: row, Field: field, Value: v}
}

func vvOf(w *docWriter) crdt.VersionVector {
	vv := crdt.VersionVector{}
	vv.Add(w.site, 1, w.seq)
	return vv
}

func queryStrings(t testing.TB, ctx context.Context, q Querier, query string, args ...any) []string {
	t.Helper()
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s sql.NullString
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s.String)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestApplyWritesDocumentsAsFrappeLaysThemOut(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d Dialect) {
		ctx := testContext(t)
		td := newTestDatabase(t, d)
		dts := itemDocTypes(t)
		for _, dt := range dts {
			mustEnsure(t, ctx, td.DB, dt)
		}
		// The site's own custom column, which the bridge must never touch.
		mustExec(t, ctx, td.DB, "ALTER TABLE "+d.mustQuote("tabItem")+" ADD COLUMN "+d.mustQuote("custom_local_note")+" varchar(140)")
		loc, _ := time.LoadLocation("Asia/Kolkata")
		a, err := NewApplier(td.DB, TimeZone{Name: "Asia/Kolkata", Location: loc}, "", dts...)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.EnsureState(ctx); err != nil {
			t.Fatal(err)
		}
		if err := a.EnsureState(ctx); err != nil { // idempotent
			t.Fatal(err)
		}
		if vv, err := a.State(ctx, "Item"); err != nil || len(vv) != 0 {
			t.Fatalf("fresh state: %v %v", vv, err)
		}

		w := newDocWriter()
		item := crdt.NewDoc("Item", "ITEM-0001")
		w.write(t, item, crdt.Op{Kind: crdt.OpCreate}, set("item_code", crdt.Str("ITEM-0001")), set("item_name", crdt.Str("Widget")),
			set("item_group", crdt.Str("Products")), set("stock_uom", crdt.Str("Nos")), set("is_stock_item", crdt.Check(true)),
			set("valuation_rate", crdt.MustDec("12.5")), set("shelf_life_in_days", crdt.Int(365)), set("end_of_life", crdt.Str("2099-12-31")),
			rowSet("barcodes", "bc1", "barcode", crdt.Str("4006381333931")), rowSet("barcodes", "bc1", "barcode_type", crdt.Str("EAN")),
			rowSet("barcodes", "bc2", "barcode", crdt.Str("0012345678905")),
			rowSet("uoms", "u1", "uom", crdt.Str("Nos")), rowSet("uoms", "u1", "conversion_factor", crdt.MustDec("1")),
		)
		st, err := a.Apply(ctx, "Item", []Doc{DocFromCRDT(item)}, vvOf(w))
		if err != nil {
			t.Fatal(err)
		}
		if st.Upserted != 1 || st.RowsWritten != 3 {
			t.Fatalf("stats %+v", st)
		}
		q := func(col string) string {
			sel := d.mustQuote(col)
			if d == Postgres {
				sel = "CAST(" + sel + " AS text)" // the value as the server prints it
			}
			v := queryStrings(t, ctx, td.DB, "SELECT "+sel+" FROM "+d.mustQuote("tabItem")+" WHERE "+d.mustQuote("name")+" = "+d.Placeholder(1), "ITEM-0001")
			if len(v) != 1 {
				t.Fatalf("ITEM-0001 rows: %v", v)
			}
			return v[0]
		}
		for col, want := range map[string]string{
			"item_name": "Widget", "item_group": "Products", "is_stock_item": "1", "shelf_life_in_days": "365",
			"end_of_life": "2099-12-31", "modified_by": DefaultUser, "owner": DefaultUser, "docstatus": "0",
			"disabled": "0", // not written: the column's default
		} {
			if got := q(col); got != want {
				t.Errorf("%s = %q, want %q", col, got, want)
			}
		}
		if got := q("valuation_rate"); !strings.HasPrefix(got, "12.5") {
			t.Errorf("valuation_rate = %q", got)
		}
		// modified: the last write's time (12:00:01 UTC) in the site's zone (+05:30).
		if got := q("modified"); !strings.HasPrefix(strings.Replace(got, "T", " ", 1), "2026-03-01 17:30:01") {
			t.Errorf("modified = %q, want 2026-03-01 17:30:01 (Asia/Kolkata)", got)
		}
		rows := queryStrings(t, ctx, td.DB, "SELECT "+d.mustQuote("name")+" FROM "+d.mustQuote("tabItem Barcode")+
			" WHERE "+d.mustQuote("parent")+" = 'ITEM-0001' AND "+d.mustQuote("parenttype")+" = 'Item' AND "+d.mustQuote("parentfield")+" = 'barcodes' ORDER BY "+d.mustQuote("idx"))
		if strings.Join(rows, ",") != "bc1,bc2" {
			t.Fatalf("barcode rows %v", rows)
		}

		// The site edits its own column; the next update keeps it.
		mustExec(t, ctx, td.DB, "UPDATE "+d.mustQuote("tabItem")+" SET "+d.mustQuote("custom_local_note")+" = 'ours' WHERE "+d.mustQuote("name")+" = 'ITEM-0001'")
		creation := q("creation")
		w.write(t, item, set("item_name", crdt.Str("Widget v2")), crdt.Op{Kind: crdt.OpRemoveRow, Table: "barcodes", Row: "bc1"})
		if _, err := a.Apply(ctx, "Item", []Doc{DocFromCRDT(item)}, vvOf(w)); err != nil {
			t.Fatal(err)
		}
		if q("item_name") != "Widget v2" || q("custom_local_note") != "ours" || q("creation") != creation {
			t.Fatalf("after update: item_name %q, custom column %q, creation %q (was %q)", q("item_name"), q("custom_local_note"), q("creation"), creation)
		}
		rows = queryStrings(t, ctx, td.DB, "SELECT "+d.mustQuote("name")+" FROM "+d.mustQuote("tabItem Barcode")+" WHERE "+d.mustQuote("parent")+" = 'ITEM-0001'")
		if strings.Join(rows, ",") != "bc2" {
			t.Fatalf("a removed row is still there: %v", rows)
		}
		if vv, _ := a.State(ctx, "Item"); !vv.Equal(vvOf(w)) {
			t.Fatalf("state %v, want %v", vv, vvOf(w))
		}

		// Deleted: the document and its rows are gone.
		w.write(t, item, crdt.Op{Kind: crdt.OpDelete})
		st, err = a.Apply(ctx, "Item", []Doc{DocFromCRDT(item)}, vvOf(w))
		if err != nil || st.Deleted != 1 || st.RowsDeleted != 2 {
			t.Fatalf("delete: %+v %v", st, err)
		}
		if n := queryStrings(t, ctx, td.DB, "SELECT "+d.mustQuote("name")+" FROM "+d.mustQuote("tabUOM Conversion Detail")+" WHERE "+d.mustQuote("parent")+" = 'ITEM-0001'"); len(n) != 0 {
			t.Fatalf("child rows left after delete: %v", n)
		}
	})
}

// A document the database refuses does not stop the others: it goes to
// the sync log with its reason, in the same transaction as the rows and the
// version vector, and leaves it once a later attempt succeeds.
func TestApplyLogsAFailingDocumentAndWritesTheOthers(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d Dialect) {
		ctx := testContext(t)
		td := newTestDatabase(t, d)
		dts := itemDocTypes(t)
		for _, dt := range dts {
			mustEnsure(t, ctx, td.DB, dt)
		}
		a, err := NewApplier(td.DB, TimeZone{Location: time.UTC}, "", dts...)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.EnsureState(ctx); err != nil {
			t.Fatal(err)
		}
		w := newDocWriter()
		var docs []Doc
		var bad *crdt.Doc
		for i := range 5 {
			doc := crdt.NewDoc("Item", fmt.Sprintf("ITEM-%d", i))
			ops := []crdt.Op{{Kind: crdt.OpCreate}, set("item_name", crdt.Str("ok"))}
			if i == 3 {
				ops = append(ops, set("shelf_life_in_days", crdt.Str("not a number"))) // refused by the column
				bad = doc
			}
			w.write(t, doc, ops...)
			docs = append(docs, DocFromCRDT(doc))
		}
		st, err := a.Apply(ctx, "Item", docs, vvOf(w))
		if err != nil {
			t.Fatal(err)
		}
		if st.Upserted != 4 || len(st.Failed) != 1 || st.Failed[0].Name != "ITEM-3" {
			t.Fatalf("stats %+v", st)
		}
		if n := queryStrings(t, ctx, td.DB, "SELECT "+d.mustQuote("name")+" FROM "+d.mustQuote("tabItem")+" ORDER BY 1"); strings.Join(n, ",") != "ITEM-0,ITEM-1,ITEM-2,ITEM-4" {
			t.Fatalf("rows %v", n)
		}
		if vv, err := a.State(ctx, "Item"); err != nil || !vv.Equal(vvOf(w)) {
			t.Fatalf("state %v %v", vv, err)
		}
		log, err := a.Failures(ctx, false)
		if err != nil || len(log) != 1 || log[0].Name != "ITEM-3" || log[0].Attempts != 1 || !strings.Contains(log[0].Reason, "shelf_life_in_days") {
			t.Fatalf("sync log %+v %v", log, err)
		}
		if due, _ := a.Failures(ctx, true); len(due) != 0 {
			t.Fatalf("retried before its back-off: %+v", due)
		}
		// A second failure counts an attempt and backs off further.
		if st, err = a.Apply(ctx, "Item", []Doc{DocFromCRDT(bad)}, nil); err != nil || len(st.Failed) != 1 || st.Failed[0].Attempts != 2 {
			t.Fatalf("second attempt: %+v %v", st, err)
		}
		if !st.Failed[0].NextRetry.After(st.Failed[0].LastFailed.Add(3 * time.Second)) {
			t.Fatalf("no back-off: %+v", st.Failed[0])
		}
		// Fixed upstream: the next attempt writes it and clears the log, also
		// for a bridge opened afresh (the log is durable).
		w.write(t, bad, set("shelf_life_in_days", crdt.Int(30)))
		b, err := NewApplier(td.DB, TimeZone{Location: time.UTC}, "", dts...)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.EnsureState(ctx); err != nil {
			t.Fatal(err)
		}
		if st, err = b.Apply(ctx, "Item", []Doc{DocFromCRDT(bad)}, nil); err != nil || len(st.Failed) != 0 || st.Upserted != 1 {
			t.Fatalf("retry: %+v %v", st, err)
		}
		if log, _ := b.Failures(ctx, false); len(log) != 0 {
			t.Fatalf("sync log not cleared: %+v", log)
		}
		// Applying the same documents again changes nothing.
		if _, err := b.Apply(ctx, "Item", docs[:3], vvOf(w)); err != nil {
			t.Fatal(err)
		}
		if n := queryStrings(t, ctx, td.DB, "SELECT "+d.mustQuote("name")+" FROM "+d.mustQuote("tabItem")); len(n) != 5 {
			t.Fatalf("rows %v", n)
		}
	})
}

func TestStateVersionVectorRoundTrips(t *testing.T) {
	vv := crdt.VersionVector{}
	vv.Add("A", 1, 10)
	vv.Add("A", 15, 20)
	vv.Add("B", 3, 3)
	raw, err := encodeVV(vv)
	if err != nil {
		t.Fatal(err)
	}
	back, err := decodeVV(raw)
	if err != nil || !back.Equal(vv) {
		t.Fatalf("%s → %v (%v), want %v", raw, back, err, vv)
	}
	for _, bad := range []string{`{`, `{"A": []}`, `{"A": [1, 5]}`, `{"A": [1, 9, 3]}`} {
		if _, err := decodeVV(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// A document whose Link names a document of another master this bridge
// writes waits (in the sync log, as held) until that document is there.
func TestApplyHoldsADocumentUntilItsLinkTargetArrives(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d Dialect) {
		ctx := testContext(t)
		td := newTestDatabase(t, d)
		group := fixture(t, "item_group.json").Clone()
		var fields []DocField
		for _, f := range group.Fields {
			if !tableFieldtypes[f.Fieldtype] { // its child tables have no fixtures here
				fields = append(fields, f)
			}
		}
		group.Fields = fields
		dts := append(itemDocTypes(t), group)
		for _, dt := range dts {
			mustEnsure(t, ctx, td.DB, dt)
		}
		a, err := NewApplier(td.DB, TimeZone{Location: time.UTC}, "", dts...)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.EnsureState(ctx); err != nil {
			t.Fatal(err)
		}
		w := newDocWriter()
		item := crdt.NewDoc("Item", "DRILL")
		w.write(t, item, crdt.Op{Kind: crdt.OpCreate}, set("item_name", crdt.Str("Drill")), set("item_group", crdt.Str("Tools")),
			set("stock_uom", crdt.Str("Nos"))) // UOM is not a master here: no hold for it
		st, err := a.Apply(ctx, "Item", []Doc{DocFromCRDT(item)}, vvOf(w))
		if err != nil || len(st.Held) != 1 || st.Upserted != 0 {
			t.Fatalf("held: %+v %v", st, err)
		}
		if !strings.Contains(st.Held[0].Reason, `item_group → Item Group "Tools"`) || !st.Held[0].NextRetry.Before(time.Now().Add(2*time.Second)) {
			t.Fatalf("held entry %+v", st.Held[0])
		}
		if n := queryStrings(t, ctx, td.DB, "SELECT "+d.mustQuote("name")+" FROM "+d.mustQuote("tabItem")); len(n) != 0 {
			t.Fatalf("a held document was written: %v", n)
		}
		tools := crdt.NewDoc("Item Group", "Tools")
		w.write(t, tools, crdt.Op{Kind: crdt.OpCreate}, set("item_group_name", crdt.Str("Tools")))
		if st, err := a.Apply(ctx, "Item Group", []Doc{DocFromCRDT(tools)}, nil); err != nil || st.Upserted != 1 {
			t.Fatalf("group: %+v %v", st, err)
		}
		if st, err = a.Apply(ctx, "Item", []Doc{DocFromCRDT(item)}, nil); err != nil || st.Upserted != 1 || len(st.Held) != 0 {
			t.Fatalf("after the group arrived: %+v %v", st, err)
		}
		if log, _ := a.Failures(ctx, false); len(log) != 0 {
			t.Fatalf("sync log not cleared: %+v", log)
		}
	})
}

// The multi-row path (batches) writes exactly what the document-by-document
// path writes: inserts, updates of existing rows, row removals, deletes.
func TestApplyBatchesCreateUpdateAndDelete(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d Dialect) {
		ctx := testContext(t)
		td := newTestDatabase(t, d)
		dts := itemDocTypes(t)
		for _, dt := range dts {
			mustEnsure(t, ctx, td.DB, dt)
		}
		a, err := NewApplier(td.DB, TimeZone{Location: time.UTC}, "", dts...)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.EnsureState(ctx); err != nil {
			t.Fatal(err)
		}
		w := newDocWriter()
		items := make([]*crdt.Doc, 50)
		snap := func() []Doc {
			out := make([]Doc, len(items))
			for i, it := range items {
				out[i] = DocFromCRDT(it)
			}
			return out
		}
		for i := range items {
			items[i] = crdt.NewDoc("Item", fmt.Sprintf("B-%02d", i))
			w.write(t, items[i], crdt.Op{Kind: crdt.OpCreate}, set("item_name", crdt.Str(fmt.Sprintf("v1-%d", i))),
				rowSet("barcodes", fmt.Sprintf("x%d", i), "barcode", crdt.Str(fmt.Sprintf("1%05d", i))),
				rowSet("barcodes", fmt.Sprintf("y%d", i), "barcode", crdt.Str(fmt.Sprintf("2%05d", i))))
		}
		if st, err := a.Apply(ctx, "Item", snap(), vvOf(w)); err != nil || st.Upserted != 50 || st.RowsWritten != 100 {
			t.Fatalf("create: %+v %v", st, err)
		}
		for i, it := range items {
			switch {
			case i < 5:
				w.write(t, it, crdt.Op{Kind: crdt.OpDelete})
			default:
				w.write(t, it, set("item_name", crdt.Str(fmt.Sprintf("v2-%d", i))), crdt.Op{Kind: crdt.OpRemoveRow, Table: "barcodes", Row: fmt.Sprintf("x%d", i)},
					rowSet("barcodes", fmt.Sprintf("z%d", i), "barcode", crdt.Str(fmt.Sprintf("3%05d", i))))
			}
		}
		st, err := a.Apply(ctx, "Item", snap(), vvOf(w))
		if err != nil || st.Deleted != 5 || st.Upserted != 45 || len(st.Failed) != 0 {
			t.Fatalf("update: %+v %v", st, err)
		}
		if n := queryStrings(t, ctx, td.DB, "SELECT "+d.mustQuote("name")+" FROM "+d.mustQuote("tabItem")); len(n) != 45 {
			t.Fatalf("%d items", len(n))
		}
		rows := queryStrings(t, ctx, td.DB, "SELECT "+d.mustQuote("name")+" FROM "+d.mustQuote("tabItem Barcode")+" ORDER BY 1")
		if len(rows) != 90 || rows[0] != "y10" && rows[0] != "y5" {
			t.Fatalf("%d barcode rows (%v…), want 90 (y and z of the 45 left)", len(rows), rows[:min(3, len(rows))])
		}
		for _, r := range rows {
			if r[0] == 'x' {
				t.Fatalf("removed row %s still there", r)
			}
		}
		if v := queryStrings(t, ctx, td.DB, "SELECT "+d.mustQuote("item_name")+" FROM "+d.mustQuote("tabItem")+" WHERE "+d.mustQuote("name")+" = 'B-49'"); len(v) != 1 || v[0] != "v2-49" {
			t.Fatalf("B-49: %v", v)
		}
	})
}
