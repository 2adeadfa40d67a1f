package replica

import (
	"crypto/sha256"
	"fmt"
	"sort"
	"strconv"

	"meridian/crdt"
)

// Anti-entropy. A sends MsgSync (per doctype: a hash of its version vector
// and its state digest). B answers MsgVV with its full version vector for
// every doctype whose hash differs. A then pulls what it lacks (MsgPull) and
// B serves it (MsgServe) from state; B fetches what it lacks from A in its
// own round. Ranges are served
// from the dot index, never from a log: only writes still live are sent,
// with the ranges they cover, so overwritten history costs nothing.

// syncRound starts anti-entropy with up to SyncFanout connected peers.
func (r *Replica) syncRound() {
	peers := r.Peers()
	if len(peers) > r.cfg.SyncFanout {
		r.cfg.Rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
		peers = peers[:r.cfg.SyncFanout]
	}
	for _, p := range peers {
		r.sendSync(p)
	}
}

// readable reports whether peer may receive doctype dt.
// partial reports whether this site holds only part of a doctype (its own
// grant carries a row condition): it then serves only its own writes.
func (r *Replica) partial(dt string) bool { return r.filterFor(r.self, dt) != nil }

func (r *Replica) readable(peer crdt.SiteID, dt string) bool {
	return r.cfg.CanRead == nil || r.cfg.CanRead(peer, dt)
}

func (r *Replica) sendSync(to crdt.SiteID) {
	m := Message{Type: MsgSync, To: to}
	for _, dt := range r.Doctypes() {
		if !r.readable(to, dt) {
			continue
		}
		var st crdt.Digest // zero: not comparable now
		if r.settled(dt) {
			var err error
			if st, err = r.StateDigest(dt); err != nil {
				r.err = err
				return
			}
		}
		m.Sums = append(m.Sums, Summary{Doctype: dt, VV: r.vvDigest(dt), State: st})
	}
	r.outbox = append(r.outbox, m)
}

// vvDigest hashes the durable version vector of a doctype.
func (r *Replica) vvDigest(dt string) crdt.Digest {
	if h := r.vvHash[dt]; h != nil {
		return *h
	}
	// The hash of the vector's canonical CBOR, as MsgVV would carry it.
	buf, err := crdt.Marshal(encodeVV(r.durableVV[dt]))
	if err != nil {
		panic(err) // a vector of strings and integers always encodes
	}
	h := crdt.Digest(sha256.Sum256(buf))
	r.vvHash[dt] = &h
	return h
}

// onSync answers a peer's digests with full version vectors where they
// differ.
func (r *Replica) onSync(m Message) error {
	theirs := map[string]Summary{}
	for _, s := range m.Sums {
		theirs[s.Doctype] = s
	}
	dts := map[string]bool{}
	for _, dt := range r.Doctypes() {
		dts[dt] = true
	}
	for dt := range theirs {
		dts[dt] = true
	}
	reply := Message{Type: MsgVV, To: m.From}
	for _, dt := range sortedSet(dts) {
		if !r.readable(m.From, dt) {
			continue
		}
		s, ok := theirs[dt]
		mine := r.vvDigest(dt)
		if ok && s.VV == mine {
			st, err := r.StateDigest(dt)
			if err != nil {
				return err
			}
			filtered := r.filterFor(m.From, dt) != nil || r.partial(dt)
			if !filtered && s.State != (crdt.Digest{}) && r.settled(dt) && st != s.State {
				r.event(Event{Kind: EventDivergence, Peer: m.From, Doctype: dt,
					Err: fmt.Errorf("replica: %s has delivered the same writes of %s but its state digest differs", m.From, dt)})
			}
			continue
		}
		vv := r.durableVV[dt]
		if vv == nil {
			vv = crdt.VersionVector{}
		}
		vv = vv.Clone()
		if r.partial(dt) {
			// This site holds only the documents its grant lets it see,
			// so it offers only its own writes: the covered ranges of
			// others' are not all here to serve.
			vv = crdt.VersionVector{}
			if own := r.durableVV[dt][r.self]; own != nil {
				vv[r.self] = own.Clone()
			}
		}
		reply.VVs = append(reply.VVs, DoctypeVV{Doctype: dt, VV: vv})
	}
	if len(reply.VVs) > 0 {
		r.outbox = append(r.outbox, reply)
	}
	return nil
}

// settled reports whether nothing of dt awaits persistence, so that the
// state digest describes exactly the durable version vector.
func (r *Replica) settled(dt string) bool {
	if r.readyPending || len(r.vvDirty[dt]) > 0 {
		return false
	}
	for id := range r.dirty {
		if id.dt == dt {
			return false
		}
	}
	return true
}

// onVV pulls what the peer has and we lack; the peer does the same when
// it syncs with us (both sides sync on connect and every round), so each
// direction is fetched once even when both start a round at the same time.
// The peer's vector is also its acknowledgement, for tombstone collection.
//
// Two rules keep anti-entropy from fetching things twice: a range already
// requested from some peer within the last two sync intervals is not
// requested again (after a heal every reconnected peer offers the same
// ranges), and edits the peer did not yet have at its previous vector are
// left to the push that is probably still in flight — unless the previous
// exchange with the peer is older than two sync intervals (or there was
// none, or the connection is new), when everything missing is fetched.
func (r *Replica) onVV(m Message) error {
	p := r.peers[m.From]
	for _, v := range m.VVs {
		if !r.readable(m.From, v.Doctype) {
			continue
		}
		var prev crdt.VersionVector
		if p != nil {
			if r.now-p.ackAt[v.Doctype] <= 2*r.cfg.SyncIntervalMs {
				prev = p.acks[v.Doctype]
			}
			p.acks[v.Doctype] = v.VV
			p.ackAt[v.Doctype] = r.now
		}
		need := r.vvFor(v.Doctype).Missing(v.VV)
		if prev != nil {
			need = intersectRanges(need, prev)
		}
		need = r.notRequested(v.Doctype, need)
		if len(need) > 0 {
			r.outbox = append(r.outbox, Message{Type: MsgPull, To: m.From, Doctype: v.Doctype, Ranges: need})
		}
	}
	return nil
}

// intersectRanges keeps the parts of rs that vv has delivered.
func intersectRanges(rs []crdt.Range, vv crdt.VersionVector) []crdt.Range {
	var out []crdt.Range
	for _, rg := range rs {
		s := vv[rg.Site]
		if s == nil {
			continue
		}
		for _, iv := range s.Intersect(crdt.Interval{Lo: rg.Lo, Hi: rg.Hi}) {
			out = append(out, crdt.Range{Site: rg.Site, Lo: iv.Lo, Hi: iv.Hi})
		}
	}
	return out
}

// notRequested removes from rs what a recent pull already asked for, and
// records the rest as requested now.
func (r *Replica) notRequested(dt string, rs []crdt.Range) []crdt.Range {
	if r.requested == nil {
		r.requested = map[siteOf]*requested{}
	}
	expiry := 2 * r.cfg.SyncIntervalMs
	var out []crdt.Range
	for _, rg := range rs {
		k := siteOf{dt, rg.Site}
		q := r.requested[k]
		if q == nil || r.now-q.at > expiry {
			q = &requested{at: r.now}
			r.requested[k] = q
		}
		for _, iv := range q.seen.Missing(&crdt.Seen{Max: rg.Hi}) {
			if iv.Hi < rg.Lo {
				continue
			}
			lo := max(iv.Lo, rg.Lo)
			out = append(out, crdt.Range{Site: rg.Site, Lo: lo, Hi: iv.Hi})
			q.seen.Add(lo, iv.Hi)
		}
	}
	return out
}

// servePull answers a pull with the requested ranges we hold durably.
func (r *Replica) servePull(m Message) error {
	if m.Doctype == "" || !r.readable(m.From, m.Doctype) {
		return nil
	}
	ours := r.durableVV[m.Doctype]
	if ours == nil {
		return nil
	}
	var rs []crdt.Range
	for _, rg := range m.Ranges {
		s := ours[rg.Site]
		if s == nil || (rg.Site != r.self && r.partial(m.Doctype)) {
			continue
		}
		// Serve only what we have delivered: intersect with our vector.
		for _, iv := range s.Intersect(crdt.Interval{Lo: rg.Lo, Hi: rg.Hi}) {
			rs = append(rs, crdt.Range{Site: rg.Site, Lo: iv.Lo, Hi: iv.Hi})
		}
	}
	return r.serveRanges(m.From, m.Doctype, rs)
}

// pullGap asks the sender of a buffered batch for the dependencies it lacks.
func (r *Replica) pullGap(from crdt.SiteID, dt string, missing []crdt.Dot) {
	vv := r.vvFor(dt)
	var rs []crdt.Range
	for _, d := range missing {
		// One pull per gap per sync interval: a lost pull is sent again.
		k := dt + "\x00" + string(from) + "\x00" + string(d.Site) + "\x00" + strconv.FormatUint(d.Seq, 10)
		if at, ok := r.pulled[k]; ok && r.now-at < r.cfg.SyncIntervalMs {
			continue
		}
		if len(r.pulled) > 1<<14 {
			r.pulled = map[string]int64{}
		}
		r.pulled[k] = r.now
		for _, iv := range vv.Get(d.Site).Missing(&crdt.Seen{Max: d.Seq}) {
			rs = append(rs, crdt.Range{Site: d.Site, Lo: iv.Lo, Hi: iv.Hi})
		}
	}
	if len(rs) > 0 {
		r.outbox = append(r.outbox, Message{Type: MsgPull, To: from, Doctype: dt, Ranges: rs})
	}
}

// serveChunk is how many dots are gathered before a message's size is
// checked against MaxMessageBytes (fewer for small bounds).
func (r *Replica) serveChunk() int { return max(1, min(256, r.cfg.MaxMessageBytes/16384)) }

type dotRef struct {
	seq   uint64
	first uint64
	last  uint64
	name  string
}

// serveRanges sends the live writes of the ranges to a peer, from durable
// state, split into messages of bounded size. Each message covers a
// contiguous part of a range: the receiver marks it delivered after
// applying the writes.
func (r *Replica) serveRanges(to crdt.SiteID, dt string, ranges []crdt.Range) error {
	r.refreshIndex()
	headers := map[crdt.Dot]*crdt.Header{}
	for _, rg := range ranges {
		cur := Message{Type: MsgServe, To: to, Doctype: dt}
		curSize := cur.Size() // a running total, as batches are added
		lo := rg.Lo
		var refs []dotRef
		var scanErr error
		send := func(hi uint64) {
			cur.Covers = []crdt.Range{{Site: rg.Site, Lo: lo, Hi: hi}}
			r.outbox = append(r.outbox, cur)
			cur = Message{Type: MsgServe, To: to, Doctype: dt}
			curSize = cur.Size()
			lo = hi + 1
		}
		// put adds the writes of part (dots up to hi) to the message,
		// halving part while its writes would overflow one message: large
		// writes go out in more, smaller messages (one dot's writes always
		// fit, as Propose bounds an edit to half a message).
		var put func(part []dotRef, hi uint64, last bool) error
		put = func(part []dotRef, hi uint64, last bool) error {
			batches, err := r.partials(to, dt, rg.Site, part, headers)
			if err != nil {
				return err
			}
			size := batchesSize(batches)
			if len(cur.Batches) > 0 && curSize+size > r.cfg.MaxMessageBytes && len(part) > 0 && part[0].seq > lo {
				send(part[0].seq - 1) // what the message holds goes out first
			}
			if len(part) > 1 && curSize+size > r.cfg.MaxMessageBytes {
				mid := len(part) / 2
				if err := put(part[:mid], part[mid].seq-1, false); err != nil {
					return err
				}
				return put(part[mid:], hi, last)
			}
			cur.Batches = append(cur.Batches, batches...)
			curSize += size
			if lo > hi {
				return nil // everything up to hi went out already
			}
			if curSize >= r.cfg.MaxMessageBytes || last {
				send(hi)
			}
			return nil
		}
		emit := func(hi uint64, last bool) error {
			part := refs
			refs = nil
			return put(part, hi, last)
		}
		r.index.scan(dt, rg.Site, rg.Lo, rg.Hi, func(seq uint64, name string) bool {
			br, ok := r.index.batchOf(dt, crdt.Dot{Site: rg.Site, Seq: seq})
			if !ok {
				scanErr = fmt.Errorf("replica: live write %s:%d of %s has no stored batch", rg.Site, seq, dt)
				return false
			}
			refs = append(refs, dotRef{seq: seq, first: br.first, last: br.last, name: name})
			if len(refs) >= r.serveChunk() {
				if scanErr = emit(seq, false); scanErr != nil {
					return false
				}
			}
			return true
		})
		if scanErr != nil {
			return scanErr
		}
		if err := emit(rg.Hi, true); err != nil {
			return err
		}
	}
	return nil
}

// partials builds partial batches holding the live writes of the given dots.
func (r *Replica) partials(to crdt.SiteID, dt string, site crdt.SiteID, refs []dotRef, headers map[crdt.Dot]*crdt.Header) ([]*crdt.Batch, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	type group struct {
		seqs map[uint64]bool
	}
	byBatch := map[uint64]map[string]*group{}
	lasts := map[uint64]uint64{}
	for _, ref := range refs {
		lasts[ref.first] = ref.last
		m := byBatch[ref.first]
		if m == nil {
			m = map[string]*group{}
			byBatch[ref.first] = m
		}
		g := m[ref.name]
		if g == nil {
			g = &group{seqs: map[uint64]bool{}}
			m[ref.name] = g
		}
		g.seqs[ref.seq] = true
	}
	firsts := make([]uint64, 0, len(byBatch))
	for f := range byBatch {
		firsts = append(firsts, f)
	}
	sort.Slice(firsts, func(i, j int) bool { return firsts[i] < firsts[j] })
	var out []*crdt.Batch
	for _, first := range firsts {
		at := crdt.Dot{Site: site, Seq: first}
		h := headers[at]
		if h == nil {
			raw, err := r.store.Get(batchKey(dt, site, first, lasts[first]))
			if err != nil {
				return nil, err
			}
			if raw == nil {
				return nil, fmt.Errorf("replica: batch header %s %v missing for a live write", dt, at)
			}
			if h, err = crdt.DecodeHeader(raw); err != nil {
				return nil, err
			}
			headers[at] = h
		}
		var docs []*crdt.Doc
		for name, g := range byBatch[first] {
			e, err := r.load(dt, name)
			if err != nil {
				return nil, err
			}
			if f := r.filterFor(to, dt); f != nil && !f(e.doc) {
				continue // the peer may not see this document
			}
			d := e.doc.Select(func(d crdt.Dot) bool { return d.Site == site && g.seqs[d.Seq] })
			if !d.Empty() {
				docs = append(docs, d)
			}
		}
		if len(docs) > 0 {
			b, err := crdt.PartialBatch(site, dt, h, docs)
			if err != nil {
				return nil, err
			}
			out = append(out, b)
		}
	}
	return out, nil
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
