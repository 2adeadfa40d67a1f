package crdt

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
)

// A Batch is the signed unit of replication: edits one origin made to one
// doctype, covering the contiguous run First..Last of its sequence numbers.
// The origin signs the root of a Merkle tree with one leaf per write, so a
// replica that serves the batch later from its state can send only the
// writes still live, with a proof, and receivers can still check that every
// write is the origin's own, unaltered — whoever relays it.
type Batch struct {
	Origin  SiteID
	Doctype string
	First   uint64
	Last    uint64
	HLC     HLC   // the greatest timestamp of the batch's writes
	Deps    []Dot // writes the batch builds on; a receiver delivers it after them
	// Version is the master version of the doctype the origin wrote under
	// (0: the mesh has no authority versions).
	Version uint64
	// Proof is nil when Docs carries every write of the batch; otherwise it
	// proves the carried writes against the signed root.
	Proof *Proof
	Sig   []byte
	Docs  []*Doc // each holds only writes of this batch, sorted by name

	sealed   *Tree // the tree computed by Seal; a sealed batch is not modified
	unsigned bool  // sealed by a signer that skips integrity (simulation)
}

// IntegritySkipper is implemented by the simulation's signer and verifier:
// batches are neither hashed nor signed, which is what lets a laptop
// simulate a thousand sites. A node never uses one.
type IntegritySkipper interface{ SkipsIntegrity() bool }

func skips(x any) bool {
	s, ok := x.(IntegritySkipper)
	return ok && s.SkipsIntegrity()
}

// Unsigned signs nothing and Unverified accepts everything: the
// simulator's stand-ins for ed25519, so that it measures replication and
// not cryptography.
type Unsigned struct{ ID SiteID }

func (u Unsigned) Site() SiteID              { return u.ID }
func (Unsigned) Sign([]byte) ([]byte, error) { return nil, nil }
func (Unsigned) SkipsIntegrity() bool        { return true }

// Unverified accepts every batch without checking it (simulation only).
type Unverified struct{}

func (Unverified) Verify(SiteID, []byte, []byte) error { return nil }
func (Unverified) SkipsIntegrity() bool                { return true }

// SkipsIntegrity reports whether v checks nothing (simulation only).
func SkipsIntegrity(v Verifier) bool { return skips(v) }

// Header is what a replica keeps of a batch while any of its writes lives:
// its signed fields and enough of its tree to prove any write it holds.
type Header struct {
	First   uint64
	Last    uint64
	HLC     HLC
	Deps    []Dot
	Version uint64
	Tree    Tree
	Sig     []byte
}

// Limits on one batch; anything larger is rejected as oversized.
const (
	MaxBatchEdits  = 1 << 16
	MaxBatchWrites = 1 << 18
)

// Errors from batch verification.
var (
	ErrBadSignature  = errors.New("crdt: batch signature does not verify")
	ErrUnknownOrigin = errors.New("crdt: batch origin is not a known site")
	ErrOversized     = errors.New("crdt: batch is oversized")
	ErrInvalidBatch  = errors.New("crdt: invalid batch")
)

// Signer signs with a site's key; the node injects its identity key.
type Signer interface {
	Site() SiteID
	Sign(msg []byte) ([]byte, error)
}

// Verifier checks a signature made by a site. Verification is pure.
type Verifier interface {
	// Verify returns nil if sig is site's signature of msg, ErrUnknownOrigin
	// (wrapped) if the site's key is unknown, ErrBadSignature otherwise.
	Verify(site SiteID, msg, sig []byte) error
}

// Ed25519Signer signs with an ed25519 private key.
type Ed25519Signer struct {
	ID  SiteID
	Key ed25519.PrivateKey
}

func (s Ed25519Signer) Site() SiteID                    { return s.ID }
func (s Ed25519Signer) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.Key, msg), nil }

// KeyRing verifies against a fixed set of ed25519 public keys.
type KeyRing map[SiteID]ed25519.PublicKey

func (k KeyRing) Verify(site SiteID, msg, sig []byte) error {
	pub, ok := k[site]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownOrigin, site)
	}
	if !ed25519.Verify(pub, msg, sig) {
		return fmt.Errorf("%w (origin %s)", ErrBadSignature, shortSite(site))
	}
	return nil
}

// PeerIDVerifier verifies against the ed25519 key embedded in a libp2p peer
// ID ("12D3KooW…"), so any site's signature can be checked with no lookup.
type PeerIDVerifier struct{}

func (PeerIDVerifier) Verify(site SiteID, msg, sig []byte) error {
	pub, err := PeerIDPublicKey(string(site))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnknownOrigin, err)
	}
	if !ed25519.Verify(pub, msg, sig) {
		return fmt.Errorf("%w (origin %s)", ErrBadSignature, shortSite(site))
	}
	return nil
}

// leafOf hashes one write of a batch: the canonical CBOR of
// [name, key, seq, hlc, gen, [[site, seq], …], value].
func leafOf(w *cborWriter, name, key string, s *Sibling) [32]byte {
	w.b = w.b[:0]
	w.array(7)
	w.text(name)
	w.text(key)
	w.uint(s.Dot.Seq)
	w.uint(uint64(s.HLC))
	w.uint(s.Gen)
	writeCtxFull(w, s.Ctx)
	w.value(s.Value)
	return sha256.Sum256(w.b)
}

// writeCtxFull writes a context with site IDs spelled out: [[site, seq], …].
func writeCtxFull(w *cborWriter, ctx Context) {
	w.array(len(ctx))
	for _, c := range ctx {
		w.array(2)
		w.text(string(c.Site))
		w.uint(c.Seq)
	}
}

// carriedLeaves hashes the writes the batch carries, in canonical order.
func (b *Batch) carriedLeaves() ([][32]byte, error) { return b.leavesWith(nil) }

// leavesWith is carriedLeaves with the documents hashed through par (see
// SealWith), each into its own part of the result.
func (b *Batch) leavesWith(par func(n int, f func(i int))) ([][32]byte, error) {
	offs := make([]int, len(b.Docs)+1)
	for i, d := range b.Docs {
		n := 0
		for j := range d.Regs {
			n += len(d.Regs[j].Sibs)
		}
		offs[i+1] = offs[i] + n
	}
	out := make([][32]byte, offs[len(b.Docs)])
	hashDoc := func(i int) {
		d, k := b.Docs[i], offs[i]
		w := &cborWriter{b: make([]byte, 0, 256)}
		for j := range d.Regs {
			r := &d.Regs[j]
			for x := range r.Sibs {
				out[k] = leafOf(w, d.Name, r.Key, &r.Sibs[x])
				k++
			}
		}
	}
	if par == nil || len(b.Docs) < 2 {
		for i := range b.Docs {
			hashDoc(i)
		}
	} else {
		par(len(b.Docs), hashDoc)
	}
	return out, nil
}

// root is the hash the origin signs: the batch's fields and its tree root.
func root(origin SiteID, doctype string, first, last uint64, hlc HLC, deps []Dot, version uint64, leaves uint32, tree [32]byte) []byte {
	w := &cborWriter{b: make([]byte, 0, 160)}
	w.array(10)
	w.text("meridian/batch/3")
	w.text(string(origin))
	w.text(doctype)
	w.uint(first)
	w.uint(last)
	w.uint(uint64(hlc))
	writeCtxFull(w, deps)
	w.uint(version)
	w.uint(uint64(leaves))
	w.bytes(tree[:])
	h := sha256.Sum256(w.b)
	return h[:]
}

// Seal validates a freshly built batch, computes its tree and signs it.
func (b *Batch) Seal(s Signer) error { return b.SealWith(s, nil) }

// SealWith is Seal with the writes' leaf hashes computed through par,
// which must call f(0) … f(n-1), in any order or at once, and return when
// all have returned (nil: in order). The signature is the same either way.
func (b *Batch) SealWith(s Signer, par func(n int, f func(i int))) error {
	if s.Site() != b.Origin {
		return fmt.Errorf("%w: signer %s does not match origin %s", ErrInvalidBatch, s.Site(), b.Origin)
	}
	b.Proof = nil
	if err := b.check(); err != nil {
		return err
	}
	if skips(s) {
		b.unsigned = true
		return nil
	}
	leaves, err := b.leavesWith(par)
	if err != nil {
		return err
	}
	if len(leaves) == 0 {
		return fmt.Errorf("%w: no writes to seal", ErrInvalidBatch)
	}
	t, top := buildFull(leaves, par)
	b.Sig, err = s.Sign(root(b.Origin, b.Doctype, b.First, b.Last, b.HLC, b.Deps, b.Version, t.Leaves, top))
	b.sealed = &t
	return err
}

// buildFull is the tree of a batch whose leaves are all known, and its
// root; with par, the leaf nodes and the top subtrees are hashed through it.
func buildFull(leaves [][32]byte, par func(n int, f func(i int))) (Tree, [32]byte) {
	t := Tree{Leaves: uint32(len(leaves)), Nodes: make([]Node, len(leaves))}
	nodes := func(c int) { // leaf nodes, 256 a chunk
		for i := c * 256; i < min(len(leaves), (c+1)*256); i++ {
			t.Nodes[i] = Node{Lo: uint32(i), Hi: uint32(i + 1), Hash: leafNode(leaves[i])}
		}
	}
	if chunks := (len(leaves) + 255) / 256; par != nil && chunks > 1 {
		par(chunks, nodes)
	} else {
		for c := 0; c < chunks; c++ {
			nodes(c)
		}
	}
	return t, fullRoot(t.Nodes, par)
}

// Tree computes the signed root of the batch and the tree it learns from
// the carried writes (and proof). It fails if a write does not belong.
func (b *Batch) Tree() ([]byte, Tree, error) { return b.TreeWith(nil) }

// TreeWith is Tree with the hashing of a full batch done through par (see
// SealWith).
func (b *Batch) TreeWith(par func(n int, f func(i int))) ([]byte, Tree, error) {
	leaves, err := b.leavesWith(par)
	if err != nil {
		return nil, Tree{}, err
	}
	var t Tree
	var top [32]byte
	if b.Proof == nil {
		if len(leaves) == 0 {
			return nil, t, fmt.Errorf("%w: a full batch without writes", ErrInvalidBatch)
		}
		t, top = buildFull(leaves, par)
	} else if top, t, err = verifyProof(b.Proof, leaves); err != nil {
		return nil, t, fmt.Errorf("%w: %v (altered in transit?)", ErrBadSignature, err)
	}
	return root(b.Origin, b.Doctype, b.First, b.Last, b.HLC, b.Deps, b.Version, t.Leaves, top), t, nil
}

// Verify checks the batch's structure and its origin's signature. It
// returns the root so callers can cache verified roots.
func (b *Batch) Verify(v Verifier) ([]byte, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	r, _, err := b.Tree()
	if err != nil {
		return nil, err
	}
	if err := v.Verify(b.Origin, r, b.Sig); err != nil {
		return nil, err
	}
	return r, nil
}

// Writes counts the writes the batch carries.
func (b *Batch) Writes() int {
	n := 0
	for _, d := range b.Docs {
		for i := range d.Regs {
			n += len(d.Regs[i].Sibs)
		}
	}
	return n
}

// Check validates everything about a batch except its signature.
func (b *Batch) Check() error { return b.check() }

// check validates everything about a batch except its signature.
func (b *Batch) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w from %s: %s", ErrInvalidBatch, shortSite(b.Origin), fmt.Sprintf(format, args...))
	}
	if b.Origin == "" {
		return bad("no origin")
	}
	if err := ValidateName("doctype", b.Doctype); err != nil {
		return bad("%v", err)
	}
	if b.First == 0 || b.Last < b.First {
		return bad("sequence range %d..%d", b.First, b.Last)
	}
	if b.Last-b.First >= MaxBatchEdits {
		return fmt.Errorf("%w: %d edits; the limit is %d", ErrOversized, b.Last-b.First+1, MaxBatchEdits)
	}
	if n := b.Writes(); n > MaxBatchWrites {
		return fmt.Errorf("%w: %d writes; the limit is %d", ErrOversized, n, MaxBatchWrites)
	}
	if p := b.Proof; p != nil {
		if p.Leaves > MaxBatchWrites || len(p.Hashes) > MaxBatchWrites {
			return fmt.Errorf("%w: a proof over %d writes; the limit is %d", ErrOversized, p.Leaves, MaxBatchWrites)
		}
		if len(p.Indices) != b.Writes() {
			return bad("proof names %d writes, the batch carries %d", len(p.Indices), b.Writes())
		}
	}
	for i, d := range b.Docs {
		if d.Doctype != b.Doctype {
			return bad("document %q is of doctype %q", d.Name, d.Doctype)
		}
		if err := ValidateName("document", d.Name); err != nil {
			return bad("%v", err)
		}
		if i > 0 && b.Docs[i-1].Name >= d.Name {
			return bad("documents not sorted by name at %q", d.Name)
		}
		for j := range d.Regs {
			for _, s := range d.Regs[j].Sibs {
				if s.Dot.Site != b.Origin || s.Dot.Seq < b.First || s.Dot.Seq > b.Last {
					return bad("write %v of %q lies outside the batch %d..%d", s.Dot, d.Name, b.First, b.Last)
				}
				if s.HLC > b.HLC {
					return bad("write of %q is timestamped after the batch", d.Name)
				}
			}
		}
	}
	for i, d := range b.Deps {
		if d.Site == "" || d.Seq == 0 || (i > 0 && !b.Deps[i-1].Less(d)) {
			return bad("dependencies not sorted or zero")
		}
	}
	return nil
}

// Header returns what a replica stores of the batch once it is sealed or
// verified: its tree lets it prove the writes it holds later.
func (b *Batch) Header() (*Header, error) {
	h := &Header{First: b.First, Last: b.Last, HLC: b.HLC, Deps: b.Deps, Version: b.Version, Sig: b.Sig}
	switch {
	case b.sealed != nil:
		h.Tree = *b.sealed
	case !b.unsigned:
		_, t, err := b.Tree()
		if err != nil {
			return nil, err
		}
		h.Tree = t
	}
	return h, nil
}

// PartialBatch builds a batch carrying some of the writes of a stored
// batch, with the proof that lets receivers verify them. It carries no
// proof when the docs hold every write, or when the header has no tree
// (unsigned simulation batches).
func PartialBatch(origin SiteID, doctype string, h *Header, docs []*Doc) (*Batch, error) {
	sort.Slice(docs, func(i, j int) bool { return docs[i].Name < docs[j].Name })
	b := &Batch{Origin: origin, Doctype: doctype, First: h.First, Last: h.Last, HLC: h.HLC, Deps: h.Deps, Version: h.Version, Sig: h.Sig, Docs: docs}
	if h.Tree.Leaves == 0 {
		return b, nil
	}
	leaves, err := b.carriedLeaves()
	if err != nil {
		return nil, err
	}
	if uint32(len(leaves)) == h.Tree.Leaves {
		return b, nil // every write: receivers rebuild the tree themselves
	}
	p := &Proof{Leaves: h.Tree.Leaves, Indices: make([]uint32, len(leaves))}
	for i, l := range leaves {
		ix, ok := h.Tree.indexOf(l)
		if !ok {
			return nil, fmt.Errorf("crdt: a write of %s %v is not in its batch's tree", doctype, origin)
		}
		p.Indices[i] = ix
	}
	if p.Hashes, err = h.Tree.Prove(p.Indices); err != nil {
		return nil, err
	}
	b.Proof = p
	return b, nil
}

// EncodeBatch returns the canonical wire form of a batch:
// [origin, doctype, first, last, hlc, [site, seq, …] deps, leaves (32 bytes
// each; empty when every write is carried), sig, [sites…], [[name, registers], …]].
func EncodeBatch(b *Batch) ([]byte, error) {
	t := newSiteTable()
	t.add(b.Origin)
	for _, d := range b.Deps {
		t.add(d.Site)
	}
	for _, d := range b.Docs {
		t.addDoc(d)
	}
	sites := t.seal()
	w := &cborWriter{b: make([]byte, 0, 512)}
	w.array(13)
	w.uint(t.num(b.Origin))
	w.text(b.Doctype)
	w.uint(b.First)
	w.uint(b.Last)
	w.uint(uint64(b.HLC))
	w.uint(b.Version)
	w.array(2 * len(b.Deps))
	for _, d := range b.Deps {
		w.uint(t.num(d.Site))
		w.uint(d.Seq)
	}
	writeProof(w, b.Proof)
	w.bytes(b.Sig)
	w.array(len(sites))
	for _, s := range sites {
		w.text(s)
	}
	w.array(len(b.Docs))
	for _, d := range b.Docs {
		w.array(2)
		w.text(d.Name)
		t.writeRegs(w, d.Regs)
	}
	return w.b, nil
}

// DecodeBatch parses a batch from the wire. It checks structure, not the
// signature (call Verify).
func DecodeBatch(data []byte) (*Batch, error) {
	r := &cborReader{b: data}
	r.arrayN(13, "batch")
	originIdx := r.uint()
	b := &Batch{Doctype: r.text(), First: r.uint(), Last: r.uint(), HLC: HLC(r.uint()), Version: r.uint()}
	nd := r.array(maxArrayElements)
	deps := make([]uint64, 0, nd)
	for i := 0; i < nd && r.err == nil; i++ {
		deps = append(deps, r.uint())
	}
	b.Proof = readProof(r)
	b.Sig = append([]byte(nil), r.bytes()...)
	ids := readSites(r)
	if r.err == nil {
		if originIdx >= uint64(len(ids)) {
			r.fail("origin index out of range")
		} else {
			b.Origin = ids[originIdx]
		}
		if nd%2 != 0 {
			r.fail("odd-length dependency list")
		}
		for i := 0; i+1 < len(deps) && r.err == nil; i += 2 {
			if deps[i] >= uint64(len(ids)) {
				r.fail("dependency site index out of range")
				break
			}
			b.Deps = append(b.Deps, Dot{ids[deps[i]], deps[i+1]})
		}
	}
	n := r.array(maxArrayElements)
	for i := 0; i < n && r.err == nil; i++ {
		r.arrayN(2, "batch document")
		d := &Doc{Doctype: b.Doctype, Name: r.text()}
		d.Regs = readRegs(r, ids)
		b.Docs = append(b.Docs, d)
	}
	r.end("batch")
	if r.err != nil {
		return nil, malformed("batch", r.err)
	}
	if err := b.check(); err != nil {
		return nil, err
	}
	return b, nil
}

// writeProof writes a proof as leaves, [indices…], hashes (32 bytes each);
// a full batch has leaves 0 and nothing else.
func writeProof(w *cborWriter, p *Proof) {
	if p == nil {
		w.uint(0)
		w.array(0)
		w.bytes(nil)
		return
	}
	w.uint(uint64(p.Leaves))
	w.array(len(p.Indices))
	for _, ix := range p.Indices {
		w.uint(uint64(ix))
	}
	writeHashes(w, p.Hashes)
}

func writeHashes(w *cborWriter, hs [][32]byte) {
	w.head(majBytes, uint64(32*len(hs)))
	for _, h := range hs {
		w.b = append(w.b, h[:]...)
	}
}

func readHashes(r *cborReader) [][32]byte {
	raw := r.bytes()
	if len(raw)%32 != 0 {
		r.fail("hash list of %d bytes is not a multiple of 32", len(raw))
		return nil
	}
	out := make([][32]byte, len(raw)/32)
	for i := range out {
		copy(out[i][:], raw[32*i:])
	}
	return out
}

func readProof(r *cborReader) *Proof {
	leaves := r.uint()
	n := r.array(maxArrayElements)
	p := &Proof{Leaves: uint32(min(leaves, 1<<32-1)), Indices: make([]uint32, 0, n)}
	for i := 0; i < n && r.err == nil; i++ {
		ix := r.uint()
		if ix >= leaves {
			r.fail("proof index %d out of range", ix)
		}
		p.Indices = append(p.Indices, uint32(ix))
	}
	p.Hashes = readHashes(r)
	if leaves > MaxBatchWrites {
		r.fail("proof over %d writes", leaves)
	}
	if leaves == 0 {
		if n != 0 || len(p.Hashes) != 0 {
			r.fail("a full batch carries a proof")
		}
		return nil
	}
	return p
}

// EncodeHeader returns the stored form of a batch header:
// [first, last, hlc, [[site, seq], …], leaves, [lo, hi, lo, hi, …], hashes, sig].
func EncodeHeader(h *Header) ([]byte, error) {
	w := &cborWriter{b: make([]byte, 0, 64+40*len(h.Tree.Nodes)+len(h.Sig)+40*len(h.Deps))}
	w.array(9)
	w.uint(h.First)
	w.uint(h.Last)
	w.uint(uint64(h.HLC))
	writeCtxFull(w, h.Deps)
	w.uint(h.Version)
	w.uint(uint64(h.Tree.Leaves))
	w.array(2 * len(h.Tree.Nodes))
	hashes := make([][32]byte, len(h.Tree.Nodes))
	for i, n := range h.Tree.Nodes {
		w.uint(uint64(n.Lo))
		w.uint(uint64(n.Hi))
		hashes[i] = n.Hash
	}
	writeHashes(w, hashes)
	w.bytes(h.Sig)
	return w.b, nil
}

// DecodeHeader parses a stored batch header.
func DecodeHeader(data []byte) (*Header, error) {
	r := &cborReader{b: data}
	r.arrayN(9, "batch header")
	h := &Header{First: r.uint(), Last: r.uint(), HLC: HLC(r.uint())}
	n := r.array(maxArrayElements)
	for i := 0; i < n && r.err == nil; i++ {
		r.arrayN(2, "dependency")
		site := r.text()
		seq := r.uint()
		if site == "" || seq == 0 {
			r.fail("empty dependency")
		}
		h.Deps = append(h.Deps, Dot{SiteID(site), seq})
	}
	h.Version = r.uint()
	leaves := r.uint()
	ns := r.array(maxArrayElements)
	spans := make([]uint64, 0, ns)
	for i := 0; i < ns && r.err == nil; i++ {
		spans = append(spans, r.uint())
	}
	hashes := readHashes(r)
	h.Sig = append([]byte(nil), r.bytes()...)
	r.end("batch header")
	if r.err == nil && (ns%2 != 0 || len(hashes) != ns/2 || leaves > MaxBatchWrites) {
		r.fail("tree nodes and hashes disagree")
	}
	if r.err != nil {
		return nil, malformed("batch header", r.err)
	}
	h.Tree.Leaves = uint32(leaves)
	for i := range hashes {
		lo, hi := spans[2*i], spans[2*i+1]
		if lo >= hi || hi > leaves || (i > 0 && lo < uint64(h.Tree.Nodes[i-1].Hi)) {
			return nil, malformed("batch header", errors.New("tree nodes overlap or are out of range"))
		}
		h.Tree.Nodes = append(h.Tree.Nodes, Node{Lo: uint32(lo), Hi: uint32(hi), Hash: hashes[i]})
	}
	return h, nil
}
