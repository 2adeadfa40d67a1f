package crdt

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

func sampleDoc(t testing.TB) *Doc {
	d := NewDoc("Item", "ITEM-0001")
	ops := []Op{{Kind: OpCreate}, set("item_name", "Widget ü"), {Kind: OpSet, Field: "standard_rate", Value: MustDec("12.50")},
		{Kind: OpSet, Field: "is_stock_item", Value: Int(1)}, {Kind: OpSet, Field: "image", Value: Null}}
	for _, tbl := range []string{"barcodes", "uoms", "item_defaults"} {
		for _, row := range []string{"a1b2c3d4e5", "f6g7h8i9j0"} {
			ops = append(ops, Op{Kind: OpSet, Table: tbl, Row: row, Field: "value", Value: Str(tbl + row)})
		}
	}
	if _, err := d.Write(Dot{"A", 1}, MakeHLC(1000, 0), ops); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDocEncodingRoundTrips(t *testing.T) {
	d := sampleDoc(t)
	b, err := EncodeDoc(d)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeDoc(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := EncodeDoc(back)
	if !bytes.Equal(b, b2) {
		t.Fatal("re-encoding a decoded document changed its bytes")
	}
	if back.View().Fields["standard_rate"] != MustDec("12.5") {
		t.Fatalf("decimal lost: %v", back.View().Fields["standard_rate"])
	}
}

func TestDecodeDocRejectsBadInput(t *testing.T) {
	good, _ := EncodeDoc(sampleDoc(t))
	cases := map[string][]byte{
		"empty":     nil,
		"truncated": good[:len(good)/2],
		"garbage":   []byte("this is not CBOR at all"),
		"trailing":  append(append([]byte(nil), good...), 0x00),
		"wrong shape": func() []byte {
			b, _ := Marshal(map[string]int{"a": 1})
			return b
		}(),
		"unsorted keys": rawDoc("Item", "X", []string{"A"}, func(w *cborWriter) {
			w.array(2)
			for _, k := range []string{"b", "a"} {
				w.array(2)
				w.text(k)
				w.array(1)
				rawSib(w, 0, 1, 1, Str("x"))
			}
		}),
		"site index out of range": rawDoc("Item", "X", []string{"A"}, func(w *cborWriter) {
			w.array(1)
			w.array(2)
			w.text("a")
			w.array(1)
			rawSib(w, 7, 1, 1, Str("x"))
		}),
		"non-canonical decimal": rawDoc("Item", "X", []string{"A"}, func(w *cborWriter) {
			w.array(1)
			w.array(2)
			w.text("a")
			w.array(1)
			rawSib(w, 0, 1, 1, Value{Kind: KindDec, Str: "1.50"})
		}),
		"NUL in name": rawDoc("Item", "X\x00Y", nil, func(w *cborWriter) { w.array(0) }),
		"non-shortest integer": func() []byte {
			b := append([]byte(nil), good...)
			return append([]byte{b[0], 0x78, b[1] & 0x1f}, b[2:]...) // text length as a 1-byte head
		}(),
		"indefinite length": append([]byte{0x9f}, good[1:]...),
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeDoc(in)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v; want ErrMalformed", err)
			}
			if err.Error() == "" {
				t.Fatal("empty error text")
			}
		})
	}
}

// rawDoc hand-builds document bytes, for inputs EncodeDoc cannot produce.
func rawDoc(doctype, name string, sites []string, regs func(*cborWriter)) []byte {
	w := &cborWriter{}
	w.array(4)
	w.text(doctype)
	w.text(name)
	w.array(len(sites))
	for _, s := range sites {
		w.text(s)
	}
	regs(w)
	return w.b
}

func rawSib(w *cborWriter, site, seq, gen uint64, v Value) {
	w.array(6)
	w.uint(site)
	w.uint(seq)
	w.uint(1000)
	w.uint(gen)
	w.array(0)
	w.value(v)
}

func signerFor(site SiteID) (Ed25519Signer, KeyRing) {
	seed := sha256.Sum256([]byte(site))
	priv := ed25519.NewKeyFromSeed(seed[:])
	return Ed25519Signer{ID: site, Key: priv}, KeyRing{site: priv.Public().(ed25519.PublicKey)}
}

func sampleBatch(t *testing.T) (*Batch, KeyRing) {
	s, ring := signerFor("A")
	d := sampleDoc(t)
	b := &Batch{Origin: "A", Doctype: "Item", First: 1, Last: 1, HLC: MakeHLC(1000, 0), Docs: []*Doc{d}}
	if err := b.Seal(s); err != nil {
		t.Fatal(err)
	}
	return b, ring
}

func TestBatchSignaturesCatchForgery(t *testing.T) {
	b, ring := sampleBatch(t)
	if _, err := b.Verify(ring); err != nil {
		t.Fatalf("valid batch: %v", err)
	}
	raw, err := EncodeBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := DecodeBatch(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dec.Verify(ring); err != nil {
		t.Fatalf("decoded batch: %v", err)
	}

	altered, _ := DecodeBatch(raw)
	altered.Docs[0].Regs[len(altered.Docs[0].Regs)-1].Sibs[0].Value = Str("forged")
	if _, err := altered.Verify(ring); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("altered value: err = %v; want ErrBadSignature", err)
	}

	other, otherRing := signerFor("A-impostor")
	_ = other
	impostor := KeyRing{"A": otherRing["A-impostor"]}
	if _, err := dec.Verify(impostor); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("wrong key: err = %v; want ErrBadSignature", err)
	}
	if _, err := dec.Verify(KeyRing{}); !errors.Is(err, ErrUnknownOrigin) {
		t.Fatalf("unknown origin: err = %v; want ErrUnknownOrigin", err)
	}

	// A partial batch (as served from state) verifies with its proof, and
	// an altered write in it does not.
	h, _ := b.Header()
	some := b.Docs[0].Clone()
	some.Regs = some.Regs[:3]
	part, err := PartialBatch("A", "Item", h, []*Doc{some})
	if err != nil || part.Proof == nil {
		t.Fatalf("partial batch: %v, proof %v", err, part.Proof)
	}
	if _, err := part.Verify(ring); err != nil {
		t.Fatalf("partial batch: %v", err)
	}
	raw, _ = EncodeBatch(part)
	again, err := DecodeBatch(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := again.Verify(ring); err != nil {
		t.Fatalf("decoded partial batch: %v", err)
	}
	part.Docs[0].Regs[0].Sibs[0].Value = Int(99)
	if _, err := part.Verify(ring); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("altered partial: err = %v; want ErrBadSignature", err)
	}
}

// Any subset of a batch's writes can be proven, from the full tree or from
// the partial tree a receiver of an earlier subset keeps; a proof with a
// wrong hash does not give the root.
func TestMerkleProofsOfAnySubset(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 70).Draw(t, "n")
		leaves := make([][32]byte, n)
		for i := range leaves {
			leaves[i] = sha256.Sum256([]byte{byte(i), byte(i >> 8)})
		}
		full, want := buildFull(leaves, nil)
		if looked, err := full.Root(); err != nil || looked != want {
			t.Fatalf("the root computed straight down differs from the one looked up node by node (%v)", err)
		}
		pick := func(from []uint32, label string) []uint32 {
			var out []uint32
			for _, ix := range from {
				if rapid.Bool().Draw(t, label) {
					out = append(out, ix)
				}
			}
			if len(out) == 0 {
				out = from[:1]
			}
			return out
		}
		all := make([]uint32, n)
		for i := range all {
			all[i] = uint32(i)
		}
		prove := func(tr Tree, idx []uint32) (Tree, [32]byte) {
			hs, err := tr.Prove(idx)
			if err != nil {
				t.Fatalf("prove %v: %v", idx, err)
			}
			lv := make([][32]byte, len(idx))
			for i, ix := range idx {
				lv[i] = leaves[ix]
			}
			got, learnt, err := verifyProof(&Proof{Leaves: uint32(n), Indices: idx, Hashes: hs}, lv)
			if err != nil || got != want {
				t.Fatalf("proof of %v: root %x, %v; want %x", idx, got[:4], err, want[:4])
			}
			if len(hs) > 0 {
				hs[0][0] ^= 1
				if bad, _, err := verifyProof(&Proof{Leaves: uint32(n), Indices: idx, Hashes: hs}, lv); err == nil && bad == want {
					t.Fatal("a tampered proof gave the root")
				}
			}
			return learnt, got
		}
		first := pick(all, "first")
		partial, _ := prove(full, first)
		prove(partial, pick(first, "second")) // re-serving from what was received
	})
}

func TestBatchLimits(t *testing.T) {
	b, _ := sampleBatch(t)
	b.Last = b.First + MaxBatchEdits
	if err := b.Check(); !errors.Is(err, ErrOversized) {
		t.Fatalf("err = %v; want ErrOversized", err)
	}
	b, _ = sampleBatch(t)
	b.Docs[0].Regs[0].Sibs[0].Dot.Site = "B"
	if err := b.Check(); !errors.Is(err, ErrInvalidBatch) {
		t.Fatalf("write of another origin: err = %v; want ErrInvalidBatch", err)
	}
	for _, garbage := range [][]byte{nil, {0xa0}, []byte("garbage")} {
		if _, err := DecodeBatch(garbage); !errors.Is(err, ErrMalformed) {
			t.Fatalf("DecodeBatch(%x) = %v; want ErrMalformed", garbage, err)
		}
	}
}

func TestPeerIDKeyMatchesLibp2p(t *testing.T) {
	// Vector made with go-libp2p: peer.IDFromPrivateKey of the ed25519 key
	// whose seed is sha256("meridian peer id vector").
	const id = "12D3KooWC9UsZyMUiEYQDNQ4RTC7kAyJxbhdxCT6gc23YDBjBh4d"
	want, _ := hex.DecodeString("229cfd443e7b2681629feafcd70e3f9e5b929666e81f135fedfb9dc9188ed162")
	pub, err := PeerIDPublicKey(id)
	if err != nil || !bytes.Equal(pub, want) {
		t.Fatalf("PeerIDPublicKey = %x, %v", pub, err)
	}
	if got := PeerIDFromPublicKey(want); got != id {
		t.Fatalf("PeerIDFromPublicKey = %s", got)
	}
	for _, bad := range []string{"", "0OIl", "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N", id[:40]} {
		if _, err := PeerIDPublicKey(bad); err == nil {
			t.Fatalf("PeerIDPublicKey(%q) accepted", bad)
		}
	}
}

func TestCanonicalDecimal(t *testing.T) {
	for in, want := range map[string]string{
		"1.500": "1.5", "+1.5": "1.5", "15e-1": "1.5", "-0.0": "0", "0": "0", ".5": "0.5",
		"007": "7", "1e3": "1000", "-12.340": "-12.34", "123456789012.123456789": "123456789012.123456789",
		"1.": "1", "-.25": "-0.25",
	} {
		got, err := CanonicalDecimal(in)
		if err != nil || got != want {
			t.Errorf("CanonicalDecimal(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-", ".", "1.2.3", "1,5", "NaN", "inf", "0x10", "1e", "1e99999"} {
		if _, err := CanonicalDecimal(bad); err == nil {
			t.Errorf("CanonicalDecimal(%q) accepted", bad)
		}
	}
}

// The version vector agrees with a plain set of delivered sequence numbers.
func TestSeenMatchesASetModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var s Seen
		model := map[uint64]bool{}
		for _, iv := range rapid.SliceOf(rapid.Custom(func(t *rapid.T) Interval {
			lo := rapid.Uint64Range(1, 40).Draw(t, "lo")
			return Interval{lo, lo + rapid.Uint64Range(0, 5).Draw(t, "len")}
		})).Draw(t, "adds") {
			s.Add(iv.Lo, iv.Hi)
			for i := iv.Lo; i <= iv.Hi; i++ {
				model[i] = true
			}
		}
		for i := uint64(1); i <= 50; i++ {
			if s.Has(i) != model[i] {
				t.Fatalf("Has(%d) = %v, model %v (%+v)", i, s.Has(i), model[i], s)
			}
		}
		var o Seen
		o.Add(1, 50)
		for _, m := range s.Missing(&o) {
			for i := m.Lo; i <= m.Hi; i++ {
				if model[i] {
					t.Fatalf("Missing lists delivered %d", i)
				}
			}
		}
		got := 0
		for _, iv := range s.Intersect(Interval{1, 50}) {
			got += int(iv.Hi - iv.Lo + 1)
		}
		want := 0
		for i := range model {
			if i <= 50 {
				want++
			}
		}
		if got != want {
			t.Fatalf("Intersect covers %d, model %d", got, want)
		}
		for i, iv := range s.Extra {
			if iv.Lo <= s.Max+1 || (i > 0 && iv.Lo <= s.Extra[i-1].Hi+1) {
				t.Fatalf("not normalized: %+v", s)
			}
		}
	})
}

func TestHLCIsMonotonicAndFollowsObservedTime(t *testing.T) {
	c := NewClock(0)
	a := c.Now(100)
	b := c.Now(100)
	if b <= a || b.Physical() != 100 {
		t.Fatalf("two events in one ms: %v then %v", a, b)
	}
	c.Observe(MakeHLC(500, 7), 100)
	if n := c.Now(100); n <= MakeHLC(500, 7) {
		t.Fatalf("after observing 500.7 the clock issued %v", n)
	}
	if n := c.Now(900); n != MakeHLC(900, 0) {
		t.Fatalf("physical time moved on, got %v", n)
	}
	c2 := NewClock(MakeHLC(10, 0xffff))
	if n := c2.Now(5); n != MakeHLC(11, 0) {
		t.Fatalf("logical overflow: %v", n)
	}
	_ = fmt.Sprint(a)
}

// Sealing through a parallel loop must sign the same root as sealing in
// order, and receivers must verify it, whatever the number of writes.
func TestSealWithParallelLoopSignsTheSame(t *testing.T) {
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	signer := Ed25519Signer{ID: "A", Key: key}
	ring := KeyRing{"A": key.Public().(ed25519.PublicKey)}
	// A loop that runs f out of order, as concurrent workers may.
	reversed := func(n int, f func(int)) {
		for i := n - 1; i >= 0; i-- {
			f(i)
		}
	}
	for _, docs := range []int{1, 2, 3, 100, 257, 1500} {
		mk := func() *Batch {
			b := &Batch{Origin: "A", Doctype: "Item", First: 1, Last: uint64(docs), HLC: MakeHLC(1000, 0)}
			for i := range docs {
				d := NewDoc("Item", fmt.Sprintf("ITEM-%05d", i))
				if _, err := d.Write(Dot{Site: "A", Seq: uint64(i + 1)}, MakeHLC(1000, 0), []Op{
					{Kind: OpCreate}, {Kind: OpSet, Field: "item_name", Value: Str("x")}}); err != nil {
					t.Fatal(err)
				}
				b.Docs = append(b.Docs, d)
			}
			return b
		}
		a, p := mk(), mk()
		if err := a.Seal(signer); err != nil {
			t.Fatal(err)
		}
		if err := p.SealWith(signer, reversed); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a.Sig, p.Sig) {
			t.Fatalf("%d documents: signatures differ", docs)
		}
		if _, err := p.Verify(ring); err != nil {
			t.Fatalf("%d documents: %v", docs, err)
		}
		r1, t1, err1 := a.Tree()
		r2, t2, err2 := a.TreeWith(reversed)
		if err1 != nil || err2 != nil || !bytes.Equal(r1, r2) || !slices.Equal(t1.Nodes, t2.Nodes) {
			t.Fatalf("%d documents: the receiver's tree differs through a parallel loop (%v, %v)", docs, err1, err2)
		}
	}
}
