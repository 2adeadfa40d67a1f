package replica

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"meridian/crdt"
)

// rounds runs anti-entropy rounds until nothing moves.
func (n *testNet) rounds(k int) {
	for range k {
		n.tick(1000)
		n.stabilize()
	}
}

func (n *testNet) has(id crdt.SiteID, dt, name string) bool {
	d, err := n.nodes[id].r.Doc(dt, name)
	if err != nil {
		n.t.Fatal(err)
	}
	return d.Exists()
}

func (n *testNet) logHas(s string) bool {
	for _, l := range n.log {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

func TestCanReadKeepsADoctypeFromAPeer(t *testing.T) {
	n := newTestNet(t)
	n.cfg = func(c *Config) {
		c.CanRead = func(peer crdt.SiteID, dt string) bool { return !(peer == "C" && dt == "Item") }
	}
	for _, id := range []crdt.SiteID{"A", "B", "C"} {
		n.add(id)
	}
	n.connect("A", "B")
	n.connect("A", "C")
	n.connect("B", "C")
	n.put("A", "Item", "I1", "item_name=x")
	n.put("B", "UOM", "Nos", "uom_name=Nos")
	n.rounds(5)
	if n.has("C", "Item", "I1") {
		t.Fatal("C received an Item it may not read")
	}
	if !n.has("C", "UOM", "Nos") || !n.has("B", "Item", "I1") {
		t.Fatal("readable doctypes did not replicate")
	}
}

func TestAcceptRejectsHoldsAndFlags(t *testing.T) {
	errNo := errors.New("A may not write Item")
	granted := false
	n := newTestNet(t)
	n.cfg = func(c *Config) {
		if c.Site != "B" {
			return
		}
		c.Accept = func(origin crdt.SiteID, dt string, v uint64) error {
			switch {
			case origin == "A" && dt == "Item":
				return errNo
			case origin == "C" && dt == "Item" && !granted:
				return fmt.Errorf("%w: no grant yet", ErrWait)
			case origin == "D":
				return fmt.Errorf("%w: deprecated version", ErrFlag)
			}
			return nil
		}
	}
	for _, id := range []crdt.SiteID{"A", "B", "C", "D"} {
		n.add(id)
	}
	for _, p := range []crdt.SiteID{"A", "C", "D"} {
		n.connect("B", p)
	}
	n.put("A", "Item", "FROM-A", "item_name=a")
	n.put("A", "UOM", "Box", "uom_name=Box")
	n.put("C", "Item", "FROM-C", "item_name=c")
	n.put("D", "Item", "FROM-D", "item_name=d")
	n.rounds(3)
	if n.has("B", "Item", "FROM-A") || !n.logHas("B: rejected Item") || !n.logHas("may not write Item") {
		t.Fatalf("a refused origin's write: applied %v\n%s", n.has("B", "Item", "FROM-A"), strings.Join(n.log, "\n"))
	}
	if !n.has("B", "UOM", "Box") {
		t.Fatal("the refused origin's other doctype was not applied")
	}
	if n.has("B", "Item", "FROM-C") || !n.logHas("B: waiting Item") {
		t.Fatal("a write whose grant has not arrived was applied, or not reported as waiting")
	}
	if !n.has("B", "Item", "FROM-D") || !n.logHas("B: flagged Item") {
		t.Fatal("a flagged write was not applied and reported")
	}
	granted = true
	n.nodes["B"].r.Recheck()
	n.stabilize()
	if !n.has("B", "Item", "FROM-C") {
		t.Fatal("a held write was not applied once its grant arrived")
	}
}

func TestVersionOfTravelsWithTheBatch(t *testing.T) {
	seen := map[crdt.SiteID]uint64{}
	n := newTestNet(t)
	n.cfg = func(c *Config) {
		switch c.Site {
		case "A":
			c.VersionOf = func(string) uint64 { return 2 }
		case "C":
			c.VersionOf = func(string) uint64 { return 1 }
		case "B":
			c.Accept = func(origin crdt.SiteID, dt string, v uint64) error {
				seen[origin] = v
				if v == 1 {
					return errors.New("version 1 is retired")
				}
				return nil
			}
		}
	}
	for _, id := range []crdt.SiteID{"A", "B", "C"} {
		n.add(id)
	}
	n.connect("A", "B")
	n.connect("C", "B")
	n.put("A", "Item", "V2", "item_name=x")
	n.put("C", "Item", "V1", "item_name=y")
	n.rounds(2)
	if seen["A"] != 2 || seen["C"] != 1 || !n.has("B", "Item", "V2") || n.has("B", "Item", "V1") {
		t.Fatalf("versions seen %v; V2 applied %v, V1 applied %v", seen, n.has("B", "Item", "V2"), n.has("B", "Item", "V1"))
	}
}

func TestLocalEditRefusedByAcceptChangesNothing(t *testing.T) {
	n := newTestNet(t)
	n.cfg = func(c *Config) {
		c.Accept = func(crdt.SiteID, string, uint64) error { return errors.New("no write grant") }
	}
	n.add("A")
	_, err := n.nodes["A"].r.Propose(Proposal{Doctype: "Item", Name: "X", Ops: []crdt.Op{{Kind: crdt.OpCreate}}})
	if err == nil || n.has("A", "Item", "X") || n.nodes["A"].r.Unflushed() {
		t.Fatalf("a refused local edit: %v", err)
	}
}

// A filtered peer receives only matching documents, whole; a document that
// starts to match arrives with everything written before; a third site
// syncing from the filtered one is never told it has writes it lacks.
func TestFilterSendsMatchingDocumentsWhole(t *testing.T) {
	wholesale := func(d *crdt.Doc) bool { return d.View().Fields["customer_group"] == crdt.Str("Wholesale") }
	n := newTestNet(t)
	n.cfg = func(c *Config) {
		c.Filter = func(peer crdt.SiteID, dt string) func(*crdt.Doc) bool {
			if peer == "C" && dt == "Customer" {
				return wholesale
			}
			return nil
		}
	}
	for _, id := range []crdt.SiteID{"A", "B", "C", "D"} {
		n.add(id)
	}
	n.connect("A", "B")
	n.connect("A", "C")
	n.connect("B", "C")
	n.put("A", "Customer", "W1", "customer_group=Wholesale", "territory=North")
	n.put("A", "Customer", "R1", "customer_group=Retail", "territory=South")
	n.put("A", "Customer", "R1", "customer_name=Retail One")
	n.rounds(4)
	if !n.has("C", "Customer", "W1") || n.has("C", "Customer", "R1") {
		t.Fatalf("C holds W1 %v, R1 %v", n.has("C", "Customer", "W1"), n.has("C", "Customer", "R1"))
	}
	n.put("A", "Customer", "R1", "customer_group=Wholesale")
	n.rounds(3)
	d, _ := n.nodes["C"].r.Doc("Customer", "R1")
	v := d.View()
	if !v.Exists || v.Fields["territory"] != crdt.Str("South") || v.Fields["customer_name"] != crdt.Str("Retail One") {
		t.Fatalf("R1 did not arrive whole on C: %v", v.Fields)
	}
	// D syncs only with C first: it must not believe it holds A's writes.
	n.connect("C", "D")
	n.rounds(3)
	if n.has("D", "Customer", "W1") {
		t.Fatal("the partially holding site served another origin's writes")
	}
	n.connect("A", "D")
	n.rounds(4)
	if g := n.digests("Customer"); g["D"] != g["A"] {
		t.Fatalf("D did not catch up from A after syncing with the filtered C: %v", g)
	}
	if n.logHas("divergence") {
		t.Fatal("a divergence was reported between a filtered pair")
	}
}

// History lists which site wrote which field to what, in order, keeps at
// most Config.History entries per document, and survives a restart.
func TestHistoryRecordsWritesBounded(t *testing.T) {
	n := newTestNet(t)
	n.cfg = func(c *Config) { c.History = 8 }
	n.add("A")
	n.add("B")
	n.connect("A", "B")
	n.put("A", "Item", "I1", "item_name=first")
	n.stabilize()
	n.put("B", "Item", "I1", "item_name=second", "stock_uom=Nos")
	n.stabilize()
	for _, id := range []crdt.SiteID{"A", "B"} {
		h, err := n.nodes[id].r.History("Item", "I1")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range h {
			if e.Key == "item_name" || e.Key == "stock_uom" {
				got = append(got, fmt.Sprintf("%s:%s=%s", e.Site, e.Key, e.Value().Str))
			}
		}
		if strings.Join(got, " ") != "A:item_name=first B:item_name=second B:stock_uom=Nos" {
			t.Fatalf("%s history: %v", id, got)
		}
	}
	for i := range 20 {
		n.put("A", "Item", "I1", fmt.Sprintf("item_name=v%d", i))
		n.stabilize()
	}
	n.crash("A")
	n.restart("A")
	h, err := n.nodes["A"].r.History("Item", "I1")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 8 || h[7].Value() != crdt.Str("v19") || h[0].Value() != crdt.Str("v12") {
		t.Fatalf("after 20 more writes and a restart: %d entries, last %v, first %v", len(h), h[len(h)-1].Value(), h[0].Value())
	}
}

// One Ready writes one history record per document, however many fields
// the edits wrote; entries a store kept one per slot, as older versions
// wrote them, still read, in order, after which new records follow.
func TestHistoryRecordsAreOnePerDocumentAndReady(t *testing.T) {
	store := NewMemStore()
	old, err := historyEnc.Marshal(&HistoryEntry{HLC: 1, Site: "Z", Seq: 1, Key: "item_name", Kind: uint8(crdt.KindStr), Str: "from an older store", Order: 0})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Apply([]Write{
		{Key: histKey("Item", "I1", 0), Value: old},
		{Key: histCountKey("Item", "I1"), Value: binary.BigEndian.AppendUint64(nil, 1)},
	}); err != nil {
		t.Fatal(err)
	}
	d := newDriver(t, store, "A", func(c *Config) { c.History = 6 })
	d.propose("I1", crdt.Op{Kind: crdt.OpCreate},
		crdt.Op{Kind: crdt.OpSet, Field: "item_name", Value: crdt.Str("new")},
		crdt.Op{Kind: crdt.OpSet, Field: "stock_uom", Value: crdt.Str("Nos")},
		crdt.Op{Kind: crdt.OpSet, Field: "brand", Value: crdt.Str("Acme")})
	rd := d.cycle()
	records := 0
	for _, w := range rd.Writes {
		if bytes.HasPrefix(w.Key, append(histCountKey("Item", "I1"), sepByte)) {
			records++
		}
	}
	if records != 1 {
		t.Fatalf("one Ready wrote %d history records for one document; want 1", records)
	}
	h, err := d.r.History("Item", "I1")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range h {
		got = append(got, e.Key+"="+e.Value().Str)
	}
	want := "item_name=from an older store " + crdt.LifeKey + "= brand=Acme item_name=new stock_uom=Nos"
	if strings.Join(got, " ") != want {
		t.Fatalf("history %q\nwant    %q", strings.Join(got, " "), want)
	}
	// Bounded: the last six writes once more records come.
	for i := range 5 {
		d.propose("I1", crdt.Op{Kind: crdt.OpSet, Field: "item_name", Value: crdt.Str(fmt.Sprint(i))},
			crdt.Op{Kind: crdt.OpSet, Field: "brand", Value: crdt.Str(fmt.Sprint(i))})
		d.cycle()
	}
	if h, _ = d.r.History("Item", "I1"); len(h) != 6 || h[5].Value().Str != "4" {
		t.Fatalf("after five more edits: %d entries, last %v", len(h), h[len(h)-1].Value())
	}
}
