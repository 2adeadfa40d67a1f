package crdt

import "sort"

// Sibling is one write to a register: a value, the edit that wrote it, the
// generation of the document it was written in, and the causal context of
// what it overwrote. A register keeps every write no other write overwrote;
// two or more visible siblings are a conflict.
type Sibling struct {
	Dot   Dot     // the edit that made this write
	HLC   HLC     // when; picks the visible winner among concurrent writes
	Gen   uint64  // the document's causal length when written (0 for life writes)
	Ctx   Context // the writes this one overwrote, transitively
	Value Value
}

// dominatedBy reports whether t overwrote s.
func (s *Sibling) dominatedBy(t *Sibling) bool { return t.Ctx.Covers(s.Dot) }

// wins reports whether s is shown over t: greater HLC, then greater site,
// then greater sequence (the last can only differ for forged input).
func (s *Sibling) wins(t *Sibling) bool {
	if s.HLC != t.HLC {
		return s.HLC > t.HLC
	}
	if s.Dot.Site != t.Dot.Site {
		return s.Dot.Site > t.Dot.Site
	}
	return s.Dot.Seq > t.Dot.Seq
}

// equal reports whether two siblings are the same write.
func (s *Sibling) equal(t *Sibling) bool {
	if s.Dot != t.Dot || s.HLC != t.HLC || s.Gen != t.Gen || s.Value != t.Value || len(s.Ctx) != len(t.Ctx) {
		return false
	}
	for i := range s.Ctx {
		if s.Ctx[i] != t.Ctx[i] {
			return false
		}
	}
	return true
}

// Register is a multi-value register: the writes to one key that no other
// write has overwritten, sorted by dot.
type Register struct {
	Key  string
	Sibs []Sibling
}

// find returns the index of the sibling with dot d, or -1.
func (r *Register) find(d Dot) int {
	i := sort.Search(len(r.Sibs), func(i int) bool { return !r.Sibs[i].Dot.Less(d) })
	if i < len(r.Sibs) && r.Sibs[i].Dot == d {
		return i
	}
	return -1
}

// add inserts s unless the register already holds its dot, keeping dot
// order. Two different writes under one dot can only come from a forged or
// corrupted edit; the one that sorts first by content is kept so that every
// replica makes the same choice.
func (r *Register) add(s Sibling) bool {
	i := sort.Search(len(r.Sibs), func(i int) bool { return !r.Sibs[i].Dot.Less(s.Dot) })
	if i < len(r.Sibs) && r.Sibs[i].Dot == s.Dot {
		if r.Sibs[i].equal(&s) || !siblingContentLess(&s, &r.Sibs[i]) {
			return false
		}
		r.Sibs[i] = s
		return true
	}
	r.Sibs = append(r.Sibs, Sibling{})
	copy(r.Sibs[i+1:], r.Sibs[i:])
	r.Sibs[i] = s
	return true
}

// prune drops siblings overwritten by another sibling of the register and,
// when gen > 0, siblings written in an earlier generation of the document.
// It reports whether anything was dropped.
func (r *Register) prune(gen uint64) bool {
	out := r.Sibs[:0]
	for i := range r.Sibs {
		s := &r.Sibs[i]
		if gen > 0 && s.Gen < gen {
			continue
		}
		dead := false
		for j := range r.Sibs {
			if i != j && s.dominatedBy(&r.Sibs[j]) {
				dead = true
				break
			}
		}
		if !dead {
			out = append(out, *s)
		}
	}
	changed := len(out) != len(r.Sibs)
	for i := len(out); i < len(r.Sibs); i++ {
		r.Sibs[i] = Sibling{}
	}
	r.Sibs = out
	return changed
}

// wouldPrune reports whether prune(gen) would drop anything.
func (r *Register) wouldPrune(gen uint64) bool {
	for i := range r.Sibs {
		s := &r.Sibs[i]
		if gen > 0 && s.Gen < gen {
			return true
		}
		for j := range r.Sibs {
			if i != j && s.dominatedBy(&r.Sibs[j]) {
				return true
			}
		}
	}
	return false
}

// visible returns the indexes of the siblings of generation gen, the ones a
// reader sees; siblings of a later generation wait for their life write.
func (r *Register) visible(gen uint64) []int {
	var out []int
	for i := range r.Sibs {
		if r.Sibs[i].Gen == gen {
			out = append(out, i)
		}
	}
	return out
}

// winner returns the index of the shown sibling of generation gen, or -1:
// the greatest (HLC, site) among real values, a row removal only if every
// visible sibling is one.
func (r *Register) winner(gen uint64) int {
	w := -1
	for i := range r.Sibs {
		s := &r.Sibs[i]
		if s.Gen != gen {
			continue
		}
		if w < 0 {
			w = i
			continue
		}
		sr, wr := s.Value.Kind == KindRemoved, r.Sibs[w].Value.Kind == KindRemoved
		if (wr && !sr) || (sr == wr && s.wins(&r.Sibs[w])) {
			w = i
		}
	}
	return w
}

// overwrite builds the context of a new write of generation gen: every
// visible sibling and everything they overwrote. Siblings of a later
// generation are left alone, so a write never covers a sibling of a higher
// generation than its own (the invariant that makes pruning safe).
func (r *Register) overwrite(gen uint64) Context {
	var ctx Context
	for _, i := range r.visible(gen) {
		s := &r.Sibs[i]
		ctx = ctx.Join(s.Ctx).With(s.Dot)
	}
	return ctx
}

// siblingContentLess is an arbitrary but fixed order on sibling contents.
func siblingContentLess(a, b *Sibling) bool {
	if a.HLC != b.HLC {
		return a.HLC < b.HLC
	}
	if a.Gen != b.Gen {
		return a.Gen < b.Gen
	}
	if a.Value.Kind != b.Value.Kind {
		return a.Value.Kind < b.Value.Kind
	}
	if a.Value.Str != b.Value.Str {
		return a.Value.Str < b.Value.Str
	}
	if a.Value.Int != b.Value.Int {
		return a.Value.Int < b.Value.Int
	}
	if len(a.Ctx) != len(b.Ctx) {
		return len(a.Ctx) < len(b.Ctx)
	}
	for i := range a.Ctx {
		if a.Ctx[i] != b.Ctx[i] {
			return a.Ctx[i].Less(b.Ctx[i])
		}
	}
	return false
}
