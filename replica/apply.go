package replica

import (
	"errors"
	"fmt"

	"meridian/crdt"
)

// Step processes a message from a peer. m.From must have been
// authenticated by the transport. A rejected batch is reported as an
// EventRejected and leaves the state unchanged; the error says why.
func (r *Replica) Step(m Message) error {
	if m.From == "" || m.From == r.self {
		return fmt.Errorf("%w: message without a valid sender", ErrBadMessage)
	}
	switch m.Type {
	case MsgPush:
		var errs []error
		for _, b := range m.Batches {
			if err := r.receive(&waitingBatch{from: m.From, batch: b}); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	case MsgServe:
		return r.receiveServe(m)
	case MsgPull:
		return r.servePull(m)
	case MsgSync:
		return r.onSync(m)
	case MsgVV:
		return r.onVV(m)
	case MsgDocs:
		return r.receiveDocs(m)
	}
	return fmt.Errorf("%w: unknown type %v", ErrBadMessage, m.Type)
}

// verify checks a batch's origin, write right and signature and returns
// the header to keep. Verified roots are cached: relays and anti-entropy
// deliver the same batch many times.
func (r *Replica) verify(from crdt.SiteID, b *crdt.Batch) (*crdt.Header, error) {
	reject := func(err error) (*crdt.Header, error) {
		r.event(Event{Kind: EventRejected, Peer: from, Origin: b.Origin, Doctype: b.Doctype, Err: err})
		return nil, err
	}
	if r.cfg.Accept != nil {
		if err := r.cfg.Accept(b.Origin, b.Doctype, b.Version); err != nil {
			switch {
			case errors.Is(err, ErrWait):
				return nil, err
			case errors.Is(err, ErrFlag):
				r.event(Event{Kind: EventFlagged, Peer: from, Origin: b.Origin, Doctype: b.Doctype, Err: err})
			default:
				return reject(err)
			}
		}
	}
	if err := b.Check(); err != nil {
		return reject(err)
	}
	if crdt.SkipsIntegrity(r.cfg.Verifier) {
		return &crdt.Header{First: b.First, Last: b.Last, HLC: b.HLC, Deps: b.Deps, Sig: b.Sig}, nil
	}
	root, tree, err := b.TreeWith(r.cfg.Parallel)
	if err != nil {
		return reject(err)
	}
	if !r.verified[string(root)] {
		if err := r.cfg.Verifier.Verify(b.Origin, root, b.Sig); err != nil {
			return reject(err)
		}
		if len(r.verified) >= 1<<16 {
			r.verified = map[string]bool{}
		}
		r.verified[string(root)] = true
	}
	return &crdt.Header{First: b.First, Last: b.Last, HLC: b.HLC, Deps: b.Deps, Tree: tree, Sig: b.Sig}, nil
}

// receive handles one pushed batch: verify, then hold, buffer or apply.
func (r *Replica) receive(w *waitingBatch) error {
	b := w.batch
	if r.vvFor(b.Doctype).Get(b.Origin).HasAll(b.First, b.Last) {
		return nil // already delivered
	}
	h, err := r.verify(w.from, b)
	if errors.Is(err, ErrWait) {
		w.auth = true
		r.event(Event{Kind: EventWaiting, Peer: w.from, Origin: b.Origin, Doctype: b.Doctype, Err: err})
		r.waiting = append(r.waiting, w)
		return nil
	}
	if err != nil {
		return err
	}
	if r.tooFarAhead(b.HLC) {
		r.wait(w, true)
		return nil
	}
	if missing := r.missingDeps(b); len(missing) > 0 {
		r.wait(w, false)
		r.pullGap(w.from, b.Doctype, missing)
		return nil
	}
	r.applyBatch(b, h)
	if b.Proof == nil {
		r.markVV(b.Doctype, b.Origin, b.First, b.Last)
	}
	// A partial batch (some writes left out) is applied but its range is
	// not marked delivered: anti-entropy fetches the rest.
	r.retryWaiting()
	return nil
}

func (r *Replica) tooFarAhead(h crdt.HLC) bool {
	return h.Physical() > r.now+r.cfg.MaxClockSkewMs
}

// missingDeps lists the dependencies of b not yet delivered.
func (r *Replica) missingDeps(b *crdt.Batch) []crdt.Dot {
	vv := r.vvFor(b.Doctype)
	var out []crdt.Dot
	for _, d := range b.Deps {
		if !vv.Has(d) {
			out = append(out, d)
		}
	}
	return out
}

// applyBatch merges a verified batch's writes into state. Writes of dots
// already delivered are skipped: their effect is already here.
func (r *Replica) applyBatch(b *crdt.Batch, h *crdt.Header) { r.applyWrites(b, h, false) }

// applyWrites merges a verified batch; whole documents (MsgDocs) are merged
// entire, even writes of dots delivered before: a filtered peer marked
// their ranges delivered without receiving them.
func (r *Replica) applyWrites(b *crdt.Batch, h *crdt.Header, whole bool) {
	vv := r.vvFor(b.Doctype)
	fresh := func(d crdt.Dot) bool { return whole || !vv.Has(d) }
	for _, d := range b.Docs {
		e, err := r.load(b.Doctype, d.Name)
		if err != nil {
			r.err = err
			return
		}
		sel := d.Select(func(x crdt.Dot) bool { return fresh(x) && (r.cfg.History <= 0 || !e.doc.HasDot(x)) })
		if r.cfg.History > 0 {
			r.noteHistory(e, sel)
		}
		if e.doc.Merge(sel) {
			r.markDirty(e)
			r.changes[e.id] = true
		}
	}
	r.noteBatch(b.Doctype, b.Origin, b.First, b.Last, h)
	r.clock.Observe(b.HLC, r.now)
}

// wait keeps a batch until its dependencies arrive or the clock catches
// up, dropping the oldest waiting batch when the buffer is full.
func (r *Replica) wait(w *waitingBatch, held bool) {
	w.held = held
	kind := EventBuffered
	if held {
		kind = EventHeld
	}
	b := w.batch
	var err error
	if held {
		err = fmt.Errorf("replica: batch of %s from %s is timestamped %s, more than %d ms ahead of the local clock; held until the clock catches up",
			b.Doctype, b.Origin, b.HLC, r.cfg.MaxClockSkewMs)
	}
	r.event(Event{Kind: kind, Peer: w.from, Origin: b.Origin, Doctype: b.Doctype, Err: err})
	if len(r.waiting) >= r.cfg.MaxBuffered {
		old := r.waiting[0]
		r.waiting = r.waiting[1:]
		r.event(Event{Kind: EventDropped, Peer: old.from, Origin: old.batch.Origin, Doctype: old.batch.Doctype})
	}
	r.waiting = append(r.waiting, w)
}

// retryWaiting applies buffered batches whose dependencies have arrived,
// until no more can go.
func (r *Replica) retryWaiting() {
	for progress := true; progress; {
		progress = false
		for i := 0; i < len(r.waiting); i++ {
			w := r.waiting[i]
			if w.held || w.auth { // clock skew: releaseHeld; authorization: Recheck
				continue
			}
			b := w.batch
			if r.vvFor(b.Doctype).Get(b.Origin).HasAll(b.First, b.Last) {
				r.waiting = append(r.waiting[:i], r.waiting[i+1:]...)
				i--
				continue
			}
			if len(r.missingDeps(b)) > 0 {
				continue
			}
			r.waiting = append(r.waiting[:i], r.waiting[i+1:]...)
			i--
			if w.covers != nil {
				r.applyServe(w)
			} else {
				h, err := r.verify(w.from, b)
				if errors.Is(err, ErrWait) {
					w.auth = true
					r.waiting = append(r.waiting, w) // kept until Recheck
					continue
				}
				if err != nil {
					continue
				}
				r.applyBatch(b, h)
				if b.Proof == nil {
					r.markVV(b.Doctype, b.Origin, b.First, b.Last)
				}
			}
			progress = true
		}
	}
}

// releaseHeld re-examines batches held for clock skew.
func (r *Replica) releaseHeld() {
	var release []*waitingBatch
	kept := r.waiting[:0]
	for _, w := range r.waiting {
		if w.held && !r.heldBack(w) {
			release = append(release, w)
			continue
		}
		kept = append(kept, w)
	}
	r.waiting = kept
	for _, w := range release {
		w.held = false
		if w.covers != nil {
			r.applyServe(w)
			r.retryWaiting()
		} else {
			_ = r.receive(w)
		}
	}
}

func (r *Replica) heldBack(w *waitingBatch) bool {
	if w.covers != nil {
		for _, b := range w.served {
			if r.tooFarAhead(b.HLC) {
				return true
			}
		}
		return false
	}
	return r.tooFarAhead(w.batch.HLC)
}

// receiveServe handles writes served from a peer's state with the ranges
// they cover. Every write must lie in a covered range.
func (r *Replica) receiveServe(m Message) error {
	if m.Doctype == "" {
		return fmt.Errorf("%w: serve without a doctype", ErrBadMessage)
	}
	for _, b := range m.Batches {
		if b.Doctype != m.Doctype {
			return r.rejectMsg(m, fmt.Errorf("%w: serve of %s carries a batch of %s", ErrBadMessage, m.Doctype, b.Doctype))
		}
		for _, d := range b.Docs {
			for i := range d.Regs {
				for _, s := range d.Regs[i].Sibs {
					if !covered(m.Covers, s.Dot) {
						return r.rejectMsg(m, fmt.Errorf("%w: served write %v lies outside the ranges the message covers", ErrBadMessage, s.Dot))
					}
				}
			}
		}
	}
	w := &waitingBatch{from: m.From, covers: m.Covers, served: m.Batches, doctype: m.Doctype}
	for _, b := range m.Batches {
		if r.tooFarAhead(b.HLC) {
			w.held = true
			w.batch = b
			r.wait(w, true)
			return nil
		}
	}
	r.applyServe(w)
	r.retryWaiting()
	return nil
}

// receiveDocs applies whole documents sent to a filtered peer.
func (r *Replica) receiveDocs(m Message) error {
	for _, b := range m.Batches {
		if b.Doctype != m.Doctype {
			return r.rejectMsg(m, fmt.Errorf("%w: docs of %s carry a batch of %s", ErrBadMessage, m.Doctype, b.Doctype))
		}
		h, err := r.verify(m.From, b)
		if err != nil {
			continue
		}
		if r.tooFarAhead(b.HLC) {
			continue // whole documents are sent again with their next change
		}
		r.applyWrites(b, h, true)
	}
	return nil
}

func (r *Replica) rejectMsg(m Message, err error) error {
	r.event(Event{Kind: EventRejected, Peer: m.From, Doctype: m.Doctype, Err: err})
	return err
}

func covered(rs []crdt.Range, d crdt.Dot) bool {
	for _, rg := range rs {
		if rg.Site == d.Site && d.Seq >= rg.Lo && d.Seq <= rg.Hi {
			return true
		}
	}
	return false
}

// applyServe merges served writes and marks the covered ranges delivered.
// A served batch that fails verification is skipped, and so are the dots
// it would have covered: they stay undelivered and are fetched elsewhere.
func (r *Replica) applyServe(w *waitingBatch) {
	covers := w.covers
	for _, b := range w.served {
		h, err := r.verify(w.from, b)
		if err != nil { // refused or not authorized yet: fetched again later
			covers = uncover(covers, b.Origin, b.First, b.Last)
			continue
		}
		r.applyBatch(b, h)
	}
	for _, c := range covers {
		r.markVV(w.doctype, c.Site, c.Lo, c.Hi)
	}
}

// uncover removes [lo, hi] of site from the ranges.
func uncover(rs []crdt.Range, site crdt.SiteID, lo, hi uint64) []crdt.Range {
	var out []crdt.Range
	for _, rg := range rs {
		if rg.Site != site || rg.Hi < lo || rg.Lo > hi {
			out = append(out, rg)
			continue
		}
		if rg.Lo < lo {
			out = append(out, crdt.Range{Site: site, Lo: rg.Lo, Hi: lo - 1})
		}
		if rg.Hi > hi {
			out = append(out, crdt.Range{Site: site, Lo: hi + 1, Hi: rg.Hi})
		}
	}
	return out
}
