package replica

import (
	"errors"
	"strings"
	"testing"

	"meridian/crdt"
)

// stateOf captures what a bad message must not change.
func stateOf(t *testing.T, n *testNet, id crdt.SiteID) string {
	r := n.nodes[id].r
	g, err := r.StateDigest("Item")
	if err != nil {
		t.Fatal(err)
	}
	return r.VersionVector("Item").String() + " " + string(g[:])
}

// newPair returns two connected sites where A has written one Item that B
// received.
func newPair(t *testing.T) *testNet {
	n := newTestNet(t)
	n.add("A")
	n.add("B")
	n.connect("A", "B")
	n.put("A", "Item", "ITEM-1", "item_name=Widget")
	n.stabilize()
	return n
}

// sealedBy builds a batch of one edit signed by the given site's key.
func sealedBy(t *testing.T, origin crdt.SiteID, key crdt.SiteID, seq uint64, hlc crdt.HLC) *crdt.Batch {
	d := crdt.NewDoc("Item", "ITEM-9")
	if _, err := d.Write(crdt.Dot{Site: origin, Seq: seq}, hlc, []crdt.Op{{Kind: crdt.OpCreate}, {Kind: crdt.OpSet, Field: "item_name", Value: crdt.Str("forged")}}); err != nil {
		t.Fatal(err)
	}
	b := &crdt.Batch{Origin: origin, Doctype: "Item", First: seq, Last: seq, HLC: hlc, Docs: []*crdt.Doc{d}}
	signer := crdt.Ed25519Signer{ID: origin, Key: keyFor(key)}
	if err := b.Seal(signer); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestForgedBatchIsRejectedAndChangesNothing(t *testing.T) {
	n := newPair(t)
	n.add("C")
	before := stateOf(t, n, "B")
	// C relays a batch claiming to be A's, signed with C's own key.
	forged := sealedBy(t, "A", "C", 2, crdt.MakeHLC(n.now, 5))
	err := n.nodes["B"].r.Step(Message{Type: MsgPush, From: "C", Batches: []*crdt.Batch{forged}})
	if !errors.Is(err, crdt.ErrBadSignature) {
		t.Fatalf("err = %v; want ErrBadSignature", err)
	}
	rd, _ := n.process("B")
	if len(rd.Events) != 1 || rd.Events[0].Kind != EventRejected || rd.Events[0].Peer != "C" {
		t.Fatalf("events %+v; want one rejection naming the relay", rd.Events)
	}
	if after := stateOf(t, n, "B"); after != before {
		t.Fatal("a forged batch changed the state")
	}
}

func TestAlteredRelayedWriteIsRejected(t *testing.T) {
	n := newPair(t)
	n.add("C")
	good := sealedBy(t, "A", "A", 2, crdt.MakeHLC(n.now, 5))
	raw, _ := crdt.EncodeBatch(good)
	altered, _ := crdt.DecodeBatch(raw)
	for i := range altered.Docs[0].Regs {
		if altered.Docs[0].Regs[i].Key == "item_name" {
			altered.Docs[0].Regs[i].Sibs[0].Value = crdt.Str("tampered")
		}
	}
	before := stateOf(t, n, "B")
	err := n.nodes["B"].r.Step(Message{Type: MsgPush, From: "C", Batches: []*crdt.Batch{altered}})
	if !errors.Is(err, crdt.ErrBadSignature) {
		t.Fatalf("err = %v; want ErrBadSignature", err)
	}
	if stateOf(t, n, "B") != before {
		t.Fatal("an altered batch changed the state")
	}
}

func TestUnknownOriginIsRejected(t *testing.T) {
	n := newPair(t)
	stranger := sealedBy(t, "Z", "Z", 1, crdt.MakeHLC(n.now, 5)) // Z's key is in no key ring
	before := stateOf(t, n, "B")
	err := n.nodes["B"].r.Step(Message{Type: MsgPush, From: "A", Batches: []*crdt.Batch{stranger}})
	if !errors.Is(err, crdt.ErrUnknownOrigin) {
		t.Fatalf("err = %v; want ErrUnknownOrigin", err)
	}
	if stateOf(t, n, "B") != before {
		t.Fatal("a batch of an unknown origin changed the state")
	}
}

func TestBatchFromTheFutureIsHeldUntilTheClockCatchesUp(t *testing.T) {
	n := newPair(t)
	ahead := int64(60 * 60 * 1000) // one hour, beyond the 5-minute default
	future := sealedBy(t, "A", "A", 2, crdt.MakeHLC(n.now+ahead, 0))
	before := stateOf(t, n, "B")
	if err := n.nodes["B"].r.Step(Message{Type: MsgPush, From: "A", Batches: []*crdt.Batch{future}}); err != nil {
		t.Fatalf("a future batch is held, not an error: %v", err)
	}
	rd, _ := n.process("B")
	held := false
	for _, e := range rd.Events {
		if e.Kind == EventHeld && strings.Contains(e.Err.Error(), "ahead of the local clock") {
			held = true
		}
	}
	if !held {
		t.Fatalf("events %+v; want a clock-skew hold with a reason", rd.Events)
	}
	if stateOf(t, n, "B") != before || n.nodes["B"].r.Clock().Physical() >= n.now+ahead {
		t.Fatal("a future batch was applied or moved the clock")
	}
	n.tick(ahead)
	n.stabilize()
	d, _ := n.nodes["B"].r.Doc("Item", "ITEM-9")
	if !d.Exists() {
		t.Fatal("the held batch was not applied once the clock caught up")
	}
}

func TestMalformedMessagesAreRejectedWithAReason(t *testing.T) {
	good, err := EncodeMessage(&Message{Type: MsgPull, Doctype: "Item", Ranges: []crdt.Range{{Site: "A", Lo: 1, Hi: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	wrongVersion := append([]byte(nil), good...)
	wrongVersion[1] = 9 // the version field follows the array header
	cases := map[string]struct {
		in   []byte
		want string
	}{
		"truncated":        {good[:len(good)-3], "bad message"},
		"garbage":          {[]byte{0xff, 0x00, 0x13}, "bad message"},
		"wrong version":    {wrongVersion, "protocol version 9"},
		"unknown type":     {mustEncodeWire(t, wireMsg{Version: ProtocolVersion, Type: 42}), "unknown message type 42"},
		"empty range":      {mustEncodeWire(t, wireMsg{Version: ProtocolVersion, Type: uint8(MsgPull), Ranges: []wireRange{{Site: "A", Lo: 5, Hi: 2}}}), "range"},
		"garbage batch":    {mustEncodeWire(t, wireMsg{Version: ProtocolVersion, Type: uint8(MsgPush), Batches: [][]byte{{0x01, 0x02}}}), "malformed"},
		"bad doctype":      {mustEncodeWire(t, wireMsg{Version: ProtocolVersion, Type: uint8(MsgPull), Doctype: "a\x00b"}), "NUL"},
		"digest too short": {mustEncodeWire(t, wireMsg{Version: ProtocolVersion, Type: uint8(MsgSync), Sums: []wireSum{{Doctype: "Item", VV: []byte{1}, State: []byte{2}}}}), "digest"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeMessage(c.in)
			if !errors.Is(err, ErrBadMessage) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v; want ErrBadMessage mentioning %q", err, c.want)
			}
		})
	}
}

func mustEncodeWire(t *testing.T, w wireMsg) []byte {
	b, err := crdt.Marshal(&w)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOversizedBatchIsRejected(t *testing.T) {
	n := newPair(t)
	b := sealedBy(t, "A", "A", 2, crdt.MakeHLC(n.now, 5))
	b.Last = b.First + crdt.MaxBatchEdits // claims more edits than a batch may hold
	before := stateOf(t, n, "B")
	err := n.nodes["B"].r.Step(Message{Type: MsgPush, From: "A", Batches: []*crdt.Batch{b}})
	if !errors.Is(err, crdt.ErrOversized) {
		t.Fatalf("err = %v; want ErrOversized", err)
	}
	if stateOf(t, n, "B") != before {
		t.Fatal("an oversized batch changed the state")
	}
}

func TestServedWriteOutsideItsCoveredRangeIsRejected(t *testing.T) {
	n := newPair(t)
	b := sealedBy(t, "A", "A", 2, crdt.MakeHLC(n.now, 5))
	before := stateOf(t, n, "B")
	err := n.nodes["B"].r.Step(Message{Type: MsgServe, From: "A", Doctype: "Item", Batches: []*crdt.Batch{b}, Covers: []crdt.Range{{Site: "A", Lo: 1, Hi: 1}}})
	if !errors.Is(err, ErrBadMessage) {
		t.Fatalf("err = %v; want ErrBadMessage", err)
	}
	if stateOf(t, n, "B") != before {
		t.Fatal("a bad serve changed the state")
	}
}

func TestProposeRejectsInvalidEdits(t *testing.T) {
	n := newPair(t)
	r := n.nodes["A"].r
	for name, p := range map[string]Proposal{
		"NUL in name":       {Doctype: "Item", Name: "a\x00b", Ops: []crdt.Op{{Kind: crdt.OpCreate}}},
		"no doctype":        {Doctype: "", Name: "x", Ops: []crdt.Op{{Kind: crdt.OpCreate}}},
		"update of missing": {Doctype: "Item", Name: "NOPE", Ops: []crdt.Op{{Kind: crdt.OpSet, Field: "a", Value: crdt.Str("b")}}},
		"create existing":   {Doctype: "Item", Name: "ITEM-1", Ops: []crdt.Op{{Kind: crdt.OpCreate}}},
		"bad decimal":       {Doctype: "Item", Name: "ITEM-1", Ops: []crdt.Op{{Kind: crdt.OpSet, Field: "rate", Value: crdt.Value{Kind: crdt.KindDec, Str: "1,5"}}}},
		"empty":             {Doctype: "Item", Name: "ITEM-1"},
	} {
		t.Run(name, func(t *testing.T) {
			before := stateOf(t, n, "A")
			if _, err := r.Propose(p); err == nil {
				t.Fatal("accepted")
			}
			if stateOf(t, n, "A") != before || r.HasReady() {
				t.Fatal("a rejected edit changed the state")
			}
		})
	}
}
