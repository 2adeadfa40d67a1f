// Package crdt holds Meridian's pure data types: hybrid logical clocks,
// dots and version vectors, the document CRDT that a master document is
// stored as, signed batches of writes, and their canonical CBOR encoding.
//
// It owns the merge semantics every site relies on (see README.md,
// "What converges, and how"):
//
//   - every field is a multi-value register: concurrent writes are all kept
//     and the one with the greatest (HLC, site) is shown; a write carries the
//     context of what it overwrote, so concurrency is exact;
//   - child-table rows are add-wins maps of registers with an idx register;
//   - existence is a causal length (odd: exists, even: deleted), and every
//     write carries the causal length it was made under, so a delete wins
//     over a concurrent update and a re-create starts a fresh life;
//   - docstatus is the maximum of the writes it has seen.
//
// Merge is commutative, associative and idempotent; a delta is a document
// holding only some writes, and merging any subset of deltas in any order
// converges.
//
// Imports: the standard library and fxamacker/cbor only. No clock, no
// randomness, no goroutines, no IO: time arrives as arguments.
//
// A local edit and its replication, in full:
//
//	doc := crdt.NewDoc("Item", "ITEM-0001")
//	clock := crdt.NewClock(0)
//	delta, err := doc.Write(crdt.Dot{Site: me, Seq: 1}, clock.Now(nowMs), []crdt.Op{
//		{Kind: crdt.OpCreate},
//		{Kind: crdt.OpSet, Field: "item_name", Value: crdt.Str("Widget")},
//	})
//	batch := &crdt.Batch{Origin: me, Doctype: "Item", First: 1, Last: 1, HLC: delta.Regs[0].Sibs[0].HLC, Docs: []*crdt.Doc{delta}}
//	err = batch.Seal(signer)       // the origin signs
//	raw, _ := crdt.EncodeBatch(batch)
//
//	// on another site
//	b, err := crdt.DecodeBatch(raw)
//	_, err = b.Verify(crdt.PeerIDVerifier{})
//	theirs.Merge(b.Docs[0])        // any order, any number of times
package crdt
