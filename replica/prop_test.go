package replica

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"meridian/crdt"
	"pgregory.net/rapid"
)

var (
	propDocs   = []string{"ITEM-1", "ITEM-2", "ITEM-3"}
	propFields = []string{"item_name", "description", "stock_uom"}
	propRows   = []string{"r1", "r2"}
)

// randomEdit draws an edit valid for the document's state on that site.
func randomEdit(t *rapid.T, doc *crdt.Doc) []crdt.Op {
	if !doc.Exists() {
		return []crdt.Op{{Kind: crdt.OpCreate}, {Kind: crdt.OpSet, Field: "item_name", Value: crdt.Str(rapid.StringMatching(`[a-c]`).Draw(t, "v"))}}
	}
	switch rapid.IntRange(0, 9).Draw(t, "kind") {
	case 0:
		return []crdt.Op{{Kind: crdt.OpDelete}}
	case 1, 2:
		return []crdt.Op{{Kind: crdt.OpSet, Table: "barcodes", Row: rapid.SampledFrom(propRows).Draw(t, "row"), Field: "barcode", Value: crdt.Str(rapid.StringMatching(`[x-z]`).Draw(t, "bv"))}}
	case 3:
		return []crdt.Op{{Kind: crdt.OpRemoveRow, Table: "barcodes", Row: rapid.SampledFrom(propRows).Draw(t, "row")}}
	default:
		return []crdt.Op{{Kind: crdt.OpSet, Field: rapid.SampledFrom(propFields).Draw(t, "f"), Value: crdt.Str(rapid.StringMatching(`[a-c]`).Draw(t, "v"))}}
	}
}

// TestReplicasConvergeUnderRandomSchedules runs random edits on 2–4
// replicas while the network drops, duplicates, reorders and truncates
// messages, links are cut and sites crash and restart from their stores.
// After the network heals, every replica must hold byte-identical state,
// equal digests and every write that was ever acknowledged.
func TestReplicasConvergeUnderRandomSchedules(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := newTestNet(t)
		size := rapid.IntRange(2, 4).Draw(t, "sites")
		for i := 0; i < size; i++ {
			n.add(crdt.SiteID(fmt.Sprintf("S%d", i)))
		}
		for i, a := range n.order {
			for _, b := range n.order[i+1:] {
				n.connect(a, b)
			}
		}
		acked := map[Edit]bool{}
		process := func(id crdt.SiteID) {
			if rd, ok := n.process(id); ok {
				for _, d := range rd.Acked {
					acked[d] = true
				}
			}
		}
		steps := rapid.IntRange(1, 80).Draw(t, "steps")
		for i := 0; i < steps; i++ {
			id := rapid.SampledFrom(n.order).Draw(t, "site")
			nd := n.nodes[id]
			switch rapid.IntRange(0, 12).Draw(t, "action") {
			case 0, 1, 2, 3:
				if nd.down {
					continue
				}
				name := rapid.SampledFrom(propDocs).Draw(t, "doc")
				doc, err := nd.r.Doc("Item", name)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := nd.r.Propose(Proposal{Doctype: "Item", Name: name, Ops: randomEdit(t, doc)}); err != nil && !errors.Is(err, crdt.ErrNoChange) {
					t.Fatalf("propose: %v", err)
				}
			case 4, 5:
				process(id)
			case 6, 7:
				// Deliver some queued messages: drop, duplicate, defer, or
				// cut a push down to part of its batch.
				var keep []Message
				for _, m := range n.queue {
					switch rapid.IntRange(0, 5).Draw(t, "fate") {
					case 0:
					case 1:
						keep = append(keep, m)
					case 2:
						n.queue = nil
						n.queue = []Message{m, m}
						n.deliver(nil)
					case 3:
						if m.Type == MsgPush && len(m.Batches[0].Docs) > 1 {
							b := m.Batches[0]
							h, err := b.Header()
							if err != nil {
								t.Fatal(err)
							}
							cut := rapid.IntRange(1, len(b.Docs)-1).Draw(t, "cut")
							pb, err := crdt.PartialBatch(b.Origin, b.Doctype, h, b.Docs[:cut])
							if err != nil {
								t.Fatal(err)
							}
							m.Batches = []*crdt.Batch{pb}
						}
						fallthrough
					default:
						n.queue = []Message{m}
						n.deliver(nil)
					}
				}
				n.queue = append(n.queue, keep...)
			case 8:
				n.tick(int64(rapid.IntRange(1, 2000).Draw(t, "ms")))
			case 9:
				other := rapid.SampledFrom(n.order).Draw(t, "other")
				if other != id {
					n.cut[[2]crdt.SiteID{id, other}] = !n.cut[[2]crdt.SiteID{id, other}]
				}
			case 10:
				if !nd.down {
					n.crash(id)
				}
			case 11, 12:
				if nd.down {
					n.restart(id)
					for _, o := range n.order {
						if o != id && !n.nodes[o].down {
							n.connect(id, o)
						}
					}
				}
			}
		}
		// Heal: restart everyone, reconnect, let anti-entropy run.
		n.cut = map[[2]crdt.SiteID]bool{}
		for _, id := range n.order {
			if n.nodes[id].down {
				n.restart(id)
			}
		}
		for i, a := range n.order {
			for _, b := range n.order[i+1:] {
				n.connect(a, b)
			}
		}
		for round := 0; round < 20; round++ {
			for _, id := range n.order {
				process(id)
			}
			n.stabilize()
			n.tick(1000)
			n.stabilize()
			if n.converged("Item") && n.sameState() && n.sameVV("Item") {
				break
			}
		}
		if !n.converged("Item") {
			t.Fatalf("replicas did not converge: %v\n%s", n.digests("Item"), n.dump())
		}
		if !n.sameState() {
			t.Fatalf("equal digests but different states:\n%s", n.dump())
		}
		for d := range acked {
			for _, id := range n.order {
				if !n.nodes[id].r.HasDelivered(d.Doctype, d.Dot) {
					t.Fatalf("acknowledged write %v missing on %s", d, id)
				}
			}
		}
	})
}

// sameVV reports whether every replica has delivered the same edits.
func (n *testNet) sameVV(dt string) bool {
	first := n.nodes[n.order[0]].r.VersionVector(dt)
	for _, id := range n.order[1:] {
		if !n.nodes[id].r.VersionVector(dt).Equal(first) {
			return false
		}
	}
	return true
}

// sameState compares every document's canonical bytes across replicas.
func (n *testNet) sameState() bool {
	for _, name := range propDocs {
		var first []byte
		for i, id := range n.order {
			d, err := n.nodes[id].r.Doc("Item", name)
			if err != nil {
				n.t.Fatal(err)
			}
			b, err := crdt.EncodeDoc(d)
			if err != nil {
				n.t.Fatal(err)
			}
			if i == 0 {
				first = b
			} else if !bytes.Equal(first, b) {
				return false
			}
		}
	}
	return true
}

func (n *testNet) dump() string {
	var buf bytes.Buffer
	for _, id := range n.order {
		r := n.nodes[id].r
		fmt.Fprintf(&buf, "%s vv=%v waiting=%d\n", id, r.VersionVector("Item"), r.Waiting())
		for _, name := range propDocs {
			d, _ := r.Doc("Item", name)
			fmt.Fprintf(&buf, "  %s cl=%d regs=%d\n", name, d.CausalLength(), len(d.Regs))
			for _, reg := range d.Regs {
				fmt.Fprintf(&buf, "    %q %v\n", reg.Key, reg.Sibs)
			}
		}
	}
	return buf.String()
}

var _ = testing.Short
