package crdt

import (
	"fmt"
	"sort"
	"strings"
)

// Interval is an inclusive range of sequence numbers [Lo, Hi].
type Interval struct {
	Lo, Hi uint64
}

// Seen records which sequence numbers of one site have been delivered: all
// of 1..Max, plus the sorted, disjoint, non-adjacent intervals in Extra that
// lie above Max+1 (the gaps between them are what anti-entropy must fetch).
type Seen struct {
	Max   uint64
	Extra []Interval
}

// Has reports whether seq has been delivered.
func (s *Seen) Has(seq uint64) bool {
	if seq == 0 || seq <= s.Max {
		return true
	}
	i := sort.Search(len(s.Extra), func(i int) bool { return s.Extra[i].Hi >= seq })
	return i < len(s.Extra) && s.Extra[i].Lo <= seq
}

// HasAll reports whether every sequence number in [lo, hi] has been delivered.
func (s *Seen) HasAll(lo, hi uint64) bool {
	if hi <= s.Max {
		return true
	}
	if lo <= s.Max {
		lo = s.Max + 1
	}
	i := sort.Search(len(s.Extra), func(i int) bool { return s.Extra[i].Hi >= lo })
	return i < len(s.Extra) && s.Extra[i].Lo <= lo && s.Extra[i].Hi >= hi
}

// Top returns the greatest delivered sequence number.
func (s *Seen) Top() uint64 {
	if n := len(s.Extra); n > 0 {
		return s.Extra[n-1].Hi
	}
	return s.Max
}

// Add marks [lo, hi] delivered and reports whether anything was new.
func (s *Seen) Add(lo, hi uint64) bool {
	if lo == 0 {
		lo = 1
	}
	if hi < lo || hi <= s.Max {
		return false
	}
	if lo <= s.Max+1 {
		s.Max = hi
		s.absorb()
		return true
	}
	if s.HasAll(lo, hi) {
		return false
	}
	// Insert and coalesce with overlapping or adjacent intervals.
	out := s.Extra[:0:0]
	cur := Interval{lo, hi}
	placed := false
	for _, iv := range s.Extra {
		switch {
		case iv.Hi+1 < cur.Lo:
			out = append(out, iv)
		case cur.Hi+1 < iv.Lo:
			if !placed {
				out = append(out, cur)
				placed = true
			}
			out = append(out, iv)
		default:
			cur.Lo = min(cur.Lo, iv.Lo)
			cur.Hi = max(cur.Hi, iv.Hi)
		}
	}
	if !placed {
		out = append(out, cur)
	}
	s.Extra = out
	return true
}

// absorb folds intervals that became contiguous with Max into it.
func (s *Seen) absorb() {
	i := 0
	for i < len(s.Extra) && s.Extra[i].Lo <= s.Max+1 {
		s.Max = max(s.Max, s.Extra[i].Hi)
		i++
	}
	if i > 0 {
		s.Extra = append(s.Extra[:0:0], s.Extra[i:]...)
	}
}

// Missing returns the intervals that o has delivered and s has not.
func (s *Seen) Missing(o *Seen) []Interval {
	var have []Interval
	if o.Max > 0 {
		have = append(have, Interval{1, o.Max})
	}
	have = append(have, o.Extra...)
	var out []Interval
	for _, iv := range have {
		out = append(out, s.subtract(iv)...)
	}
	return out
}

// subtract returns the parts of iv that s has not delivered.
func (s *Seen) subtract(iv Interval) []Interval {
	if iv.Hi <= s.Max {
		return nil
	}
	if iv.Lo <= s.Max {
		iv.Lo = s.Max + 1
	}
	var out []Interval
	lo := iv.Lo
	for _, e := range s.Extra {
		if e.Hi < lo {
			continue
		}
		if e.Lo > iv.Hi {
			break
		}
		if e.Lo > lo {
			out = append(out, Interval{lo, e.Lo - 1})
		}
		lo = e.Hi + 1
		if lo > iv.Hi {
			return out
		}
	}
	return append(out, Interval{lo, iv.Hi})
}

// Intersect returns the parts of iv that s has delivered.
func (s *Seen) Intersect(iv Interval) []Interval {
	var out []Interval
	lo := iv.Lo
	for _, gap := range s.subtract(iv) {
		if gap.Lo > lo {
			out = append(out, Interval{lo, gap.Lo - 1})
		}
		lo = gap.Hi + 1
	}
	if lo <= iv.Hi {
		out = append(out, Interval{lo, iv.Hi})
	}
	return out
}

// Clone returns a deep copy.
func (s *Seen) Clone() *Seen {
	return &Seen{Max: s.Max, Extra: append([]Interval(nil), s.Extra...)}
}

// VersionVector is what one replica has delivered of one doctype: per site,
// the contiguous prefix and any extra intervals beyond it.
type VersionVector map[SiteID]*Seen

// Has reports whether dot d has been delivered.
func (v VersionVector) Has(d Dot) bool {
	if d.Seq == 0 {
		return true
	}
	s := v[d.Site]
	return s != nil && s.Has(d.Seq)
}

// Get returns the entry for a site, creating it.
func (v VersionVector) Get(site SiteID) *Seen {
	s := v[site]
	if s == nil {
		s = &Seen{}
		v[site] = s
	}
	return s
}

// Add marks [lo, hi] of site delivered.
func (v VersionVector) Add(site SiteID, lo, hi uint64) bool {
	return v.Get(site).Add(lo, hi)
}

// Sites returns the sites in sorted order.
func (v VersionVector) Sites() []SiteID {
	out := make([]SiteID, 0, len(v))
	for s, e := range v {
		if e.Max > 0 || len(e.Extra) > 0 {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Range is a run of sequence numbers of one site.
type Range struct {
	Site   SiteID
	Lo, Hi uint64
}

func (r Range) String() string { return fmt.Sprintf("%s[%d..%d]", shortSite(r.Site), r.Lo, r.Hi) }

// Missing lists the ranges that o has delivered and v has not, sorted by
// site: exactly what v must fetch from o.
func (v VersionVector) Missing(o VersionVector) []Range {
	var out []Range
	empty := &Seen{}
	for _, site := range o.Sites() {
		mine := v[site]
		if mine == nil {
			mine = empty
		}
		for _, iv := range mine.Missing(o[site]) {
			out = append(out, Range{Site: site, Lo: iv.Lo, Hi: iv.Hi})
		}
	}
	return out
}

// Dominates reports whether v has delivered everything o has.
func (v VersionVector) Dominates(o VersionVector) bool { return len(v.Missing(o)) == 0 }

// Clone returns a deep copy.
func (v VersionVector) Clone() VersionVector {
	out := make(VersionVector, len(v))
	for k, s := range v {
		out[k] = s.Clone()
	}
	return out
}

// Equal reports whether both vectors record the same deliveries.
func (v VersionVector) Equal(o VersionVector) bool { return v.Dominates(o) && o.Dominates(v) }

func (v VersionVector) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, site := range v.Sites() {
		if i > 0 {
			b.WriteString(", ")
		}
		s := v[site]
		fmt.Fprintf(&b, "%s:%d", shortSite(site), s.Max)
		for _, iv := range s.Extra {
			fmt.Fprintf(&b, "+[%d..%d]", iv.Lo, iv.Hi)
		}
	}
	b.WriteByte('}')
	return b.String()
}
