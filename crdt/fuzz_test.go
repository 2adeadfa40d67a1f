package crdt

import (
	"bytes"
	"testing"
)

// Every decoder of bytes from the network or the disk is fuzzed: it must
// never panic, and whatever it accepts must re-encode stably.

func FuzzDecodeDoc(f *testing.F) {
	good, _ := EncodeDoc(sampleDoc(f))
	f.Add(good)
	f.Add(good[:10])
	f.Add([]byte{0x84, 0x60, 0x60, 0x80, 0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := DecodeDoc(data)
		if err != nil {
			return
		}
		b1, err := EncodeDoc(d)
		if err != nil {
			t.Fatalf("accepted document does not encode: %v", err)
		}
		d2, err := DecodeDoc(b1)
		if err != nil {
			t.Fatalf("re-encoded document does not decode: %v", err)
		}
		b2, _ := EncodeDoc(d2)
		if !bytes.Equal(b1, b2) {
			t.Fatal("encoding is not stable")
		}
		_ = d.View()
		_ = d.Conflicts()
		d.Clone().Merge(d2)
	})
}

func FuzzDecodeBatch(f *testing.F) {
	s, ring := signerFor("A")
	b := &Batch{Origin: "A", Doctype: "Item", First: 1, Last: 1, HLC: MakeHLC(1000, 0), Docs: []*Doc{sampleDoc(f)}}
	if err := b.Seal(s); err != nil {
		f.Fatal(err)
	}
	raw, _ := EncodeBatch(b)
	f.Add(raw)
	h, _ := b.Header()
	some := b.Docs[0].Clone()
	some.Regs = some.Regs[:2]
	pb, err := PartialBatch("A", "Item", h, []*Doc{some})
	if err != nil {
		f.Fatal(err)
	}
	part, _ := EncodeBatch(pb)
	f.Add(part)
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBatch(data)
		if err != nil {
			return
		}
		_, _ = b.Verify(ring)
		enc, err := EncodeBatch(b)
		if err != nil {
			t.Fatalf("accepted batch does not encode: %v", err)
		}
		if _, err := DecodeBatch(enc); err != nil {
			t.Fatalf("re-encoded batch does not decode: %v", err)
		}
	})
}

func FuzzDecodeHeader(f *testing.F) {
	s, _ := signerFor("A")
	b := &Batch{Origin: "A", Doctype: "Item", First: 1, Last: 1, HLC: MakeHLC(1000, 0), Deps: []Dot{{"B", 3}}, Docs: []*Doc{sampleDoc(f)}}
	if err := b.Seal(s); err != nil {
		f.Fatal(err)
	}
	h, _ := b.Header()
	raw, _ := EncodeHeader(h)
	f.Add(raw)
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := DecodeHeader(data)
		if err != nil {
			return
		}
		if _, err := EncodeHeader(h); err != nil {
			t.Fatalf("accepted header does not encode: %v", err)
		}
	})
}

func FuzzCanonicalDecimal(f *testing.F) {
	for _, s := range []string{"1.5", "-0.0", "1e3", "007.100", ".5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := CanonicalDecimal(s)
		if err != nil {
			return
		}
		c2, err := CanonicalDecimal(c)
		if err != nil || c2 != c {
			t.Fatalf("canonical form %q of %q is not a fixed point (%q, %v)", c, s, c2, err)
		}
	})
}
