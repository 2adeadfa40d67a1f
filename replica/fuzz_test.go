package replica

import (
	"testing"

	"meridian/crdt"
)

// FuzzDecodeMessage: the network decoder never panics, and what it accepts
// re-encodes to something it accepts again.
func FuzzDecodeMessage(f *testing.F) {
	n := newTestNet(f)
	n.add("A")
	n.add("B")
	n.connect("A", "B")
	n.put("A", "Item", "ITEM-1", "item_name=Widget")
	for _, id := range []crdt.SiteID{"A", "B"} {
		n.process(id)
	}
	n.tick(2000)
	for i := 0; i < 6; i++ {
		for _, id := range []crdt.SiteID{"A", "B"} {
			n.process(id)
		}
		for _, m := range n.queue {
			if raw, err := EncodeMessage(&m); err == nil {
				f.Add(raw)
			}
		}
		n.deliver(nil)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeMessage(data)
		if err != nil {
			return
		}
		raw, err := EncodeMessage(m)
		if err != nil {
			t.Fatalf("accepted message does not encode: %v", err)
		}
		if _, err := DecodeMessage(raw); err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
	})
}

// FuzzStep: a peer sending any decodable message cannot crash a replica
// or break its invariants (it can still sync with an honest peer).
func FuzzStep(f *testing.F) {
	f.Add([]byte{0x8a, 0x01, 0x02, 0x60, 0x80, 0x80, 0x80, 0x80, 0x80, 0xf4})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeMessage(data)
		if err != nil {
			return
		}
		n := newTestNet(t)
		n.add("A")
		n.add("B")
		n.connect("A", "B")
		n.put("A", "Item", "ITEM-1", "item_name=Widget")
		m.From = "B"
		_ = n.nodes["A"].r.Step(*m)
		n.stabilize()
		n.tick(2000)
		n.stabilize()
		if !n.converged("Item") {
			t.Fatalf("honest replicas diverged after a hostile message")
		}
	})
}

// History records are read back from the store, which a disk fault or a
// tool can damage: decoding any bytes must fail cleanly or yield entries
// that encode again.
func FuzzDecodeHistoryRecord(f *testing.F) {
	one := HistoryEntry{HLC: 1, Site: "A", Seq: 2, Key: "item_name", Kind: uint8(crdt.KindStr), Str: "x", Order: 3}
	list, _ := historyEnc.Marshal([]HistoryEntry{one, one})
	single, _ := historyEnc.Marshal(&one)
	f.Add(list)
	f.Add(single)
	f.Add([]byte{0x81})
	f.Fuzz(func(t *testing.T, data []byte) {
		hs, err := decodeHistoryRecord(data)
		if err != nil {
			return
		}
		if len(hs) > maxHistoryRecord {
			t.Fatalf("%d entries decoded, limit %d", len(hs), maxHistoryRecord)
		}
		if _, err := historyEnc.Marshal(hs); err != nil {
			t.Fatalf("decoded entries do not encode: %v", err)
		}
	})
}
