package replica

import (
	"meridian/crdt"
)

// Tombstones. A removed child-table row leaves null writes behind so that
// replicas which have not seen the removal yet learn of it. Once every known
// consumer of the doctype has acknowledged those writes (its version vector,
// reported in anti-entropy, covers them) and this replica has delivered
// everything any consumer reported, no write the tombstone overwrote can
// still arrive, and the row is forgotten.
//
// Deleted documents keep their life write (a few dozen bytes): the causal
// length must survive so that a later re-create on any site, including one
// that joins later, continues from it rather than restarting at 1.

// maxCollectPerRound bounds the work of one collection round.
const maxCollectPerRound = 1024

func hasRowTombstone(d *crdt.Doc) bool { return d.HasRemovals() && len(d.RowTombstones()) > 0 }

// collectTombstones runs one collection round of row tombstones and
// unneeded batch headers.
func (r *Replica) collectTombstones() {
	r.sweepHeaders()
	ackers := map[string][]crdt.VersionVector{} // doctype → consumer acks, nil if incomplete
	ready := func(dt string) []crdt.VersionVector {
		if acks, ok := ackers[dt]; ok {
			return acks
		}
		var acks []crdt.VersionVector
		for c := range r.consumers {
			if !r.readable(c, dt) {
				continue
			}
			p := r.peers[c]
			if p == nil || p.acks[dt] == nil || !r.vvFor(dt).Dominates(p.acks[dt]) {
				ackers[dt] = nil
				return nil
			}
			acks = append(acks, p.acks[dt])
		}
		if acks == nil {
			acks = []crdt.VersionVector{}
		}
		ackers[dt] = acks
		return acks
	}
	var ids []docID
	err := r.store.Scan(tombPrefix(), nil, func(k, _ []byte) bool {
		dt, name, ok := split2(k[2:])
		if ok {
			ids = append(ids, docID{dt, name})
		}
		return len(ids) < maxCollectPerRound
	})
	if err != nil {
		r.err = err
		return
	}
	collected := map[string]int{}
	for _, id := range ids {
		acks := ready(id.dt)
		if acks == nil {
			continue
		}
		e, err := r.load(id.dt, id.name)
		if err != nil {
			r.err = err
			return
		}
		vv := r.vvFor(id.dt)
		for _, t := range e.doc.RowTombstones() {
			if !coveredByAll(t, acks) || !coversCtx(vv, t.Ctx) {
				continue
			}
			e.doc.DropRow(t.Table, t.Row)
			r.markDirty(e)
			collected[id.dt]++
		}
	}
	for dt, n := range collected {
		r.event(Event{Kind: EventCollected, Doctype: dt, Count: n})
	}
}

func coveredByAll(t crdt.RowTombstone, acks []crdt.VersionVector) bool {
	for _, a := range acks {
		for _, d := range t.Dots {
			if !a.Has(d) {
				return false
			}
		}
	}
	return true
}

// coversCtx reports whether every write the tombstone overwrote has been
// delivered here, so none of them can arrive later and resurrect the row.
func coversCtx(vv crdt.VersionVector, ctx crdt.Context) bool {
	for _, d := range ctx {
		if s := vv[d.Site]; s == nil || !s.HasAll(1, d.Seq) {
			return false
		}
	}
	return true
}

// ForgetPeer removes a peer from the known consumers, for a site that has
// left the mesh for good: tombstones no longer wait for its acknowledgement.
func (r *Replica) ForgetPeer(id crdt.SiteID) {
	delete(r.consumers, id)
	delete(r.peers, id)
	r.peerList = nil
	r.forgotten = append(r.forgotten, id)
}

// sweepHeaders removes stored batch headers none of whose writes is live
// any more. A header a pending flush needs again is written again by it.
func (r *Replica) sweepHeaders() {
	r.refreshIndex()
	for k, bs := range r.index.batches {
		for _, b := range append([]batchRange(nil), bs...) {
			if !r.index.anyLive(k.dt, k.site, b.first, b.last) {
				r.index.removeBatch(k.dt, k.site, b.first)
				r.sweepDeletes = append(r.sweepDeletes, batchKey(k.dt, k.site, b.first, b.last))
			}
		}
	}
}
