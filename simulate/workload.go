package simulate

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"meridian/crdt"
	"meridian/replica"
)

// workload writes Frappe-like masters: Items with barcodes and UOM rows,
// Customers; hot keys, concurrent conflicting edits, deletes and re-creates.
type workload struct {
	sc   *Scenario
	rng  *rand.Rand
	docs []docRef
	rows int
}

type docRef struct{ dt, name string }

var (
	itemFields     = []string{"item_name", "description", "item_group", "stock_uom", "brand", "standard_rate", "is_stock_item", "disabled"}
	customerFields = []string{"customer_name", "customer_group", "territory", "credit_limit", "disabled"}
	itemGroups     = []string{"Products", "Raw Material", "Services", "Sub Assemblies", "Consumable"}
	uoms           = []string{"Nos", "Kg", "Box", "Meter", "Litre"}
)

func newWorkload(sc *Scenario, rng *rand.Rand) *workload {
	w := &workload{sc: sc, rng: rng}
	for i := 0; i < sc.Workload.Items; i++ {
		w.docs = append(w.docs, docRef{"Item", fmt.Sprintf("ITEM-%05d", i)})
	}
	for i := 0; i < sc.Workload.Customers; i++ {
		w.docs = append(w.docs, docRef{"Customer", fmt.Sprintf("CUST-%05d", i)})
	}
	// Hot keys are spread over both doctypes by shuffling once.
	rng.Shuffle(len(w.docs), func(i, j int) { w.docs[i], w.docs[j] = w.docs[j], w.docs[i] })
	return w
}

// nextGap draws the time to the next write (Poisson arrivals), in µs.
func (w *workload) nextGap() int64 {
	gap := -math.Log(1-w.rng.Float64()) / w.sc.Workload.Rate * 1e6
	return max(1, int64(gap))
}

// pick chooses the document of the next write.
func (w *workload) pick() docRef {
	wl := w.sc.Workload
	if wl.HotKeys > 0 && w.rng.Float64() < wl.HotFraction {
		return w.docs[w.rng.IntN(min(wl.HotKeys, len(w.docs)))]
	}
	return w.docs[w.rng.IntN(len(w.docs))]
}

// step makes one write (and maybe a concurrent conflicting one).
func (w *workload) step(s *Sim) {
	var up []*site
	for _, st := range s.sites {
		if st.up {
			up = append(up, st)
		}
	}
	if len(up) == 0 {
		return
	}
	st := up[w.rng.IntN(len(up))]
	d := w.pick()
	field := w.write(s, st, d, "")
	if field != "" && len(up) > 1 && w.rng.Float64() < w.sc.Workload.Conflicts {
		other := up[w.rng.IntN(len(up))]
		if other != st {
			w.write(s, other, d, field)
			s.rep.Totals.ConflictingWrites++
		}
	}
}

// write proposes an edit of d on st, valid for st's view of it; with
// field set it writes just that field (the conflicting twin of a write).
// It returns the top-level field written, if one.
func (w *workload) write(s *Sim, st *site, d docRef, field string) string {
	st.r.Tick(s.clock(st))
	doc, err := st.r.Doc(d.dt, d.name)
	if err != nil {
		s.rep.fail("%s: reading %s %s: %v", st.id, d.dt, d.name, err)
		return ""
	}
	var ops []crdt.Op
	written := ""
	wl := w.sc.Workload
	switch {
	case !doc.Exists():
		if field != "" {
			return ""
		}
		ops = w.create(d)
	case field != "":
		ops = []crdt.Op{{Kind: crdt.OpSet, Field: field, Value: w.value(field)}}
		written = field
	case w.rng.Float64() < wl.Deletes:
		ops = []crdt.Op{{Kind: crdt.OpDelete}}
	case d.dt == "Item" && w.rng.Float64() < wl.RowEdits:
		ops = w.rowEdit(doc)
	default:
		fields := itemFields
		if d.dt == "Customer" {
			fields = customerFields
		}
		n := 1 + w.rng.IntN(3)
		for i := 0; i < n; i++ {
			f := fields[w.rng.IntN(len(fields))]
			ops = append(ops, crdt.Op{Kind: crdt.OpSet, Field: f, Value: w.value(f)})
			written = f
		}
	}
	if len(ops) == 0 {
		return ""
	}
	dot, err := st.r.Propose(replica.Proposal{Doctype: d.dt, Name: d.name, Ops: ops})
	if err != nil && s.sc.Authority && errors.Is(err, replica.ErrWait) {
		s.rep.Totals.RefusedWrites++ // no grant here yet: the site's own node refuses the edit
		return ""
	}
	if err != nil {
		s.rep.fail("%s: proposing %v on %s %s: %v", st.id, ops, d.dt, d.name, err)
		return ""
	}
	s.rep.Totals.Writes++
	s.chk.proposed(s, st, d, dot)
	s.needReady(st)
	return written
}

func (w *workload) create(d docRef) []crdt.Op {
	ops := []crdt.Op{{Kind: crdt.OpCreate}}
	fields := itemFields
	if d.dt == "Customer" {
		fields = customerFields
	}
	for _, f := range fields {
		ops = append(ops, crdt.Op{Kind: crdt.OpSet, Field: f, Value: w.value(f)})
	}
	if d.dt == "Item" {
		for r := 0; r < w.sc.Workload.Rows; r++ {
			ops = append(ops, w.newRow(int64(r+1))...)
		}
	}
	return ops
}

// newRow adds a barcode or UOM row under a fresh Frappe-style name.
func (w *workload) newRow(idx int64) []crdt.Op {
	w.rows++
	name := fmt.Sprintf("%010x", w.rng.Uint64()&0xffffffffff)
	if w.rng.IntN(2) == 0 {
		return []crdt.Op{
			{Kind: crdt.OpSet, Table: "barcodes", Row: name, Field: crdt.IdxField, Value: crdt.Int(idx)},
			{Kind: crdt.OpSet, Table: "barcodes", Row: name, Field: "barcode", Value: crdt.Str(fmt.Sprintf("%013d", w.rng.Int64N(1e13)))},
		}
	}
	return []crdt.Op{
		{Kind: crdt.OpSet, Table: "uoms", Row: name, Field: crdt.IdxField, Value: crdt.Int(idx)},
		{Kind: crdt.OpSet, Table: "uoms", Row: name, Field: "uom", Value: crdt.Str(uoms[w.rng.IntN(len(uoms))])},
		{Kind: crdt.OpSet, Table: "uoms", Row: name, Field: "conversion_factor", Value: crdt.MustDec(fmt.Sprintf("%d.%d", 1+w.rng.IntN(100), w.rng.IntN(10)))},
	}
}

// rowEdit adds, changes or removes a child row.
func (w *workload) rowEdit(doc *crdt.Doc) []crdt.Op {
	v := doc.View()
	var all []struct{ table, row string }
	for _, t := range []string{"barcodes", "uoms"} {
		for _, r := range v.Tables[t] {
			all = append(all, struct{ table, row string }{t, r.Name})
		}
	}
	switch k := w.rng.IntN(3); {
	case len(all) == 0 || k == 0:
		return w.newRow(int64(len(all) + 1))
	case k == 1:
		r := all[w.rng.IntN(len(all))]
		if r.table == "barcodes" {
			return []crdt.Op{{Kind: crdt.OpSet, Table: r.table, Row: r.row, Field: "barcode", Value: crdt.Str(fmt.Sprintf("%013d", w.rng.Int64N(1e13)))}}
		}
		return []crdt.Op{{Kind: crdt.OpSet, Table: r.table, Row: r.row, Field: "conversion_factor", Value: crdt.MustDec(fmt.Sprintf("%d", 1+w.rng.IntN(50)))}}
	default:
		r := all[w.rng.IntN(len(all))]
		return []crdt.Op{{Kind: crdt.OpRemoveRow, Table: r.table, Row: r.row}}
	}
}

// value draws a value with the field's Frappe type.
func (w *workload) value(field string) crdt.Value {
	switch field {
	case "standard_rate", "credit_limit":
		return crdt.MustDec(fmt.Sprintf("%d.%02d", w.rng.IntN(10000), w.rng.IntN(100)))
	case "is_stock_item", "disabled":
		return crdt.Int(int64(w.rng.IntN(2)))
	case "item_group", "customer_group":
		return crdt.Str(itemGroups[w.rng.IntN(len(itemGroups))])
	case "stock_uom":
		return crdt.Str(uoms[w.rng.IntN(len(uoms))])
	}
	return crdt.Str(fmt.Sprintf("%s %d", field, w.rng.IntN(1_000_000)))
}
