package crdt

import "crypto/sha256"

// Digest is a SHA-256 hash of canonical bytes.
type Digest [32]byte

// RegisterTerm hashes one register's writes canonically (sites by ID):
// SHA-256 of the CBOR [name, key, [[site, seq, hlc, gen, [[site, seq]…], value]…]].
// An empty register contributes nothing (the zero digest), and neither does
// one holding only row-removal markers: such tombstones are collected at
// different times on different sites, and a collected tombstone and an
// uncollected one show the same document.
func RegisterTerm(name, key string, sibs []Sibling) Digest {
	var h TermHasher
	return h.Term(name, key, sibs)
}

// TermHasher computes register terms reusing one buffer: hashing many
// registers then allocates nothing. Its zero value is ready; it is not
// safe for concurrent use.
type TermHasher struct{ w cborWriter }

// Term is RegisterTerm.
func (h *TermHasher) Term(name, key string, sibs []Sibling) Digest {
	removedOnly := true
	for i := range sibs {
		if sibs[i].Value.Kind != KindRemoved {
			removedOnly = false
			break
		}
	}
	if removedOnly {
		return Digest{}
	}
	w := &h.w
	w.b = w.b[:0]
	w.array(3)
	w.text(name)
	w.text(key)
	w.array(len(sibs))
	for i := range sibs {
		s := &sibs[i]
		w.array(6)
		w.text(string(s.Dot.Site))
		w.uint(s.Dot.Seq)
		w.uint(uint64(s.HLC))
		w.uint(s.Gen)
		writeCtxFull(w, s.Ctx)
		w.value(s.Value)
	}
	return sha256.Sum256(w.b)
}

// Digest returns the document's digest: the XOR of its register terms, so
// a store can update it from the registers that changed. Two replicas
// holding the same writes of a document have equal digests.
func (d *Doc) Digest() Digest {
	var g Digest
	var h TermHasher
	for i := range d.Regs {
		g.Xor(h.Term(d.Name, d.Regs[i].Key, d.Regs[i].Sibs))
	}
	return g
}

// Buckets is the number of buckets a doctype digest is split into, so two
// replicas whose digests differ can narrow the difference down cheaply.
const Buckets = 256

// BucketOf returns the bucket of a document name.
func BucketOf(name string) int {
	h := sha256.Sum256([]byte(name))
	return int(h[0])
}

// docTerm is a document's contribution to its bucket: XOR-combining
// per-document terms lets a bucket digest be updated in O(1) per write.
func docTerm(name string, g Digest) Digest {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write(g[:])
	var out Digest
	h.Sum(out[:0])
	return out
}

// Xor folds b into a.
func (a *Digest) Xor(b Digest) {
	for i := range a {
		a[i] ^= b[i]
	}
}

// DocTerm returns what a document with digest g contributes to its bucket;
// a document with no state contributes nothing (the zero digest).
func DocTerm(name string, g Digest) Digest {
	if g == (Digest{}) {
		return Digest{}
	}
	return docTerm(name, g)
}

// CombineBuckets hashes bucket digests into one doctype digest.
func CombineBuckets(buckets *[Buckets]Digest) Digest {
	h := sha256.New()
	for i := range buckets {
		h.Write(buckets[i][:])
	}
	var out Digest
	h.Sum(out[:0])
	return out
}
