package crdt

import (
	"testing"

	"pgregory.net/rapid"
)

// site helpers for example-based tests.
type ed struct {
	doc   *Doc
	site  SiteID
	seq   uint64
	clock *Clock
	now   int64
}

func newEd(site SiteID, doc *Doc) *ed {
	return &ed{doc: doc, site: site, clock: NewClock(0), now: 1000}
}

func (e *ed) write(t *testing.T, ops ...Op) *Doc {
	t.Helper()
	e.seq++
	e.now++
	d, err := e.doc.Write(Dot{e.site, e.seq}, e.clock.Now(e.now), ops)
	if err != nil {
		t.Fatalf("%s write %v: %v", e.site, ops, err)
	}
	return d
}

func set(f, v string) Op { return Op{Kind: OpSet, Field: f, Value: Str(v)} }

func TestDeleteThenRecreateStartsAFreshLife(t *testing.T) {
	a := newEd("A", NewDoc("Item", "I"))
	a.write(t, Op{Kind: OpCreate}, set("item_name", "old"), set("description", "old desc"))
	a.write(t, Op{Kind: OpDelete})
	if a.doc.Exists() || a.doc.CausalLength() != 2 {
		t.Fatalf("after delete: exists=%v cl=%d", a.doc.Exists(), a.doc.CausalLength())
	}
	if _, err := a.doc.Write(Dot{"A", 99}, 1, []Op{set("item_name", "x")}); err == nil {
		t.Fatal("an update of a deleted document must fail")
	}
	a.write(t, Op{Kind: OpCreate}, set("item_name", "new"))
	v := a.doc.View()
	if !v.Exists || a.doc.CausalLength() != 3 {
		t.Fatalf("re-create: exists=%v cl=%d", v.Exists, a.doc.CausalLength())
	}
	if v.Fields["item_name"] != Str("new") {
		t.Fatalf("item_name = %v, want new", v.Fields["item_name"])
	}
	if _, ok := v.Fields["description"]; ok {
		t.Fatal("a field of the previous life reappeared after re-create")
	}
}

func TestUpdateConcurrentWithDeleteIsLost(t *testing.T) {
	a := newEd("A", NewDoc("Item", "I"))
	created := a.write(t, Op{Kind: OpCreate}, set("item_name", "w"))
	b := newEd("B", NewDoc("Item", "I"))
	b.doc.Merge(created)
	del := a.write(t, Op{Kind: OpDelete})
	upd := b.write(t, set("item_name", "changed on B"))
	a.doc.Merge(upd)
	b.doc.Merge(del)
	for _, e := range []*ed{a, b} {
		if e.doc.Exists() {
			t.Fatalf("%s: document exists; delete must win over a concurrent update", e.site)
		}
	}
	// Re-creating does not bring the concurrent update back.
	a.write(t, Op{Kind: OpCreate})
	if _, ok := a.doc.View().Fields["item_name"]; ok {
		t.Fatal("concurrent update resurfaced after re-create")
	}
}

func TestConcurrentRecreatesMergeTheirFields(t *testing.T) {
	a := newEd("A", NewDoc("Item", "I"))
	c := a.write(t, Op{Kind: OpCreate}, set("item_name", "w"))
	d := a.write(t, Op{Kind: OpDelete})
	b := newEd("B", NewDoc("Item", "I"))
	b.doc.Merge(c)
	b.doc.Merge(d)
	ra := a.write(t, Op{Kind: OpCreate}, set("item_name", "from A"))
	rb := b.write(t, Op{Kind: OpCreate}, set("description", "from B"))
	a.doc.Merge(rb)
	b.doc.Merge(ra)
	for _, e := range []*ed{a, b} {
		v := e.doc.View()
		if !v.Exists || v.Fields["item_name"] != Str("from A") || v.Fields["description"] != Str("from B") {
			t.Fatalf("%s: %+v", e.site, v)
		}
	}
}

func TestRowRemovedWhileUpdatedSurvivesWithTheUpdate(t *testing.T) {
	a := newEd("A", NewDoc("Item", "I"))
	c := a.write(t, Op{Kind: OpCreate},
		Op{Kind: OpSet, Table: "barcodes", Row: "r1", Field: "barcode", Value: Str("123")},
		Op{Kind: OpSet, Table: "barcodes", Row: "r1", Field: "barcode_type", Value: Str("EAN")})
	b := newEd("B", NewDoc("Item", "I"))
	b.doc.Merge(c)
	rm := a.write(t, Op{Kind: OpRemoveRow, Table: "barcodes", Row: "r1"})
	up := b.write(t, Op{Kind: OpSet, Table: "barcodes", Row: "r1", Field: "barcode", Value: Str("456")})
	a.doc.Merge(up)
	b.doc.Merge(rm)
	for _, e := range []*ed{a, b} {
		rows := e.doc.View().Tables["barcodes"]
		if len(rows) != 1 || rows[0].Fields["barcode"] != Str("456") {
			t.Fatalf("%s: rows %+v; want r1 kept with the concurrent update", e.site, rows)
		}
		if v, ok := rows[0].Fields["barcode_type"]; ok && !v.IsNull() {
			t.Fatalf("%s: barcode_type %v survived the removal", e.site, v)
		}
	}
	// A removal that saw the update removes the row for good.
	a.write(t, Op{Kind: OpRemoveRow, Table: "barcodes", Row: "r1"})
	if rows := a.doc.View().Tables["barcodes"]; len(rows) != 0 {
		t.Fatalf("rows %+v after a causal removal", rows)
	}
	if len(a.doc.RowTombstones()) != 1 {
		t.Fatalf("want one row tombstone")
	}
}

func TestRowsAreOrderedByIdxThenName(t *testing.T) {
	a := newEd("A", NewDoc("Item", "I"))
	row := func(name string, idx int64) []Op {
		return []Op{{Kind: OpSet, Table: "uoms", Row: name, Field: IdxField, Value: Int(idx)}, {Kind: OpSet, Table: "uoms", Row: name, Field: "uom", Value: Str(name)}}
	}
	ops := []Op{{Kind: OpCreate}}
	ops = append(ops, row("zz", 1)...)
	ops = append(ops, row("bb", 2)...)
	ops = append(ops, row("aa", 2)...)
	a.write(t, ops...)
	rows := a.doc.View().Tables["uoms"]
	got := []string{rows[0].Name, rows[1].Name, rows[2].Name}
	if got[0] != "zz" || got[1] != "aa" || got[2] != "bb" || rows[2].Idx != 3 {
		t.Fatalf("order %v (idx %d); want zz, aa, bb numbered 1..3", got, rows[2].Idx)
	}
}

func TestDocStatusOnlyMovesUp(t *testing.T) {
	a := newEd("A", NewDoc("Item", "I"))
	c := a.write(t, Op{Kind: OpCreate})
	b := newEd("B", NewDoc("Item", "I"))
	b.doc.Merge(c)
	s1 := a.write(t, Op{Kind: OpDocStatus, Value: Int(1)})
	s2 := b.write(t, Op{Kind: OpDocStatus, Value: Int(2)})
	a.doc.Merge(s2)
	b.doc.Merge(s1)
	if a.doc.DocStatus() != 2 || b.doc.DocStatus() != 2 {
		t.Fatalf("docstatus %d / %d; concurrent 1 and 2 must give 2", a.doc.DocStatus(), b.doc.DocStatus())
	}
	if _, err := a.doc.Write(Dot{"A", 50}, 1, []Op{{Kind: OpDocStatus, Value: Int(0)}}); err == nil {
		t.Fatal("lowering docstatus must fail")
	}
}

// Whatever the history, a visible value was written in the document's
// current life, and the document exists exactly when its causal length is odd.
func TestVisibleWritesBelongToTheCurrentLife(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := newWorld(t, 3)
		w.run(rapid.IntRange(1, 50).Draw(t, "steps"))
		final := NewDoc("Item", "ITEM-1")
		for _, d := range w.deltas {
			final.Merge(d.doc)
		}
		cl := final.CausalLength()
		if final.Exists() != (cl%2 == 1) {
			t.Fatalf("exists=%v with causal length %d", final.Exists(), cl)
		}
		for _, r := range final.Regs {
			if r.Key == LifeKey {
				continue
			}
			for _, s := range r.Sibs {
				if s.Gen < cl {
					t.Fatalf("register %q keeps a write of life %d in life %d", r.Key, s.Gen, cl)
				}
			}
		}
	})
}
