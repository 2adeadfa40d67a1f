package crdt

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"testing"

	"pgregory.net/rapid"
)

// world is a small set of sites editing one document, with a naive model of
// causality (each write's full causal past as a set) to check against.
type world struct {
	t      *rapid.T
	sites  []*site
	deltas []*delta
	now    int64
}

type site struct {
	id    SiteID
	doc   *Doc
	clock *Clock
	seq   uint64
	past  map[int]bool // deltas applied here (the model)
}

type delta struct {
	id   int
	doc  *Doc
	past map[int]bool // causal past of the edit, excluding itself
	ops  []Op
	dot  Dot
	hlc  HLC
}

var (
	fields = []string{"item_name", "description", "stock_uom", "standard_rate"}
	tables = []string{"barcodes", "uoms"}
	rows   = []string{"r1", "r2", "r3"}
	vals   = []string{"a", "b", "c"}
)

func newWorld(t *rapid.T, n int) *world {
	w := &world{t: t, now: 1_000_000}
	for i := 0; i < n; i++ {
		w.sites = append(w.sites, &site{id: SiteID(fmt.Sprintf("site%c", 'A'+i)), doc: NewDoc("Item", "ITEM-1"), clock: NewClock(0), past: map[int]bool{}})
	}
	return w
}

// randomOps draws an edit that is valid for the site's current state.
func (w *world) randomOps(s *site, label string) []Op {
	t := w.t
	if !s.doc.Exists() {
		ops := []Op{{Kind: OpCreate}}
		if rapid.Bool().Draw(t, label+"createWithField") {
			ops = append(ops, Op{Kind: OpSet, Field: rapid.SampledFrom(fields).Draw(t, label+"f"), Value: Str(rapid.SampledFrom(vals).Draw(t, label+"v"))})
		}
		return ops
	}
	switch rapid.IntRange(0, 9).Draw(t, label+"kind") {
	case 0:
		return []Op{{Kind: OpDelete}}
	case 1, 2:
		return []Op{{Kind: OpSet, Table: rapid.SampledFrom(tables).Draw(t, label+"t"), Row: rapid.SampledFrom(rows).Draw(t, label+"r"),
			Field: rapid.SampledFrom([]string{"barcode", IdxField}).Draw(t, label+"rf"), Value: Int(int64(rapid.IntRange(1, 3).Draw(t, label+"rv")))}}
	case 3:
		return []Op{{Kind: OpRemoveRow, Table: rapid.SampledFrom(tables).Draw(t, label+"t"), Row: rapid.SampledFrom(rows).Draw(t, label+"r")}}
	case 4:
		st := s.doc.DocStatus()
		return []Op{{Kind: OpDocStatus, Value: Int(st + int64(rapid.IntRange(0, int(2-st)).Draw(t, label+"st")))}}
	default:
		var ops []Op
		for _, f := range rapid.SliceOfNDistinct(rapid.SampledFrom(fields), 1, 3, rapid.ID[string]).Draw(t, label+"fs") {
			v := Str(rapid.SampledFrom(vals).Draw(t, label+"v"))
			if rapid.IntRange(0, 5).Draw(t, label+"null") == 0 {
				v = Null
			}
			ops = append(ops, Op{Kind: OpSet, Field: f, Value: v})
		}
		return ops
	}
}

// edit makes site s write a random edit; the clock may jump or stand still.
func (w *world) edit(s *site, label string) {
	w.now += int64(rapid.IntRange(0, 3).Draw(w.t, label+"dt"))
	ops := w.randomOps(s, label)
	s.seq++
	dot := Dot{s.id, s.seq}
	hlc := s.clock.Now(w.now)
	d, err := s.doc.Write(dot, hlc, ops)
	if errors.Is(err, ErrNoChange) {
		s.seq--
		return
	}
	if err != nil {
		w.t.Fatalf("write %v: %v", ops, err)
	}
	id := len(w.deltas)
	past := map[int]bool{}
	for k := range s.past {
		past[k] = true
	}
	w.deltas = append(w.deltas, &delta{id: id, doc: d, past: past, ops: ops, dot: dot, hlc: hlc})
	s.past[id] = true
}

// deliver merges delta i into site s.
func (w *world) deliver(s *site, i int) {
	d := w.deltas[i]
	s.doc.Merge(d.doc)
	for _, reg := range d.doc.Regs {
		for _, sib := range reg.Sibs {
			s.clock.Observe(sib.HLC, w.now)
		}
	}
	s.past[i] = true
	for k := range d.past {
		s.past[k] = true
	}
}

// run draws a random history: edits interleaved with causal deliveries, so
// that writes are sometimes concurrent and sometimes ordered.
func (w *world) run(steps int) {
	for i := 0; i < steps; i++ {
		s := w.sites[rapid.IntRange(0, len(w.sites)-1).Draw(w.t, "who")]
		if len(w.deltas) > 0 && rapid.Bool().Draw(w.t, "deliverFirst") {
			// Deliver a delta together with its causal past, as the replica does.
			j := rapid.IntRange(0, len(w.deltas)-1).Draw(w.t, "which")
			for _, k := range sortedPast(w.deltas[j].past) {
				w.deliver(s, k)
			}
			w.deliver(s, j)
			continue
		}
		w.edit(s, "e")
	}
}

func sortedPast(p map[int]bool) []int {
	out := make([]int, 0, len(p))
	for k := range p {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

func enc(t interface{ Fatalf(string, ...any) }, d *Doc) []byte {
	b, err := EncodeDoc(d)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return b
}

func merged(a, b *Doc) *Doc {
	c := a.Clone()
	c.Merge(b)
	return c
}

func TestMergeIsCommutativeAssociativeIdempotent(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := newWorld(t, 3)
		w.run(rapid.IntRange(1, 40).Draw(t, "steps"))
		a, b, c := w.sites[0].doc, w.sites[1].doc, w.sites[2].doc
		if !bytes.Equal(enc(t, merged(a, b)), enc(t, merged(b, a))) {
			t.Fatalf("a⊔b ≠ b⊔a")
		}
		if !bytes.Equal(enc(t, merged(merged(a, b), c)), enc(t, merged(a, merged(b, c)))) {
			t.Fatalf("(a⊔b)⊔c ≠ a⊔(b⊔c)")
		}
		if !bytes.Equal(enc(t, merged(a, a)), enc(t, a)) {
			t.Fatalf("a⊔a ≠ a")
		}
		// A delta merged into the state that produced it changes nothing.
		for _, d := range w.deltas {
			ab := merged(a, b)
			if !bytes.Equal(enc(t, merged(merged(ab, d.doc), d.doc)), enc(t, merged(ab, d.doc))) {
				t.Fatalf("delta %d not idempotent", d.id)
			}
		}
	})
}

func TestReplicasConvergeUnderAnyDelivery(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := newWorld(t, 3)
		w.run(rapid.IntRange(1, 40).Draw(t, "steps"))
		// Fresh replicas receive every delta, in random order, with drops
		// retried later, duplicates, and deltas split into random parts.
		n := rapid.IntRange(2, 4).Draw(t, "replicas")
		var encs [][]byte
		for r := 0; r < n; r++ {
			doc := NewDoc("Item", "ITEM-1")
			order := rapid.Permutation(w.deltas).Draw(t, fmt.Sprintf("order%d", r))
			var retry []*delta
			for _, d := range order {
				switch rapid.IntRange(0, 4).Draw(t, "fate") {
				case 0: // dropped now, redelivered later
					retry = append(retry, d)
				case 1: // duplicated
					doc.Merge(d.doc)
					doc.Merge(d.doc)
				case 2: // split: some registers first, the rest later
					cut := rapid.IntRange(0, len(d.doc.Regs)).Draw(t, "cut")
					doc.Merge(&Doc{Doctype: d.doc.Doctype, Name: d.doc.Name, Regs: d.doc.Clone().Regs[:cut]})
					retry = append(retry, d)
				default:
					doc.Merge(d.doc)
				}
			}
			for _, d := range retry {
				doc.Merge(d.doc)
			}
			encs = append(encs, enc(t, doc))
		}
		// And the editing sites themselves, once everything is exchanged.
		for _, s := range w.sites {
			for _, d := range w.deltas {
				s.doc.Merge(d.doc)
			}
			encs = append(encs, enc(t, s.doc))
		}
		for i := 1; i < len(encs); i++ {
			if !bytes.Equal(encs[0], encs[i]) {
				t.Fatalf("replica %d diverged:\n%x\n%x", i, encs[0], encs[i])
			}
		}
		d0, _ := DecodeDoc(encs[0])
		if d0 != nil && d0.Digest() != w.sites[0].doc.Digest() {
			t.Fatalf("digests differ for equal states")
		}
	})
}

// modelLive returns, for one top-level field, the deltas that wrote it and
// that no other write to it causally followed, within the current life of
// the document — the writes a reader should see.
func modelLive(w *world, field string, cl uint64, gens map[int]uint64) []*delta {
	var writers []*delta
	for _, d := range w.deltas {
		for _, op := range d.ops {
			if op.Kind == OpSet && op.Table == "" && op.Field == field && gens[d.id] == cl {
				writers = append(writers, d)
			}
		}
	}
	var live []*delta
	for _, d := range writers {
		overwritten := false
		for _, e := range writers {
			if e != d && e.past[d.id] {
				overwritten = true
			}
		}
		if !overwritten {
			live = append(live, d)
		}
	}
	return live
}

func TestVisibleValueAndConflictsMatchCausalModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := newWorld(t, 3)
		w.run(rapid.IntRange(1, 50).Draw(t, "steps"))
		final := NewDoc("Item", "ITEM-1")
		for _, d := range w.deltas {
			final.Merge(d.doc)
		}
		cl := final.CausalLength()
		// The generation each edit wrote under is the life register value
		// of its own delta, or the causal length its site had then; recover
		// it from the delta's writes.
		gens := map[int]uint64{}
		for _, d := range w.deltas {
			for _, r := range d.doc.Regs {
				for _, s := range r.Sibs {
					if r.Key != LifeKey {
						gens[d.id] = s.Gen
					}
				}
			}
		}
		view := final.View()
		conflicts := map[string]Conflict{}
		for _, c := range final.Conflicts() {
			if c.Table == "" {
				conflicts[c.Field] = c
			}
		}
		for _, f := range fields {
			live := modelLive(w, f, cl, gens)
			if !view.Exists {
				continue
			}
			if len(live) == 0 {
				if _, ok := view.Fields[f]; ok {
					t.Fatalf("field %s shows %v but no live write exists", f, view.Fields[f])
				}
				continue
			}
			// The shown value is the (HLC, site) greatest live write.
			win := live[0]
			for _, d := range live[1:] {
				if d.hlc > win.hlc || (d.hlc == win.hlc && d.dot.Site > win.dot.Site) {
					win = d
				}
			}
			var want Value
			for _, op := range win.ops {
				if op.Kind == OpSet && op.Table == "" && op.Field == f {
					want = op.Value
				}
			}
			if got := view.Fields[f]; got != want {
				t.Fatalf("field %s shows %v, the (HLC, site) winner wrote %v", f, got, want)
			}
			// A conflict is reported iff live writes are concurrent and differ.
			distinct := map[Value]bool{}
			for _, d := range live {
				for _, op := range d.ops {
					if op.Kind == OpSet && op.Table == "" && op.Field == f {
						distinct[op.Value] = true
					}
				}
			}
			_, reported := conflicts[f]
			if reported != (len(distinct) > 1) {
				t.Fatalf("field %s: conflict reported=%v, model has %d concurrent live writes with %d values", f, reported, len(live), len(distinct))
			}
		}
	})
}
