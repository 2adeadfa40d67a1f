package replica

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"

	"meridian/crdt"
)

// Proposal is a local edit of one document.
type Proposal struct {
	Doctype string
	Name    string
	Ops     []crdt.Op
}

// Edit names one edit: its doctype and dot.
type Edit struct {
	Doctype string
	Dot     crdt.Dot
}

func (e Edit) String() string { return e.Doctype + "/" + e.Dot.String() }

// Change names a document whose converged state changed.
type Change struct {
	Doctype string
	Name    string
}

// EventKind classifies what the replica reports to its driver.
type EventKind uint8

const (
	// EventRejected: a batch or message was refused (bad signature, unknown
	// origin, no write right, malformed); nothing of it was applied.
	EventRejected EventKind = iota + 1
	// EventHeld: a batch is timestamped too far ahead of the local clock
	// and waits until the clock catches up.
	EventHeld
	// EventBuffered: a batch waits for writes it depends on; a pull was sent.
	EventBuffered
	// EventDropped: a waiting batch was dropped because the buffer is full;
	// anti-entropy will fetch it again.
	EventDropped
	// EventDivergence: a peer has delivered the same dots but its state
	// digest differs for a doctype.
	EventDivergence
	// EventCollected: tombstones were collected.
	EventCollected
	// EventFlagged: a batch was applied but Accept had something to say
	// (written under a deprecated version).
	EventFlagged
	// EventWaiting: a batch waits for an authorization (Recheck).
	EventWaiting
)

// Errors Accept wraps to steer what happens to a batch.
var (
	// ErrWait keeps a batch until Recheck.
	ErrWait = errors.New("replica: not authorized yet")
	// ErrFlag applies a batch and reports it.
	ErrFlag = errors.New("replica: applied with a warning")
)

// ErrTooLarge refuses a local edit too big to travel in one message.
var ErrTooLarge = errors.New("replica: edit too large")

func (k EventKind) String() string {
	return [...]string{"?", "rejected", "held", "buffered", "dropped", "divergence", "collected", "flagged", "waiting"}[k]
}

// Event is something the driver should log, count or show.
type Event struct {
	Kind    EventKind
	Peer    crdt.SiteID // who sent it
	Origin  crdt.SiteID // whose batch
	Doctype string
	Count   int
	Err     error
}

// Ready is what the driver must do, in this order:
//  1. persist Writes atomically (one transaction), BEFORE anything else;
//  2. send Messages;
//  3. hand Changes (converged document changes) to the bridge;
//  4. log or count Events;
//
// then call Advance.
type Ready struct {
	Writes   []Write
	Messages []Message
	Changes  []Change
	Events   []Event
	// Acked lists the local edits made durable by this Ready.
	Acked []Edit
}

// Replica is the pure replication state machine of one site. It has no
// goroutines, reads no clock and does no IO but through its Store.
// It is not safe for concurrent use.
type Replica struct {
	cfg   Config
	store Store
	self  crdt.SiteID
	clock *crdt.Clock
	now   int64

	vv        map[string]crdt.VersionVector // delivered, in memory
	durableVV map[string]crdt.VersionVector // as of the last Advance
	vvDirty   map[string]map[crdt.SiteID]bool
	vvHash    map[string]*crdt.Digest

	cache *docCache
	dirty map[docID]*docEntry

	pending    []pendingEdit            // local edits not yet sealed, in order
	newBatches map[batchID]*crdt.Header // batches applied this round
	buckets    map[string]*bucketSet

	outbox  []Message
	changes map[docID]bool
	events  []Event

	index *dotIndex
	stale map[docID]*docEntry // documents the index has not caught up with

	peers     map[crdt.SiteID]*peer
	peerList  []crdt.SiteID // sorted connected peers; nil when stale
	consumers map[crdt.SiteID]bool
	newPeers  []crdt.SiteID
	forgotten []crdt.SiteID

	waiting  []*waitingBatch // causal buffer and clock-skew holds
	verified map[string]bool
	lastSync int64
	lastGC   int64
	pulled   map[string]int64
	// requested remembers the ranges pulled recently, per doctype and
	// origin, so that several peers offering them are asked only once.
	requested map[siteOf]*requested

	readyPending  bool
	inflight      []*docEntry                           // flushed by the last Ready, pinned until Advance
	inflightVV    map[string]map[crdt.SiteID]*crdt.Seen // what the last Ready persisted of the vectors
	sweepDeletes  [][]byte                              // batch headers no live write needs any more
	sweepCursor   []byte
	formatWritten bool
	hlcReserved   crdt.HLC // the clock value persisted; restarts resume from it
	err           error
}

type docID struct{ dt, name string }

type batchID struct {
	dt string
	at crdt.Dot // origin and first sequence number
}

type batchRange struct{ first, last uint64 }

type requested struct {
	at   int64     // when the window opened
	seen crdt.Seen // what was requested in it
}

type pendingEdit struct {
	dt    string
	name  string
	dot   crdt.Dot
	hlc   crdt.HLC
	delta *crdt.Doc
	deps  []crdt.Dot
}

type peer struct {
	id        crdt.SiteID
	connected bool
	acks      map[string]crdt.VersionVector // what the peer reported delivered
	ackAt     map[string]int64              // when
}

// waitingBatch is a pushed batch waiting for its dependencies or for the
// clock, or a served message held for the clock (covers set).
type waitingBatch struct {
	from    crdt.SiteID
	batch   *crdt.Batch
	held    bool // held for clock skew rather than dependencies
	auth    bool // waiting for an authorization (Recheck)
	covers  []crdt.Range
	served  []*crdt.Batch
	doctype string
}

// Errors.
var (
	ErrNotReady  = errors.New("replica: Advance called without a Ready")
	ErrBadFormat = errors.New("replica: store was written by an incompatible version")
)

// New opens a replica over store, resuming exactly where the last persisted
// Ready left it.
func New(cfg Config, store Store) (*Replica, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Replica{
		cfg: cfg, store: store, self: cfg.Site,
		vv: map[string]crdt.VersionVector{}, durableVV: map[string]crdt.VersionVector{},
		vvDirty: map[string]map[crdt.SiteID]bool{}, vvHash: map[string]*crdt.Digest{},
		cache: newDocCache(cfg.DocCacheSize), dirty: map[docID]*docEntry{},
		newBatches: map[batchID]*crdt.Header{},
		buckets:    map[string]*bucketSet{}, changes: map[docID]bool{},
		peers: map[crdt.SiteID]*peer{}, consumers: map[crdt.SiteID]bool{}, index: newDotIndex(), stale: map[docID]*docEntry{},
		verified: map[string]bool{}, pulled: map[string]int64{},
	}
	if v, err := store.Get(metaKey(metaVers)); err != nil {
		return nil, err
	} else if v != nil && (len(v) != 1 || v[0] != formatVersion) {
		return nil, fmt.Errorf("%w (format %v, this build reads %d)", ErrBadFormat, v, formatVersion)
	} else {
		r.formatWritten = v != nil
	}
	hlc, err := store.Get(metaKey(metaHLC))
	if err != nil {
		return nil, err
	}
	var last crdt.HLC
	if len(hlc) == 8 {
		last = crdt.HLC(binary.BigEndian.Uint64(hlc))
	}
	r.clock = crdt.NewClock(last)
	r.hlcReserved = last
	err = store.Scan(vvPrefix(), nil, func(k, v []byte) bool {
		dt, site, ok := split2(k[2:])
		if !ok {
			err = fmt.Errorf("replica: corrupt version vector key %q", k)
			return false
		}
		var seen *crdt.Seen
		if seen, err = decodeStoredSeen(v); err != nil {
			return false
		}
		if r.vv[dt] == nil {
			r.vv[dt] = crdt.VersionVector{}
			r.durableVV[dt] = crdt.VersionVector{}
		}
		r.vv[dt][crdt.SiteID(site)] = seen
		r.durableVV[dt][crdt.SiteID(site)] = seen.Clone()
		return true
	})
	if err != nil {
		return nil, err
	}
	if err := r.rebuildIndex(); err != nil {
		return nil, err
	}
	err = store.Scan(peerPrefix(), nil, func(k, _ []byte) bool {
		r.consumers[crdt.SiteID(k[2:])] = true
		return true
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// rebuildIndex reads the stored batch ranges and every stored document's
// live edits into the in-memory dot index.
func (r *Replica) rebuildIndex() error {
	var bad error
	err := r.store.Scan(batchPrefix(), nil, func(k, _ []byte) bool {
		if len(k) < 2+18 {
			bad = fmt.Errorf("replica: corrupt batch header key %q", k)
			return false
		}
		dt, site, ok := split2(k[2 : len(k)-18])
		if !ok {
			bad = fmt.Errorf("replica: corrupt batch header key %q", k)
			return false
		}
		first := binary.BigEndian.Uint64(k[len(k)-17:])
		last := binary.BigEndian.Uint64(k[len(k)-8:])
		r.index.addBatch(dt, crdt.SiteID(site), first, last)
		return true
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return err
	}
	// Documents: a base record followed by its delta records, in key order.
	var cur *crdt.Doc
	finish := func() {
		if cur != nil {
			for _, d := range cur.Dots() {
				r.index.add(cur.Doctype, d, cur.Name)
			}
		}
		cur = nil
	}
	err = r.store.Scan([]byte{pDoc, sepByte}, nil, func(k, v []byte) bool {
		dt, rest, ok := split2(k[2:])
		if !ok {
			bad = fmt.Errorf("replica: corrupt document key %q", k)
			return false
		}
		if name, _, isDelta := strings.Cut(rest, "\x00"); isDelta {
			if cur == nil || cur.Doctype != dt || cur.Name != name || len(v) < 32 {
				bad = fmt.Errorf("replica: delta record %q without its document", k)
				return false
			}
			if err := cur.ApplyPatch(v[32:]); err != nil {
				bad = err
				return false
			}
			return true
		}
		finish()
		doc, _, err := decodeStoredDoc(dt, rest, v)
		if err != nil {
			bad = err
			return false
		}
		cur = doc
		return true
	})
	finish()
	if err == nil {
		err = bad
	}
	return err
}

func split2(b []byte) (string, string, bool) {
	for i, c := range b {
		if c == sepByte {
			return string(b[:i]), string(b[i+1:]), true
		}
	}
	return "", "", false
}

// Site returns this replica's site ID.
func (r *Replica) Site() crdt.SiteID { return r.self }

// Now returns the time of the last Tick.
func (r *Replica) Now() int64 { return r.now }

// Clock returns the last HLC timestamp issued or observed.
func (r *Replica) Clock() crdt.HLC { return r.clock.Last() }

// Propose applies a local edit at once (reads see it immediately) and
// returns its dot. The edit is durable, and may be acknowledged to the
// user, once a Ready containing it has been persisted.
func (r *Replica) Propose(p Proposal) (crdt.Dot, error) {
	if err := crdt.ValidateName("doctype", p.Doctype); err != nil {
		return crdt.Dot{}, err
	}
	if err := crdt.ValidateName("document", p.Name); err != nil {
		return crdt.Dot{}, err
	}
	if n, limit := opsSize(p.Ops), r.cfg.MaxMessageBytes/2; n > limit {
		return crdt.Dot{}, fmt.Errorf("%w: the edit of %s %q is about %d bytes and one edit may be at most %d bytes so that it fits in a message; split it into several edits", ErrTooLarge, p.Doctype, p.Name, n, limit)
	}
	if r.cfg.Accept != nil {
		if err := r.cfg.Accept(r.self, p.Doctype, r.versionOf(p.Doctype)); err != nil && !errors.Is(err, ErrFlag) {
			return crdt.Dot{}, err
		}
	}
	e, err := r.load(p.Doctype, p.Name)
	if err != nil {
		return crdt.Dot{}, err
	}
	vv := r.vvFor(p.Doctype)
	dot := crdt.Dot{Site: r.self, Seq: vv.Get(r.self).Top() + 1}
	hlc := r.clock.Now(r.now)
	// Dependencies: the writes this edit overwrites and the document's
	// current life, so receivers deliver it after them.
	life := e.doc.Register(crdt.LifeKey)
	deps := make([]crdt.Dot, len(life), len(life)+4)
	for i, s := range life {
		deps[i] = s.Dot
	}
	delta, err := e.doc.Write(dot, hlc, p.Ops)
	if err != nil {
		return crdt.Dot{}, err
	}
	r.noteHistory(e, delta)
	for i := range delta.Regs {
		for _, s := range delta.Regs[i].Sibs {
			deps = append(deps, s.Ctx...)
		}
	}
	r.markDirty(e)
	r.markVV(p.Doctype, r.self, dot.Seq, dot.Seq)
	r.pending = append(r.pending, pendingEdit{dt: p.Doctype, name: p.Name, dot: dot, hlc: hlc, delta: delta, deps: deps})
	r.changes[docID{p.Doctype, p.Name}] = true
	return dot, nil
}

// parallel runs f(0) … f(n-1) through Config.Parallel, or in order.
func (r *Replica) parallel(n int, f func(i int)) {
	if r.cfg.Parallel != nil && n > 1 {
		r.cfg.Parallel(n, f)
		return
	}
	for i := 0; i < n; i++ {
		f(i)
	}
}

// opsSize estimates an edit's size on the wire, as batchSize counts it.
func opsSize(ops []crdt.Op) int {
	n := 0
	for i := range ops {
		o := &ops[i]
		n += 48 + len(o.Table) + len(o.Row) + len(o.Field) + len(o.Value.Str)
	}
	return n
}

// Doc returns a copy of a document's replicated state (empty if unknown).
func (r *Replica) Doc(doctype, name string) (*crdt.Doc, error) {
	if err := crdt.ValidateName("doctype", doctype); err != nil {
		return nil, err
	}
	if err := crdt.ValidateName("document", name); err != nil {
		return nil, err
	}
	e, err := r.load(doctype, name)
	if err != nil {
		return nil, err
	}
	return e.doc.Clone(), nil
}

// HasDelivered reports whether an edit has been delivered here.
func (r *Replica) HasDelivered(doctype string, d crdt.Dot) bool {
	v := r.vv[doctype]
	return v != nil && v.Has(d)
}

// Read calls f with a document's current state without copying it; f must
// neither modify nor keep it. It is Doc for hot read-only paths.
func (r *Replica) Read(doctype, name string, f func(d *crdt.Doc)) error {
	if err := crdt.ValidateName("doctype", doctype); err != nil {
		return err
	}
	if err := crdt.ValidateName("document", name); err != nil {
		return err
	}
	e, err := r.load(doctype, name)
	if err != nil {
		return err
	}
	f(e.doc)
	return nil
}

// VersionVector returns a copy of what this replica has delivered of a doctype.
func (r *Replica) VersionVector(doctype string) crdt.VersionVector {
	if v := r.vv[doctype]; v != nil {
		return v.Clone()
	}
	return crdt.VersionVector{}
}

// Doctypes lists the doctypes this replica holds anything of.
func (r *Replica) Doctypes() []string {
	out := make([]string, 0, len(r.vv))
	for dt := range r.vv {
		out = append(out, dt)
	}
	sort.Strings(out)
	return out
}

// StateDigest returns the digest of a doctype's replicated state: equal on
// two replicas exactly when they hold the same writes (up to collected
// tombstones).
func (r *Replica) StateDigest(doctype string) (crdt.Digest, error) {
	b, err := r.bucketsFor(doctype)
	if err != nil {
		return crdt.Digest{}, err
	}
	return crdt.CombineBuckets(&b.d), nil
}

// BucketDigests returns the doctype's per-bucket digests, for narrowing a
// divergence down to documents.
func (r *Replica) BucketDigests(doctype string) ([crdt.Buckets]crdt.Digest, error) {
	b, err := r.bucketsFor(doctype)
	if err != nil {
		return [crdt.Buckets]crdt.Digest{}, err
	}
	return b.d, nil
}

// Names lists the documents of a doctype held in the persisted state, in
// name order, starting after `after`, at most limit (0: all).
func (r *Replica) Names(doctype, after string, limit int) ([]string, error) {
	var out []string
	prefix := docPrefix(doctype)
	var start []byte
	if after != "" {
		start = append(append([]byte(nil), prefix...), after...)
		start = append(start, 0)
	}
	err := r.store.Scan(prefix, start, func(k, _ []byte) bool {
		name := k[len(prefix):]
		if bytes.IndexByte(name, sepByte) >= 0 {
			return true // a delta record
		}
		out = append(out, string(name))
		return limit == 0 || len(out) < limit
	})
	// Documents created since the last Ready are not in the store yet.
	for id, e := range r.dirty {
		if id.dt == doctype && id.name > after && !e.doc.Empty() {
			out = append(out, id.name)
		}
	}
	sort.Strings(out)
	out = dedupSorted(out)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, err
}

func dedupSorted(s []string) []string {
	if len(s) < 2 {
		return s
	}
	out := s[:1]
	for _, x := range s[1:] {
		if x != out[len(out)-1] {
			out = append(out, x)
		}
	}
	return out
}

// Tick advances time to nowMs (Unix milliseconds): the clock's physical
// part, anti-entropy rounds, held batches and tombstone collection all
// follow it.
func (r *Replica) Tick(nowMs int64) {
	if nowMs > r.now {
		r.now = nowMs
	}
	r.releaseHeld()
	if r.now-r.lastSync >= r.cfg.SyncIntervalMs {
		r.lastSync = r.now
		r.syncRound()
	}
	if r.now-r.lastGC >= r.cfg.TombstoneGCIntervalMs {
		r.lastGC = r.now
		r.collectTombstones()
	}
}

// AddPeer tells the replica a peer is connected; it syncs with it at once.
func (r *Replica) AddPeer(id crdt.SiteID) {
	if id == r.self {
		return
	}
	p := r.peers[id]
	if p == nil {
		p = &peer{id: id, acks: map[string]crdt.VersionVector{}, ackAt: map[string]int64{}}
		r.peers[id] = p
	}
	if !r.consumers[id] {
		r.consumers[id] = true
		r.newPeers = append(r.newPeers, id)
	}
	if !p.connected {
		p.connected = true
		p.ackAt = map[string]int64{} // a new connection fetches everything missing at once
		r.peerList = nil
		r.sendSync(id)
	}
}

// RemovePeer tells the replica a peer is gone; nothing is pushed to it
// until it is added again.
func (r *Replica) RemovePeer(id crdt.SiteID) {
	if p := r.peers[id]; p != nil && p.connected {
		p.connected = false
		r.peerList = nil
	}
}

// Peers lists the connected peers.
func (r *Replica) Peers() []crdt.SiteID {
	return append([]crdt.SiteID(nil), r.connectedPeers()...)
}

// connectedPeers returns the sorted connected peers, cached until the set
// changes (meshes of a thousand sites ask on every push).
func (r *Replica) connectedPeers() []crdt.SiteID {
	if r.peerList == nil {
		out := []crdt.SiteID{}
		for id, p := range r.peers {
			if p.connected {
				out = append(out, id)
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
		r.peerList = out
	}
	return r.peerList
}

// Unflushed reports whether edits or received writes await the next Ready.
func (r *Replica) Unflushed() bool { return len(r.pending) > 0 || len(r.dirty) > 0 }

// Waiting returns how many received batches wait for dependencies or for
// the clock.
func (r *Replica) Waiting() int { return len(r.waiting) }

// HasReady reports whether Ready has anything to do.
func (r *Replica) HasReady() bool {
	return len(r.pending) > 0 || len(r.dirty) > 0 || len(r.outbox) > 0 || len(r.events) > 0 ||
		len(r.changes) > 0 || len(r.newPeers) > 0 || len(r.forgotten) > 0 || len(r.vvDirty) > 0 ||
		len(r.sweepDeletes) > 0
}

func (r *Replica) markVV(dt string, site crdt.SiteID, lo, hi uint64) bool {
	if !r.vvFor(dt).Add(site, lo, hi) {
		return false
	}
	if r.vvDirty[dt] == nil {
		r.vvDirty[dt] = map[crdt.SiteID]bool{}
	}
	r.vvDirty[dt][site] = true
	return true
}

func (r *Replica) vvFor(dt string) crdt.VersionVector {
	v := r.vv[dt]
	if v == nil {
		v = crdt.VersionVector{}
		r.vv[dt] = v
	}
	return v
}

func (r *Replica) event(e Event) { r.events = append(r.events, e) }

// Ready returns what the driver must do next. Local edits proposed since
// the last Ready are sealed into signed batches here. Propose, Step and Tick
// may be called while the driver persists a Ready (so persistence can
// overlap new work); Ready may not be called again before Advance.
func (r *Replica) Ready() (Ready, error) {
	if r.readyPending {
		return Ready{}, errors.New("replica: Ready called twice without Advance")
	}
	if r.err != nil {
		return Ready{}, r.err
	}
	var rd Ready
	sealed, err := r.seal()
	if err != nil {
		return Ready{}, err
	}
	type visible struct {
		peer crdt.SiteID
		b    *crdt.Batch
		f    func(*crdt.Doc) bool
	}
	var filtered []visible
	for _, b := range sealed {
		for i := b.First; i <= b.Last; i++ {
			rd.Acked = append(rd.Acked, Edit{Doctype: b.Doctype, Dot: crdt.Dot{Site: r.self, Seq: i}})
		}
		for _, p := range r.pushTargets(b.Doctype) {
			if f := r.filterFor(p, b.Doctype); f != nil {
				filtered = append(filtered, visible{p, b, f})
				continue
			}
			r.outbox = append(r.outbox, Message{Type: MsgPush, To: p, Batches: []*crdt.Batch{b}})
		}
	}
	rd.Writes, err = r.flush()
	if err != nil {
		return Ready{}, err
	}
	// Whole documents for filtered peers, once the new batches are indexed.
	for _, v := range filtered {
		if err := r.pushVisible(v.peer, v.b, v.f); err != nil {
			return Ready{}, err
		}
	}
	rd.Messages = r.outbox
	for id := range r.changes {
		rd.Changes = append(rd.Changes, Change{Doctype: id.dt, Name: id.name})
	}
	sort.Slice(rd.Changes, func(i, j int) bool {
		if rd.Changes[i].Doctype != rd.Changes[j].Doctype {
			return rd.Changes[i].Doctype < rd.Changes[j].Doctype
		}
		return rd.Changes[i].Name < rd.Changes[j].Name
	})
	rd.Events = r.events
	r.outbox, r.events = nil, nil
	r.changes = map[docID]bool{}
	r.inflightVV = map[string]map[crdt.SiteID]*crdt.Seen{}
	for dt, sites := range r.vvDirty {
		m := map[crdt.SiteID]*crdt.Seen{}
		for s := range sites {
			m[s] = r.vv[dt][s].Clone()
		}
		r.inflightVV[dt] = m
	}
	r.vvDirty = map[string]map[crdt.SiteID]bool{}
	r.newBatches = map[batchID]*crdt.Header{}
	r.newPeers, r.forgotten, r.sweepDeletes = nil, nil, nil
	r.readyPending = true
	return rd, nil
}

// Advance tells the replica the last Ready was carried out.
func (r *Replica) Advance(Ready) {
	if !r.readyPending {
		panic(ErrNotReady)
	}
	r.readyPending = false
	for dt, sites := range r.inflightVV {
		if r.durableVV[dt] == nil {
			r.durableVV[dt] = crdt.VersionVector{}
		}
		for s, seen := range sites {
			r.durableVV[dt][s] = seen
		}
		r.vvHash[dt] = nil
	}
	r.inflightVV = nil
	for _, e := range r.inflight {
		e.pinned = false
	}
	r.inflight = nil
	r.cache.evict(func(e *docEntry) {
		if e.stale { // index it before forgetting it
			r.indexDoc(e)
			delete(r.stale, e.id)
		}
	})
}

func (r *Replica) versionOf(dt string) uint64 {
	if r.cfg.VersionOf == nil {
		return 0
	}
	return r.cfg.VersionOf(dt)
}

func (r *Replica) filterFor(peer crdt.SiteID, dt string) func(*crdt.Doc) bool {
	if r.cfg.Filter == nil {
		return nil
	}
	return r.cfg.Filter(peer, dt)
}

// pushVisible sends a filtered peer the documents of a fresh batch it may
// see, each whole (every live write, with its batch's proof): a document
// that just became visible arrives complete.
func (r *Replica) pushVisible(peer crdt.SiteID, b *crdt.Batch, f func(*crdt.Doc) bool) error {
	m := Message{Type: MsgDocs, To: peer, Doctype: b.Doctype}
	mSize := m.Size() // a running total, as documents are added
	for _, d := range b.Docs {
		e, err := r.load(b.Doctype, d.Name)
		if err != nil {
			return err
		}
		if !f(e.doc) {
			continue
		}
		batches, err := r.wholeDoc(b.Doctype, e.doc)
		if err != nil {
			return err
		}
		size := batchesSize(batches)
		if len(m.Batches) > 0 && mSize+size > r.cfg.MaxMessageBytes {
			r.outbox = append(r.outbox, m) // documents travel whole, in bounded messages
			m = Message{Type: MsgDocs, To: peer, Doctype: b.Doctype}
			mSize = m.Size()
		}
		m.Batches = append(m.Batches, batches...)
		mSize += size
	}
	if len(m.Batches) > 0 {
		r.outbox = append(r.outbox, m)
	}
	return nil
}

// wholeDoc returns every live write of a document as partial batches.
func (r *Replica) wholeDoc(dt string, d *crdt.Doc) ([]*crdt.Batch, error) {
	type key struct {
		site  crdt.SiteID
		first uint64
	}
	groups := map[key][]crdt.Dot{}
	var order []key
	for _, dot := range d.Dots() {
		br, ok := r.index.batchOf(dt, dot)
		if !ok {
			return nil, fmt.Errorf("replica: write %v of %s %q has no stored batch", dot, dt, d.Name)
		}
		k := key{dot.Site, br.first}
		if groups[k] == nil {
			order = append(order, k)
		}
		groups[k] = append(groups[k], dot)
	}
	var out []*crdt.Batch
	for _, k := range order {
		h := r.newBatches[batchID{dt, crdt.Dot{Site: k.site, Seq: k.first}}]
		if h == nil {
			br, _ := r.index.batchOf(dt, crdt.Dot{Site: k.site, Seq: k.first})
			raw, err := r.store.Get(batchKey(dt, k.site, br.first, br.last))
			if err != nil {
				return nil, err
			}
			if raw == nil {
				return nil, fmt.Errorf("replica: batch header %s %s:%d missing", dt, k.site, k.first)
			}
			if h, err = crdt.DecodeHeader(raw); err != nil {
				return nil, err
			}
		}
		dots := groups[k]
		sel := d.Select(func(x crdt.Dot) bool {
			for _, y := range dots {
				if x == y {
					return true
				}
			}
			return false
		})
		b, err := crdt.PartialBatch(k.site, dt, h, []*crdt.Doc{sel})
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// Recheck re-examines batches waiting for an authorization (call it when
// the authority's records change).
func (r *Replica) Recheck() {
	var again []*waitingBatch
	kept := r.waiting[:0]
	for _, w := range r.waiting {
		if w.auth {
			again = append(again, w)
			continue
		}
		kept = append(kept, w)
	}
	r.waiting = kept
	for _, w := range again {
		w.auth = false
		_ = r.receive(w)
	}
}

// pushTargets lists connected peers that may read a doctype.
func (r *Replica) pushTargets(dt string) []crdt.SiteID {
	var out []crdt.SiteID
	if r.cfg.CanRead == nil {
		return r.connectedPeers()
	}
	for _, id := range r.connectedPeers() {
		if r.cfg.CanRead(id, dt) {
			out = append(out, id)
		}
	}
	return out
}

// seal groups pending local edits into signed batches, one doctype and at
// most MaxBatchEdits contiguous edits each.
func (r *Replica) seal() ([]*crdt.Batch, error) {
	if len(r.pending) == 0 {
		return nil, nil
	}
	byDT := map[string][]pendingEdit{}
	var order []string
	for _, p := range r.pending {
		if byDT[p.dt] == nil {
			order = append(order, p.dt)
		}
		byDT[p.dt] = append(byDT[p.dt], p)
	}
	r.pending = nil
	var out []*crdt.Batch
	for _, dt := range order {
		edits := byDT[dt]
		for len(edits) > 0 {
			n := min(len(edits), r.cfg.MaxBatchEdits)
			// Keep a batch within the message size bound.
			size := 0
			for i := 0; i < n; i++ {
				size += batchSize(&crdt.Batch{Docs: []*crdt.Doc{edits[i].delta}})
				if size > r.cfg.MaxMessageBytes/2 && i > 0 {
					n = i
					break
				}
			}
			b, err := r.sealOne(dt, edits[:n])
			if err != nil {
				return nil, err
			}
			out = append(out, b)
			edits = edits[n:]
		}
	}
	return out, nil
}

func (r *Replica) sealOne(dt string, edits []pendingEdit) (*crdt.Batch, error) {
	b := &crdt.Batch{Origin: r.self, Doctype: dt, First: edits[0].dot.Seq, Last: edits[len(edits)-1].dot.Seq, Version: r.versionOf(dt)}
	docs := map[string]*crdt.Doc{}
	deps := map[crdt.SiteID]uint64{}
	for _, e := range edits {
		if e.hlc > b.HLC {
			b.HLC = e.hlc
		}
		if d := docs[e.name]; d != nil {
			if d == e.delta {
				d = d.Clone() // first merge into it: the delta itself stays as it was
				docs[e.name] = d
			}
			d.Merge(e.delta)
		} else {
			docs[e.name] = e.delta
		}
		for _, d := range e.deps {
			// Dependencies inside the batch itself are not dependencies.
			if d.Site == r.self && d.Seq >= b.First {
				continue
			}
			if d.Seq > deps[d.Site] {
				deps[d.Site] = d.Seq
			}
		}
	}
	// Deliver a site's batches in order: each depends on the one before.
	if b.First > 1 {
		deps[r.self] = b.First - 1
	}
	for s, seq := range deps {
		b.Deps = append(b.Deps, crdt.Dot{Site: s, Seq: seq})
	}
	sort.Slice(b.Deps, func(i, j int) bool { return b.Deps[i].Less(b.Deps[j]) })
	for _, d := range docs {
		if !d.Empty() {
			b.Docs = append(b.Docs, d)
		}
	}
	sort.Slice(b.Docs, func(i, j int) bool { return b.Docs[i].Name < b.Docs[j].Name })
	if err := b.SealWith(r.cfg.Signer, r.cfg.Parallel); err != nil {
		return nil, err
	}
	h, err := b.Header()
	if err != nil {
		return nil, err
	}
	r.noteBatch(dt, b.Origin, b.First, b.Last, h)
	return b, nil
}

// noteBatch records a batch whose writes may become live this round, so
// flush can index its dots and store its header.
func (r *Replica) noteBatch(dt string, origin crdt.SiteID, first, last uint64, h *crdt.Header) {
	id := batchID{dt, crdt.Dot{Site: origin, Seq: first}}
	if old, ok := r.newBatches[id]; ok {
		if h != nil && old != h && old.Last == h.Last {
			old.Tree.Merge(h.Tree)
		}
		return
	}
	r.newBatches[id] = h
}

// ChangedSince lists, sorted, the documents of a doctype holding a live
// write that vv has not delivered: what a consumer that has seen the state
// at vv (the Frappe bridge after a restart) must read again. A document
// whose every write vv has is left out; a deleted document is listed (its
// deletion is a live write).
func (r *Replica) ChangedSince(dt string, vv crdt.VersionVector) []string {
	r.refreshIndex()
	set := map[string]bool{}
	for _, rg := range vv.Missing(r.vvFor(dt)) {
		r.index.scan(dt, rg.Site, rg.Lo, rg.Hi, func(_ uint64, name string) bool {
			set[name] = true
			return true
		})
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// DurableVersionVector returns what the store holds of a doctype's version
// vector: every write it covers was reported in the Changes of a Ready
// already advanced. A consumer that applied those Changes may record it as
// the state it has seen.
func (r *Replica) DurableVersionVector(dt string) crdt.VersionVector {
	vv := r.durableVV[dt]
	if vv == nil {
		return crdt.VersionVector{}
	}
	return vv.Clone()
}

// Backlog is how many documents changed since the last Ready: a driver
// stops taking in messages while it is large, so that no Ready outgrows
// what one store transaction can hold.
func (r *Replica) Backlog() int { return len(r.dirty) }
