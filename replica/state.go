package replica

import (
	"bytes"
	"container/list"
	"encoding/binary"
	"fmt"
	"sort"

	"meridian/crdt"
)

// docEntry is a decoded document with what the store holds of it.
type docEntry struct {
	id     docID
	doc    *crdt.Doc
	stored []crdt.Dot             // dots indexed in the store for this document
	digest crdt.Digest            // digest of the stored bytes (zero if absent)
	tomb   bool                   // the store's tombstone index lists it
	stale  bool                   // changed since the dot index last looked at it
	terms  map[string]crdt.Digest // digest terms of registers flushed while cached
	base   int                    // bytes of the stored base record (0: none)
	deltas int                    // delta records stored after the base
	dbytes int                    // their bytes
	dirty  bool                   // changed since the last Ready
	pinned bool                   // flushed by a Ready not yet advanced: the store may lag
	elem   *list.Element

	hist       []HistoryEntry // writes received since the last Ready (Config.History > 0)
	histN      uint64         // history entries stored so far
	histR      uint64         // history records stored so far (the ring's cursor)
	histLoaded bool           // histN read from the store
}

// docCache keeps recently used documents decoded; dirty ones stay until
// flushed and advanced.
type docCache struct {
	max     int
	entries map[docID]*docEntry
	lru     *list.List // front: most recent
}

func newDocCache(max int) *docCache {
	return &docCache{max: max, entries: map[docID]*docEntry{}, lru: list.New()}
}

func (c *docCache) get(id docID) *docEntry {
	e := c.entries[id]
	if e != nil {
		c.lru.MoveToFront(e.elem)
	}
	return e
}

func (c *docCache) put(e *docEntry) {
	e.elem = c.lru.PushFront(e)
	c.entries[e.id] = e
}

func (c *docCache) touch(e *docEntry) {
	if e.elem != nil {
		c.lru.MoveToFront(e.elem)
	}
}

func (c *docCache) evict(forget func(*docEntry)) {
	for el := c.lru.Back(); el != nil && len(c.entries) > c.max; {
		prev := el.Prev()
		e := el.Value.(*docEntry)
		if !e.dirty && !e.pinned {
			forget(e)
			c.lru.Remove(el)
			delete(c.entries, e.id)
		}
		el = prev
	}
}

// drop forgets every cached document (after the store changed behind the
// replica's back, e.g. in tests that inject corruption).
func (c *docCache) drop() {
	c.entries = map[docID]*docEntry{}
	c.lru.Init()
}

// load returns the document, from the cache or the store.
func (r *Replica) load(dt, name string) (*docEntry, error) {
	id := docID{dt, name}
	if e := r.cache.get(id); e != nil {
		return e, nil
	}
	raw, err := r.store.Get(docKey(dt, name))
	if err != nil {
		return nil, err
	}
	e := &docEntry{id: id, doc: crdt.NewDoc(dt, name)}
	if raw != nil {
		doc, digest, err := decodeStoredDoc(dt, name, raw)
		if err != nil {
			return nil, err
		}
		e.base = len(raw)
		prefix := append(docKey(dt, name), sepByte)
		var bad error
		err = r.store.Scan(prefix, nil, func(k, v []byte) bool {
			if len(v) < 32 {
				bad = fmt.Errorf("replica: delta record %q is truncated", k)
				return false
			}
			if bad = doc.ApplyPatch(v[32:]); bad != nil {
				return false
			}
			copy(digest[:], v)
			e.deltas++
			e.dbytes += len(v)
			return true
		})
		if err == nil {
			err = bad
		}
		if err != nil {
			return nil, fmt.Errorf("replica: stored %s %q: %w", dt, name, err)
		}
		e.doc, e.digest = doc, digest
		e.stored = doc.Dots()
		e.tomb = hasRowTombstone(doc)
	}
	e.doc.Track()
	r.cache.put(e)
	return e, nil
}

// decodeStoredDoc parses a stored document record: digest, then document.
func decodeStoredDoc(dt, name string, raw []byte) (*crdt.Doc, crdt.Digest, error) {
	var digest crdt.Digest
	if len(raw) < 32 {
		return nil, digest, fmt.Errorf("replica: stored %s %q is truncated", dt, name)
	}
	copy(digest[:], raw)
	doc, err := crdt.DecodeDoc(raw[32:])
	if err != nil {
		return nil, digest, fmt.Errorf("replica: stored %s %q: %w", dt, name, err)
	}
	if doc.Doctype != dt || doc.Name != name {
		return nil, digest, fmt.Errorf("replica: stored %s %q holds %s %q", dt, name, doc.Doctype, doc.Name)
	}
	return doc, digest, nil
}

func (r *Replica) markDirty(e *docEntry) {
	if !e.dirty {
		e.dirty = true
		r.dirty[e.id] = e
	}
}

// bucketSet is a doctype's bucket digests.
type bucketSet struct {
	d     [crdt.Buckets]crdt.Digest
	dirty map[int]bool
}

func (r *Replica) bucketsFor(dt string) (*bucketSet, error) {
	if b := r.buckets[dt]; b != nil {
		return b, nil
	}
	b := &bucketSet{dirty: map[int]bool{}}
	prefix := bucketPrefix(dt)
	var bad error
	err := r.store.Scan(prefix, nil, func(k, v []byte) bool {
		if len(k) != len(prefix)+1 || len(v) != 32 {
			bad = fmt.Errorf("replica: corrupt bucket digest %q", k)
			return false
		}
		copy(b.d[k[len(prefix)]][:], v)
		return true
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return nil, err
	}
	r.buckets[dt] = b
	return b, nil
}

// flush turns everything changed since the last Ready into store writes.
func (r *Replica) flush() ([]Write, error) {
	// Writes in order; a key written twice keeps its last write (below).
	var ws []Write
	put := func(k, v []byte) { ws = append(ws, Write{Key: k, Value: v}) }
	del := func(k []byte) { ws = append(ws, Write{Key: k, Delete: true}) }
	for _, k := range r.sweepDeletes {
		del(k)
	}
	entries := make([]*docEntry, 0, len(r.dirty))
	for _, e := range r.dirty {
		entries = append(entries, e)
	}
	sort.Slice(entries, func(i, j int) bool {
		a, b := entries[i].id, entries[j].id
		if a.dt != b.dt {
			return a.dt < b.dt
		}
		return a.name < b.name
	})
	// Per document, the work that touches nothing shared (register digests,
	// the encoded record) runs through Config.Parallel; its results are
	// then applied in order, so the writes are the same either way.
	outs := make([]docFlush, len(entries))
	r.parallel(len(entries), func(i int) { outs[i] = flushDoc(entries[i]) })
	for i, e := range entries {
		id, out := e.id, &outs[i]
		if out.err != nil {
			return nil, out.err
		}
		if err := r.flushHistory(e, put); err != nil {
			return nil, err
		}
		ws = append(ws, out.writes...)
		if out.digest != e.digest {
			b, err := r.bucketsFor(id.dt)
			if err != nil {
				return nil, err
			}
			k := crdt.BucketOf(id.name)
			b.d[k].Xor(crdt.DocTerm(id.name, e.digest))
			b.d[k].Xor(crdt.DocTerm(id.name, out.digest))
			b.dirty[k] = true
			e.digest = out.digest
		}
		if out.touched && !e.stale {
			// The dot index catches up lazily (refreshIndex): a document
			// edited many times between serves is indexed once.
			e.stale = true
			r.stale[id] = e
		}
		e.dirty = false
		e.pinned = true
		r.inflight = append(r.inflight, e)
		delete(r.dirty, id)
	}
	// Headers of the batches applied this round. One whose writes are all
	// dead on arrival is removed again by sweepHeaders.
	for id, h := range r.newBatches {
		if br, stored := r.index.batchOf(id.dt, id.at); stored {
			// Another part of a batch already stored: keep the union of
			// the trees so every part held can be proved when served.
			if br.first != h.First || br.last != h.Last || h.Tree.Leaves == 0 {
				continue
			}
			raw, err := r.store.Get(batchKey(id.dt, id.at.Site, h.First, h.Last))
			if err != nil {
				return nil, err
			}
			if raw == nil {
				continue
			}
			old, err := crdt.DecodeHeader(raw)
			if err != nil {
				return nil, err
			}
			if !old.Tree.Merge(h.Tree) {
				continue
			}
			if raw, err = crdt.EncodeHeader(old); err != nil {
				return nil, err
			}
			put(batchKey(id.dt, id.at.Site, h.First, h.Last), raw)
			continue
		}
		raw, err := crdt.EncodeHeader(h)
		if err != nil {
			return nil, err
		}
		put(batchKey(id.dt, id.at.Site, h.First, h.Last), raw)
		r.index.addBatch(id.dt, id.at.Site, h.First, h.Last)
	}
	for dt, sites := range r.vvDirty {
		for s := range sites {
			put(vvKey(dt, s), encodeStoredSeen(r.vv[dt][s]))
		}
	}
	for dt, b := range r.buckets {
		for k := range b.dirty {
			put(bucketKey(dt, k), append([]byte(nil), b.d[k][:]...))
		}
		b.dirty = map[int]bool{}
	}
	for _, p := range r.newPeers {
		put(peerKey(p), nil)
	}
	for _, p := range r.forgotten {
		del(peerKey(p))
	}
	if len(ws) > 0 {
		// The clock is persisted ahead of itself: a restart resumes after
		// the reservation, so one write covers many Readies.
		if last := r.clock.Last(); last >= r.hlcReserved {
			r.hlcReserved = crdt.MakeHLC(last.Physical()+hlcReserveMs, 0)
			put(metaKey(metaHLC), binary.BigEndian.AppendUint64(nil, uint64(r.hlcReserved)))
		}
		if !r.formatWritten {
			put(metaKey(metaVers), []byte{formatVersion})
			r.formatWritten = true
		}
	}
	sort.SliceStable(ws, func(i, j int) bool { return bytes.Compare(ws[i].Key, ws[j].Key) < 0 })
	out := ws[:0]
	for i, w := range ws {
		if i+1 < len(ws) && bytes.Equal(ws[i+1].Key, w.Key) {
			continue // a later write of the same key wins
		}
		out = append(out, w)
	}
	return out, nil
}

// docFlush is what flushing one document produced.
type docFlush struct {
	writes  []Write
	digest  crdt.Digest // the document's new digest
	touched bool        // a register changed
	err     error
}

// flushDoc turns a dirty document's changes into its store writes. It
// reads and updates only the entry itself, so documents can be flushed at
// once on several cores.
func flushDoc(e *docEntry) (out docFlush) {
	id := e.id
	put := func(k, v []byte) { out.writes = append(out.writes, Write{Key: k, Value: v}) }
	del := func(k []byte) { out.writes = append(out.writes, Write{Key: k, Delete: true}) }
	// The journal says which registers changed: rehash just those (the
	// digest is the XOR of register terms), and their edits are the
	// candidates for the dot index.
	digest := e.digest
	var touched []string
	removals := false
	var th crdt.TermHasher
	for _, je := range e.doc.Journal() {
		key, before := je.Key, je.Before
		cur := e.doc.Register(key)
		if crdt.SameWrites(before, cur) {
			continue
		}
		touched = append(touched, key)
		old, ok := e.terms[key]
		if !ok {
			old = th.Term(id.name, key, before)
		}
		term := th.Term(id.name, key, cur)
		digest.Xor(old)
		digest.Xor(term)
		// A register edited again is not rehashed twice. A new register
		// (an Item's create writes dozens) is hashed again only if it is
		// edited later; a cached term, though, must always stay current.
		if ok || before != nil {
			if e.terms == nil {
				e.terms = map[string]crdt.Digest{}
			}
			e.terms[key] = term
		}
		removals = removals || hasRemoval(before) || hasRemoval(cur)
	}
	e.doc.ResetJournal()
	sort.Strings(touched)
	out.digest, out.touched = digest, len(touched) > 0
	switch {
	case len(touched) == 0:
	case e.doc.Empty():
		del(docKey(id.dt, id.name))
		for n := 1; n <= e.deltas; n++ {
			del(deltaKey(id.dt, id.name, n))
		}
		e.base, e.deltas, e.dbytes = 0, 0, 0
	default:
		patch := crdt.EncodePatch(e.doc, touched)
		if e.base > 0 && e.deltas < maxDeltas && e.dbytes+len(patch) < e.base {
			// A small change: one small record, not the whole document.
			e.deltas++
			e.dbytes += 32 + len(patch)
			put(deltaKey(id.dt, id.name, e.deltas), append(digest[:len(digest):len(digest)], patch...))
			break
		}
		raw, err := crdt.EncodeDoc(e.doc)
		if err != nil {
			out.err = err
			return out
		}
		rec := make([]byte, 0, 32+len(raw))
		rec = append(append(rec, digest[:]...), raw...)
		put(docKey(id.dt, id.name), rec)
		for n := 1; n <= e.deltas; n++ {
			del(deltaKey(id.dt, id.name, n))
		}
		e.base, e.deltas, e.dbytes = len(rec), 0, 0
	}
	// Only a change involving row removals can start or end a tombstone.
	if removals || e.tomb {
		if t := hasRowTombstone(e.doc); t != e.tomb {
			if t {
				put(tombKey(id.dt, id.name), nil)
			} else {
				del(tombKey(id.dt, id.name))
			}
			e.tomb = t
		}
	}
	return out
}

func hasRemoval(sibs []crdt.Sibling) bool {
	for _, s := range sibs {
		if s.Value.Kind == crdt.KindRemoved {
			return true
		}
	}
	return false
}

// refreshIndex brings the dot index up to date with the documents changed
// since it last looked: it must run before anything reads the index.
func (r *Replica) refreshIndex() {
	for id, e := range r.stale {
		r.indexDoc(e)
		delete(r.stale, id)
	}
}

func (r *Replica) indexDoc(e *docEntry) {
	cur := e.doc.Dots()
	removed, added := diffDots(e.stored, cur)
	for _, d := range removed {
		r.index.remove(e.id.dt, d)
	}
	for _, d := range added {
		r.index.add(e.id.dt, d, e.id.name)
	}
	e.stored = cur
	e.stale = false
}

// hlcReserveMs is how far ahead of the clock its persisted value runs.
const hlcReserveMs = 10_000

// maxDeltas bounds the delta records of a document before they are folded
// into its base record, which bounds the reads of loading it.
const maxDeltas = 16

// diffDots compares two sorted dot lists.
func diffDots(old, cur []crdt.Dot) (removed, added []crdt.Dot) {
	i, j := 0, 0
	for i < len(old) || j < len(cur) {
		switch {
		case j == len(cur) || (i < len(old) && old[i].Less(cur[j])):
			removed = append(removed, old[i])
			i++
		case i == len(old) || cur[j].Less(old[i]):
			added = append(added, cur[j])
			j++
		default:
			i++
			j++
		}
	}
	return removed, added
}

func encodeStoredSeen(s *crdt.Seen) []byte {
	b := binary.AppendUvarint(nil, s.Max)
	for _, iv := range s.Extra {
		b = binary.AppendUvarint(b, iv.Lo)
		b = binary.AppendUvarint(b, iv.Hi)
	}
	return b
}

func decodeStoredSeen(b []byte) (*crdt.Seen, error) {
	var vals []uint64
	for len(b) > 0 {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, fmt.Errorf("replica: corrupt version vector entry")
		}
		vals = append(vals, v)
		b = b[n:]
	}
	if len(vals) == 0 {
		return nil, fmt.Errorf("replica: empty version vector entry")
	}
	s, err := decodeSeen(vals[0], vals[1:])
	if err != nil {
		return nil, fmt.Errorf("replica: corrupt version vector entry: %v", err)
	}
	return s, nil
}
