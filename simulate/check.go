package simulate

import (
	"fmt"
	"math"
	"sort"

	"meridian/crdt"
	"meridian/replica"
)

// checker holds what the simulator knows to be true: every write ever
// made, which were acknowledged, when each was proposed. It checks the
// replicas against it during the run (safety) and at the end (liveness).
type checker struct {
	writes     map[writeKey]crdt.Sibling
	proposedAt map[replica.Edit]int64
	ackedDots  map[ackKey]bool
	violations []string
	latency    histogram
}

type writeKey struct {
	dt, name, key string
	dot           crdt.Dot
}

type ackKey struct {
	site int
	edit replica.Edit
}

const maxViolations = 20

func newChecker() *checker {
	return &checker{writes: map[writeKey]crdt.Sibling{}, proposedAt: map[replica.Edit]int64{}, ackedDots: map[ackKey]bool{}}
}

func (c *checker) violate(format string, args ...any) {
	if len(c.violations) < maxViolations {
		c.violations = append(c.violations, fmt.Sprintf(format, args...))
	}
}

// proposed records the writes of a local edit right after it was made.
func (c *checker) proposed(s *Sim, st *site, d docRef, dot crdt.Dot) {
	doc, err := st.r.Doc(d.dt, d.name)
	if err != nil {
		return
	}
	for _, reg := range doc.Regs {
		for _, sib := range reg.Sibs {
			if sib.Dot == dot {
				c.writes[writeKey{d.dt, d.name, reg.Key, dot}] = sib
			}
		}
	}
	c.proposedAt[replica.Edit{Doctype: d.dt, Dot: dot}] = s.now
}

func (c *checker) acked(site int, e replica.Edit) { c.ackedDots[ackKey{site, e}] = true }

func (c *checker) sent(*crdt.Batch, int64) {}

// stepCheck is what beforeStep saw: the edits the message may deliver
// that the receiver lacked.
type stepCheck struct {
	missing []replica.Edit
	pushed  []*crdt.Batch
}

func (c *checker) beforeStep(to *site, m *replica.Message) stepCheck {
	var sc stepCheck
	add := func(dt string, site crdt.SiteID, lo, hi uint64) {
		for seq := lo; seq <= hi && seq-lo < 1<<16; seq++ {
			e := replica.Edit{Doctype: dt, Dot: crdt.Dot{Site: site, Seq: seq}}
			if !to.r.HasDelivered(dt, e.Dot) {
				sc.missing = append(sc.missing, e)
			}
		}
	}
	switch m.Type {
	case replica.MsgPush:
		for _, b := range m.Batches {
			if !to.r.HasDelivered(b.Doctype, crdt.Dot{Site: b.Origin, Seq: b.Last}) {
				sc.pushed = append(sc.pushed, b)
			}
			add(b.Doctype, b.Origin, b.First, b.Last)
		}
	case replica.MsgServe:
		for _, r := range m.Covers {
			add(m.Doctype, r.Site, r.Lo, r.Hi)
		}
	}
	return sc
}

// afterStep checks causal delivery of pushed batches and records how long
// each newly delivered edit took to get here.
func (c *checker) afterStep(s *Sim, to *site, m *replica.Message, sc stepCheck) {
	for _, b := range sc.pushed {
		if !to.r.HasDelivered(b.Doctype, crdt.Dot{Site: b.Origin, Seq: b.Last}) {
			continue
		}
		for _, d := range b.Deps {
			if !to.r.HasDelivered(b.Doctype, d) {
				c.violate("t=%dms %s delivered %s batch %s[%d..%d] before its dependency %v (causal delivery broken)",
					s.now/1000, to.id, b.Doctype, b.Origin, b.First, b.Last, d)
			}
		}
	}
	for _, e := range sc.missing {
		if !to.r.HasDelivered(e.Doctype, e.Dot) {
			continue
		}
		s.rep.Totals.EditsDelivered++
		if t, ok := c.proposedAt[e]; ok {
			c.latency.add(s.now - t)
		}
	}
}

// restarted checks that a restarted site kept every edit it acknowledged.
func (c *checker) restarted(s *Sim, st *site) {
	keys := make([]ackKey, 0)
	for k := range c.ackedDots {
		if k.site == st.idx {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].edit.Dot.Seq < keys[j].edit.Dot.Seq })
	for _, k := range keys {
		if !st.r.HasDelivered(k.edit.Doctype, k.edit.Dot) {
			c.violate("t=%dms %s restarted without its acknowledged edit %v (acknowledged write lost)", s.now/1000, st.id, k.edit)
		}
	}
}

// safety checks a sample of documents on a sample of sites: every write a
// replica holds is a real write, exactly as made; no held write is
// overwritten by another held one (the state is a join, in normal form);
// no write of a past life of the document survives.
func (c *checker) safety(s *Sim) {
	var up []*site
	for _, st := range s.sites {
		if st.up {
			up = append(up, st)
		}
	}
	if len(up) == 0 || len(s.wl.docs) == 0 {
		return
	}
	for i := 0; i < min(4, len(up)); i++ {
		st := up[s.crng.IntN(len(up))]
		for j := 0; j < min(8, len(s.wl.docs)); j++ {
			d := s.wl.docs[s.crng.IntN(len(s.wl.docs))]
			if s.sc.Workload.HotKeys > 0 && j < 2 {
				d = s.wl.docs[s.crng.IntN(min(s.sc.Workload.HotKeys, len(s.wl.docs)))]
			}
			doc, err := st.r.Doc(d.dt, d.name)
			if err != nil {
				c.violate("%s: reading %s %s: %v", st.id, d.dt, d.name, err)
				continue
			}
			c.checkDoc(s, st, doc)
		}
	}
}

func (c *checker) checkDoc(s *Sim, st *site, doc *crdt.Doc) {
	cl := doc.CausalLength()
	for _, reg := range doc.Regs {
		for i, sib := range reg.Sibs {
			real, ok := c.writes[writeKey{doc.Doctype, doc.Name, reg.Key, sib.Dot}]
			if !ok {
				c.violate("t=%dms %s holds a write %v to %s %s %q that no site made", s.now/1000, st.id, sib.Dot, doc.Doctype, doc.Name, reg.Key)
				continue
			}
			if !crdt.SameWrites([]crdt.Sibling{real}, []crdt.Sibling{sib}) {
				c.violate("t=%dms %s holds write %v to %s %s %q altered: %v, made as %v", s.now/1000, st.id, sib.Dot, doc.Doctype, doc.Name, reg.Key, sib.Value, real.Value)
			}
			for j, other := range reg.Sibs {
				if i != j && other.Ctx.Covers(sib.Dot) {
					c.violate("t=%dms %s holds write %v to %s %s %q although it holds %v, which overwrote it (not a join of real writes)",
						s.now/1000, st.id, sib.Dot, doc.Doctype, doc.Name, reg.Key, other.Dot)
				}
			}
			if reg.Key != crdt.LifeKey && sib.Gen < cl {
				c.violate("t=%dms %s holds write %v to %s %s %q of a past life (%d < %d)", s.now/1000, st.id, sib.Dot, doc.Doctype, doc.Name, reg.Key, sib.Gen, cl)
			}
		}
	}
}

// liveness checks, once the run converged, that every acknowledged edit
// reached every site.
func (c *checker) liveness(s *Sim) {
	if !s.rep.Result.Converged {
		return
	}
	keys := make([]ackKey, 0, len(c.ackedDots))
	for k := range c.ackedDots {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].site != keys[j].site {
			return keys[i].site < keys[j].site
		}
		if keys[i].edit.Doctype != keys[j].edit.Doctype {
			return keys[i].edit.Doctype < keys[j].edit.Doctype
		}
		return keys[i].edit.Dot.Seq < keys[j].edit.Dot.Seq
	})
	for _, k := range keys {
		for _, st := range s.sites {
			if !st.r.HasDelivered(k.edit.Doctype, k.edit.Dot) {
				s.rep.fail("acknowledged edit %v of %s never reached %s", k.edit, siteID(k.site), st.id)
				return
			}
		}
	}
}

// histogram counts latencies in logarithmic buckets from 10 µs to ~3 h.
type histogram struct {
	counts [96]int64
	n      int64
}

func bucketOf(us int64) int {
	if us < 10 {
		return 0
	}
	b := int(math.Log10(float64(us)/10) * 10)
	return min(b, 95)
}

func bucketUpper(b int) float64 { return 10 * math.Pow(10, float64(b+1)/10) / 1000 } // ms

func (h *histogram) add(us int64) {
	h.counts[bucketOf(us)]++
	h.n++
}

func (c *checker) latencyCDF() []CDFPoint {
	var out []CDFPoint
	if c.latency.n == 0 {
		return out
	}
	var cum int64
	for b, n := range c.latency.counts {
		if n == 0 {
			continue
		}
		cum += n
		out = append(out, CDFPoint{Ms: round3(bucketUpper(b)), Fraction: round3(float64(cum) / float64(c.latency.n)), Count: n})
	}
	return out
}

// percentile returns the bucket bound below which fraction p of samples fall.
func (c *checker) percentile(p float64) float64 {
	var cum int64
	for b, n := range c.latency.counts {
		cum += n
		if float64(cum) >= p*float64(c.latency.n) && n > 0 {
			return round3(bucketUpper(b))
		}
	}
	return 0
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }
