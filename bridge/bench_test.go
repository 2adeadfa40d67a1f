package bridge

import (
	"fmt"
	"testing"
	"time"

	"meridian/crdt"
)

// BenchmarkApplyItemsMariaDB writes Items with three child rows each (two
// barcodes and a UOM conversion) into MariaDB in batches of 500, the way
// the node applies converged changes: documents/s is the figure.
func BenchmarkApplyItemsMariaDB(b *testing.B) { benchApply(b, MariaDB) }

// BenchmarkApplyItemsPostgres is the same on PostgreSQL.
func BenchmarkApplyItemsPostgres(b *testing.B) { benchApply(b, Postgres) }

func benchApply(b *testing.B, d Dialect) {
	ctx := testContext(b)
	td := newTestDatabase(b, d)
	dts := itemDocTypes(b)
	for _, dt := range dts {
		mustEnsure(b, ctx, td.DB, dt)
	}
	a, err := NewApplier(td.DB, TimeZone{Location: time.UTC}, "", dts...)
	if err != nil {
		b.Fatal(err)
	}
	if err := a.EnsureState(ctx); err != nil {
		b.Fatal(err)
	}
	const batch, total = 500, 10_000
	w := newDocWriter()
	docs := make([]Doc, total)
	for i := range docs {
		doc := crdt.NewDoc("Item", fmt.Sprintf("ITEM-%06d", i))
		w.write(b, doc, crdt.Op{Kind: crdt.OpCreate},
			set("item_code", crdt.Str(fmt.Sprintf("ITEM-%06d", i))), set("item_name", crdt.Str(fmt.Sprintf("Item number %d", i))),
			set("item_group", crdt.Str("Products")), set("stock_uom", crdt.Str("Nos")), set("valuation_rate", crdt.MustDec("12.5")),
			set("is_stock_item", crdt.Int(1)), set("description", crdt.Str("<p>A fine item</p>")),
			rowSet("barcodes", fmt.Sprintf("b%d-1", i), "barcode", crdt.Str(fmt.Sprintf("400%09d", 2*i))),
			rowSet("barcodes", fmt.Sprintf("b%d-2", i), "barcode", crdt.Str(fmt.Sprintf("400%09d", 2*i+1))),
			rowSet("uoms", fmt.Sprintf("u%d", i), "uom", crdt.Str("Nos")), rowSet("uoms", fmt.Sprintf("u%d", i), "conversion_factor", crdt.Int(1)))
		docs[i] = DocFromCRDT(doc)
	}
	vv := vvOf(w)
	b.ResetTimer()
	var createSecs, updateSecs float64
	creates, updates := 0, 0
	for n := 0; n < b.N; n++ {
		// The first round creates the documents; later rounds update every
		// one of them (the rows exist), as converged changes do.
		start := time.Now()
		for i := 0; i < total; i += batch {
			st, err := a.Apply(ctx, "Item", docs[i:i+batch], vv)
			if err != nil || len(st.Failed) > 0 {
				b.Fatalf("%+v %v", st.Failed, err)
			}
		}
		if n == 0 {
			createSecs, creates = time.Since(start).Seconds(), total
		} else {
			updateSecs += time.Since(start).Seconds()
			updates += total
		}
	}
	b.ReportMetric(float64(creates)/createSecs, "created-docs/s")
	if updates > 0 {
		b.ReportMetric(float64(updates)/updateSecs, "updated-docs/s")
	}
}
