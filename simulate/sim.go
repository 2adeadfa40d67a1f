package simulate

import (
	"container/heap"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"time"

	"meridian/crdt"
	"meridian/replica"
)

// Options are the run's inputs besides the scenario.
type Options struct {
	Seed uint64
	// Progress, if not nil, receives a progress line now and then (wall
	// clock throttled; never part of the report).
	Progress io.Writer
	// Verify uses real ed25519 signatures instead of the fast stand-ins.
	Verify bool
	// MaxEvents aborts runaway runs (0: no limit).
	MaxEvents int64
}

// Sim is one deterministic run: every random choice comes from the seed,
// time is simulated, and the sites run the real replica code.
type Sim struct {
	sc    Scenario
	opt   Options
	rng   *rand.Rand
	now   int64 // simulated microseconds since the start
	queue eventQueue
	seq   uint64
	sites []*site
	net   *network
	wl    *workload
	chk   *checker
	rep   *Report

	workloadEnd int64
	healed      bool
	healAt      int64
	events      int64
	lastProg    time.Time
	sizeCache   map[*crdt.Batch]int
	ring        crdt.KeyRing
	adj         [][]int // each site's neighbours (connections), sorted
	byID        map[crdt.SiteID]int
	crng        *rand.Rand // safety-check sampling

	seed          uint64
	initial       []*crdt.Record // the authority's records every site starts with
	recordsIssued int64
}

type site struct {
	idx      int
	id       crdt.SiteID
	r        *replica.Replica
	store    *replica.MemStore
	up       bool
	skew     int64 // µs added to true time on this site's clock
	readyAt  int64 // a ready event is scheduled at this time (0: none)
	inflight *replica.Ready
	wake     bool
	stats    SiteStats
	auth     *crdt.AuthorityState // this site's view of the authority's records (nil: no authority)
}

// event is one thing that happens at a simulated instant.
type event struct {
	at   int64
	seq  uint64
	kind eventKind
	site int
	msg  *replica.Message
	sev  *Event // scenario event
	gen  int    // site generation, to drop events from before a crash
	undo bool
}

type eventKind uint8

const (
	evReady eventKind = iota + 1
	evPersisted
	evDeliver
	evWrite
	evWake
	evScenario
	evSample
	evWorkloadEnd
)

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

func (s *Sim) schedule(e *event) {
	s.seq++
	e.seq = s.seq
	heap.Push(&s.queue, e)
}

const us = int64(time.Microsecond)

func ms(d Duration) int64 { return int64(time.Duration(d) / time.Microsecond) }

// siteID names site i; fixed width so that sorted order is index order.
func siteID(i int) crdt.SiteID { return crdt.SiteID(fmt.Sprintf("S%05d", i)) }

// New prepares a run.
func New(sc Scenario, opt Options) (*Sim, error) {
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	s := &Sim{sc: sc, opt: opt, rng: rand.New(rand.NewPCG(opt.Seed, 0x5eed)), sizeCache: map[*crdt.Batch]int{}, seed: opt.Seed}
	s.net = newNetwork(&s.sc, s.fork())
	s.wl = newWorkload(&s.sc, s.fork())
	s.chk = newChecker()
	s.rep = newReport(&s.sc, opt.Seed)
	skewRng := s.fork()
	s.crng = s.fork()
	s.byID = map[crdt.SiteID]int{}
	for i := 0; i < sc.Nodes; i++ {
		st := &site{idx: i, id: siteID(i), store: replica.NewMemStore(), up: true}
		if sc.ClockSkew > 0 {
			st.skew = skewRng.Int64N(2*ms(sc.ClockSkew)+1) - ms(sc.ClockSkew)
		}
		st.stats.ID = string(st.id)
		s.byID[st.id] = i
		s.sites = append(s.sites, st)
	}
	s.adj = buildMesh(sc.Nodes, sc.Degree, s.fork())
	if sc.Authority {
		s.initial = s.initialRecords()
	}
	for _, st := range s.sites {
		if err := s.start(st); err != nil {
			return nil, err
		}
	}
	for _, st := range s.sites {
		for _, o := range s.adj[st.idx] {
			st.r.AddPeer(s.sites[o].id)
		}
		s.needReady(st)
		// Spread the periodic wake-ups so sites do not sync in lockstep.
		s.schedule(&event{at: s.rng.Int64N(ms(sc.SyncInterval)) + 1, kind: evWake, site: st.idx})
	}
	s.workloadEnd = ms(sc.Duration)
	s.schedule(&event{at: s.workloadEnd, kind: evWorkloadEnd})
	if sc.Workload.Rate > 0 {
		s.schedule(&event{at: s.wl.nextGap(), kind: evWrite})
	}
	for i := range s.sc.Events {
		e := &s.sc.Events[i]
		s.schedule(&event{at: ms(e.At), kind: evScenario, sev: e})
	}
	s.schedule(&event{at: 0, kind: evSample})
	return s, nil
}

// buildMesh returns each site's neighbours: everyone (degree 0), or a
// random symmetric graph where each site picks degree/2 others (so degrees
// average degree), with a ring added so the graph is connected.
func buildMesh(n, degree int, rng *rand.Rand) [][]int {
	adj := make([][]int, n)
	if degree <= 0 || degree >= n-1 {
		for i := range adj {
			adj[i] = make([]int, 0, n-1)
			for j := 0; j < n; j++ {
				if j != i {
					adj[i] = append(adj[i], j)
				}
			}
		}
		return adj
	}
	set := make([]map[int]bool, n)
	for i := range set {
		set[i] = map[int]bool{}
	}
	link := func(a, b int) {
		if a != b {
			set[a][b], set[b][a] = true, true
		}
	}
	for i := 0; i < n; i++ {
		link(i, (i+1)%n)
		for k := 0; k < degree/2; k++ {
			link(i, rng.IntN(n))
		}
	}
	for i := range adj {
		for j := range set[i] {
			adj[i] = append(adj[i], j)
		}
		sort.Ints(adj[i])
	}
	return adj
}

// fork derives an independent random stream from the master stream.
func (s *Sim) fork() *rand.Rand { return rand.New(rand.NewPCG(s.rng.Uint64(), s.rng.Uint64())) }

// start opens a site's replica over its store (again, after a crash).
func (s *Sim) start(st *site) error {
	cfg := replica.Config{
		Site: st.id, Signer: crdt.Unsigned{ID: st.id}, Verifier: crdt.Unverified{},
		Rand:           rand.New(rand.NewPCG(s.rng.Uint64(), uint64(st.idx))),
		SyncIntervalMs: ms(s.sc.SyncInterval) / 1000, SyncFanout: s.sc.SyncFanout,
		DocCacheSize: 256, MaxBuffered: 1024,
	}
	if s.sc.DocCache > 0 {
		cfg.DocCacheSize = s.sc.DocCache
	}
	if s.opt.Verify {
		cfg.Signer, cfg.Verifier = s.signer(st), s.keyring()
	}
	if s.sc.Authority {
		s.authorityHooks(st, &cfg)
	}
	r, err := replica.New(cfg, st.store)
	if err != nil {
		return fmt.Errorf("simulate: starting %s: %w", st.id, err)
	}
	st.r = r
	st.up = true
	if s.sc.Authority {
		s.loadRecords(st)
	}
	st.r.Tick(s.clock(st))
	return nil
}

// signer and keyring give each site a deterministic ed25519 key, for runs
// that check signatures (Options.Verify).
func (s *Sim) signer(st *site) crdt.Signer {
	return crdt.Ed25519Signer{ID: st.id, Key: siteKey(st.idx)}
}

func (s *Sim) keyring() crdt.Verifier {
	if s.ring == nil {
		s.ring = crdt.KeyRing{}
		for i, st := range s.sites {
			s.ring[st.id] = siteKey(i).Public().(ed25519.PublicKey)
		}
	}
	return s.ring
}

func siteKey(i int) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte(fmt.Sprintf("meridian-sim-key/%d", i)))
	return ed25519.NewKeyFromSeed(seed[:])
}

// clock is a site's wall clock in Unix-like milliseconds.
func (s *Sim) clock(st *site) int64 {
	return (1_700_000_000_000_000 + s.now + st.skew) / 1000
}

// Run executes the scenario: the workload phase, then a heal of everything
// and the liveness phase. It returns the report; a failed check is in
// Report.Failures, not an error.
func (s *Sim) Run() (*Report, error) {
	deadline := int64(-1)
	for s.queue.Len() > 0 {
		e := heap.Pop(&s.queue).(*event)
		if e.at < s.now {
			return nil, fmt.Errorf("simulate: internal error: event in the past")
		}
		s.now = e.at
		s.events++
		if s.opt.MaxEvents > 0 && s.events > s.opt.MaxEvents {
			return nil, fmt.Errorf("simulate: more than %d events; aborting", s.opt.MaxEvents)
		}
		if err := s.handle(e); err != nil {
			return nil, err
		}
		if s.healed && deadline < 0 {
			deadline = s.healAt + ms(s.sc.Liveness)
		}
		if s.rep.Result.Converged || (deadline >= 0 && s.now > deadline) {
			break
		}
		s.progress()
	}
	s.finish()
	return s.rep, nil
}

func (s *Sim) progress() {
	if s.opt.Progress == nil || s.events%4096 != 0 {
		return
	}
	if time.Since(s.lastProg) < time.Second {
		return
	}
	s.lastProg = time.Now()
	phase := "workload"
	if s.healed {
		phase = "liveness"
	}
	fmt.Fprintf(s.opt.Progress, "  t=%7.1fs %-8s events=%d writes=%d deliveries=%d divergent=%d\n",
		float64(s.now)/1e6, phase, s.events, s.rep.Totals.Writes, s.rep.Totals.Deliveries, s.rep.lastDivergent)
}

func (s *Sim) handle(e *event) error {
	switch e.kind {
	case evReady:
		st := s.sites[e.site]
		if e.gen != st.stats.Crashes || st.readyAt != e.at {
			return nil
		}
		st.readyAt = 0
		return s.ready(st)
	case evPersisted:
		st := s.sites[e.site]
		if e.gen != st.stats.Crashes || !st.up {
			return nil // crashed while persisting: the Ready is lost
		}
		return s.persisted(st)
	case evDeliver:
		return s.deliver(e.msg)
	case evWrite:
		if s.now < s.workloadEnd {
			s.wl.step(s)
			if s.sc.Workload.Writes == 0 || s.rep.Totals.Writes < int64(s.sc.Workload.Writes) {
				s.schedule(&event{at: s.now + s.wl.nextGap(), kind: evWrite})
			}
		}
	case evWake:
		st := s.sites[e.site]
		if st.up {
			st.r.Tick(s.clock(st))
			s.needReady(st)
		}
		s.schedule(&event{at: s.now + ms(s.sc.SyncInterval), kind: evWake, site: e.site})
	case evScenario:
		return s.scenarioEvent(e)
	case evSample:
		s.sample()
		s.schedule(&event{at: s.now + ms(s.sc.Sample), kind: evSample})
	case evWorkloadEnd:
		s.healAll()
	}
	return nil
}

// needReady schedules the site's loop to run Ready at the next tick.
func (s *Sim) needReady(st *site) {
	if !st.up || st.readyAt != 0 {
		return
	}
	tick := ms(s.sc.Tick)
	at := (s.now/tick + 1) * tick
	st.readyAt = at
	s.schedule(&event{at: at, kind: evReady, site: st.idx, gen: st.stats.Crashes})
}

// ready runs one Ready and starts persisting it.
func (s *Sim) ready(st *site) error {
	if !st.up || st.inflight != nil {
		return nil
	}
	st.r.Tick(s.clock(st))
	if !st.r.HasReady() {
		return nil
	}
	rd, err := st.r.Ready()
	if err != nil {
		return fmt.Errorf("simulate: %s Ready: %w", st.id, err)
	}
	st.inflight = &rd
	s.schedule(&event{at: s.now + ms(s.sc.DiskLatency), kind: evPersisted, site: st.idx, gen: st.stats.Crashes})
	return nil
}

// persisted completes a Ready: writes land on the simulated disk, then
// messages go out, then the replica advances.
func (s *Sim) persisted(st *site) error {
	rd := st.inflight
	st.inflight = nil
	if err := st.store.Apply(rd.Writes); err != nil {
		return err
	}
	for _, d := range rd.Acked {
		s.chk.acked(st.idx, d)
	}
	for i := range rd.Messages {
		m := rd.Messages[i]
		m.From = st.id
		s.send(st, &m)
	}
	for _, ev := range rd.Events {
		s.rep.countEvent(ev)
	}
	st.r.Advance(*rd)
	if st.auth != nil {
		changed := false
		for _, c := range rd.Changes {
			if c.Doctype == crdt.RecordsDoctype && s.readRecords(st, c.Name) {
				changed = true
			}
		}
		if changed {
			st.r.Recheck()
		}
	}
	if st.r.HasReady() {
		s.needReady(st)
	}
	return nil
}

// size is the encoded size of a message (batches encoded once, shared by
// every receiver of a push).
func (s *Sim) size(m *replica.Message) int {
	n := m.Size()
	for _, b := range m.Batches {
		if c, ok := s.sizeCache[b]; ok {
			n += c
			continue
		}
		raw, err := crdt.EncodeBatch(b)
		if err == nil {
			s.sizeCache[b] = len(raw)
			n += len(raw)
		}
	}
	if len(s.sizeCache) > 1<<10 { // the batches of the pushes being sent: keep few alive
		s.sizeCache = map[*crdt.Batch]int{}
	}
	return n
}

func (s *Sim) send(from *site, m *replica.Message) {
	to := s.indexOf(m.To)
	if to < 0 {
		return
	}
	size := s.size(m)
	from.stats.SentMsgs++
	from.stats.SentBytes += int64(size)
	s.rep.Totals.Messages++
	s.rep.Totals.Bytes += int64(size)
	s.rep.bucket(s.now).addMsg(size)
	for _, at := range s.net.transmit(from.idx, to, size, s.now) {
		s.schedule(&event{at: at, kind: evDeliver, msg: m})
	}
	if m.Type == replica.MsgPush {
		for _, b := range m.Batches {
			s.chk.sent(b, s.now)
		}
	}
}

func (s *Sim) indexOf(id crdt.SiteID) int {
	if i, ok := s.byID[id]; ok {
		return i
	}
	return -1
}

func (s *Sim) deliver(m *replica.Message) error {
	to := s.sites[s.indexOf(m.To)]
	if !to.up {
		s.rep.Totals.LostToCrash++
		return nil
	}
	to.stats.RecvMsgs++
	s.rep.Totals.Deliveries++
	to.r.Tick(s.clock(to))
	before := s.chk.beforeStep(to, m)
	_ = to.r.Step(*m) // rejections are counted from Ready events
	s.chk.afterStep(s, to, m, before)
	s.needReady(to)
	return nil
}

func (s *Sim) crash(st *site) {
	if !st.up {
		return
	}
	st.up = false
	st.r = nil
	st.auth = nil // memory is lost; the records are rebuilt from the store
	st.inflight = nil
	st.readyAt = 0
	st.stats.Crashes++
	s.rep.Totals.Crashes++
	for _, o := range s.adj[st.idx] {
		if s.sites[o].up {
			s.sites[o].r.RemovePeer(st.id)
		}
	}
}

func (s *Sim) restart(st *site) error {
	if st.up {
		return nil
	}
	st.store = st.store.Reopen()
	if err := s.start(st); err != nil {
		return err
	}
	s.chk.restarted(s, st)
	for _, i := range s.adj[st.idx] {
		o := s.sites[i]
		if o.up && s.net.connected(st.idx, o.idx) {
			st.r.AddPeer(o.id)
			o.r.AddPeer(st.id)
			s.needReady(o)
		}
	}
	s.needReady(st)
	return nil
}

// healAll ends the workload phase: every partition and clog is undone,
// every crashed site restarts, clocks are set right, and the liveness
// clock starts.
func (s *Sim) healAll() {
	s.net.healAll()
	for _, st := range s.sites {
		st.skew = 0
		if !st.up {
			if err := s.restart(st); err != nil {
				s.rep.fail("restart of %s failed: %v", st.id, err)
			}
		}
	}
	for _, a := range s.sites {
		for _, b := range s.adj[a.idx] {
			a.r.AddPeer(s.sites[b].id)
		}
		s.needReady(a)
	}
	s.healed = true
	s.healAt = s.now
}

// sample records divergence and runs the safety checks on a sample.
func (s *Sim) sample() {
	digests := map[crdt.Digest]int{}
	per := make([]crdt.Digest, len(s.sites))
	up := 0
	for i, st := range s.sites {
		if !st.up {
			continue
		}
		up++
		per[i] = s.siteDigest(st)
		digests[per[i]]++
	}
	best, bestN := crdt.Digest{}, -1
	keys := make([]crdt.Digest, 0, len(digests))
	for g := range digests {
		keys = append(keys, g)
	}
	sort.Slice(keys, func(i, j int) bool { return string(keys[i][:]) < string(keys[j][:]) })
	for _, g := range keys {
		if digests[g] > bestN {
			best, bestN = g, digests[g]
		}
	}
	divergent := 0
	for i, st := range s.sites {
		if !st.up || per[i] != best {
			divergent++
		}
	}
	s.rep.lastDivergent = divergent
	b := s.rep.bucket(s.now)
	b.Divergent = divergent
	b.Up = up
	s.chk.safety(s)
	if s.healed && divergent == 0 && s.quiet() && s.sameVV() {
		s.rep.Result.Converged = true
		s.rep.Result.ConvergedAfterHealMs = (s.now - s.healAt) / 1000
	}
}

// sameVV reports whether every site has delivered the same edits.
func (s *Sim) sameVV() bool {
	for _, dt := range []string{"Item", "Customer"} {
		var first crdt.VersionVector
		for _, st := range s.sites {
			vv := st.r.VersionVector(dt)
			if first == nil {
				first = vv
			} else if !vv.Equal(first) {
				return false
			}
		}
	}
	return true
}

// quiet reports whether no site has work pending.
func (s *Sim) quiet() bool {
	for _, st := range s.sites {
		if st.r.Waiting() > 0 || st.r.Unflushed() || st.inflight != nil {
			return false
		}
	}
	return true
}

// siteDigest combines a site's state digests over every doctype.
func (s *Sim) siteDigest(st *site) crdt.Digest {
	var out crdt.Digest
	for _, dt := range []string{"Item", "Customer"} {
		g, err := st.r.StateDigest(dt)
		if err != nil {
			s.rep.fail("%s: state digest of %s: %v", st.id, dt, err)
			continue
		}
		h := crdt.DocTerm(dt, g)
		out.Xor(h)
	}
	return out
}

func (s *Sim) finish() {
	r := s.rep
	r.Result.SimulatedMs = s.now / 1000
	r.Result.Events = s.events
	if !r.Result.Converged {
		r.explainDivergence(s)
	}
	for _, st := range s.sites {
		r.Sites = append(r.Sites, st.stats)
	}
	r.Latency = s.chk.latencyCDF()
	r.Result.Violations = s.chk.violations
	r.Totals.Acked = int64(len(s.chk.ackedDots))
	if len(r.Result.Violations) > 0 {
		r.fail("%d safety violations (first: %s)", len(r.Result.Violations), r.Result.Violations[0])
	}
	if !r.Result.Converged {
		r.fail("replicas did not converge within %s after the heal", s.sc.Liveness)
	}
	s.chk.liveness(s)
	r.Result.LatencyP50Ms = s.chk.percentile(0.5)
	r.Result.LatencyP99Ms = s.chk.percentile(0.99)
	r.Totals.Dropped = s.net.drops
	r.Result.OK = len(r.Failures) == 0
}
