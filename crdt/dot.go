package crdt

import (
	"fmt"
	"sort"
)

// SiteID names a site. In a running mesh it is the site's libp2p peer ID
// ("12D3KooW…"); the core treats it as an opaque, totally ordered string.
type SiteID string

// Dot identifies one edit: the origin site and its per-doctype sequence
// number. All writes of one edit share its dot.
type Dot struct {
	Site SiteID
	Seq  uint64
}

// IsZero reports whether d is the zero dot (no edit).
func (d Dot) IsZero() bool { return d.Site == "" && d.Seq == 0 }

func (d Dot) String() string { return fmt.Sprintf("%s:%d", shortSite(d.Site), d.Seq) }

// Less orders dots by site, then sequence.
func (d Dot) Less(o Dot) bool {
	if d.Site != o.Site {
		return d.Site < o.Site
	}
	return d.Seq < o.Seq
}

// shortSite abbreviates long peer IDs in human-readable output.
func shortSite(s SiteID) string {
	if len(s) > 12 {
		return string(s[len(s)-6:])
	}
	return string(s)
}

// Context is a compact causal context for one register: for each site, the
// greatest sequence number of that site's writes that this write overwrote
// (directly or transitively). A site's writes to one register are totally
// ordered, so one number per site is exact (as in dotted version vector sets).
// Entries are sorted by site and have Seq > 0.
type Context []Dot

// Covers reports whether the context includes dot d.
func (c Context) Covers(d Dot) bool {
	i := sort.Search(len(c), func(i int) bool { return c[i].Site >= d.Site })
	return i < len(c) && c[i].Site == d.Site && c[i].Seq >= d.Seq
}

// coversAll reports whether the context includes every sibling's dot.
func (c Context) coversAll(sibs []Sibling) bool {
	for i := range sibs {
		if !c.Covers(sibs[i].Dot) {
			return false
		}
	}
	return true
}

// Get returns the context's entry for a site (0 if absent).
func (c Context) Get(s SiteID) uint64 {
	i := sort.Search(len(c), func(i int) bool { return c[i].Site >= s })
	if i < len(c) && c[i].Site == s {
		return c[i].Seq
	}
	return 0
}

// With returns the context extended to cover d. It never mutates c.
func (c Context) With(d Dot) Context {
	i := sort.Search(len(c), func(i int) bool { return c[i].Site >= d.Site })
	if i < len(c) && c[i].Site == d.Site {
		if c[i].Seq >= d.Seq {
			return c
		}
		out := append(Context(nil), c...)
		out[i].Seq = d.Seq
		return out
	}
	out := make(Context, 0, len(c)+1)
	out = append(out, c[:i]...)
	out = append(out, d)
	return append(out, c[i:]...)
}

// Join returns the pointwise maximum of two contexts.
func (c Context) Join(o Context) Context {
	if len(o) == 0 {
		return c
	}
	if len(c) == 0 {
		return o
	}
	out := make(Context, 0, len(c)+len(o))
	i, j := 0, 0
	for i < len(c) && j < len(o) {
		switch {
		case c[i].Site < o[j].Site:
			out = append(out, c[i])
			i++
		case c[i].Site > o[j].Site:
			out = append(out, o[j])
			j++
		default:
			d := c[i]
			if o[j].Seq > d.Seq {
				d.Seq = o[j].Seq
			}
			out = append(out, d)
			i++
			j++
		}
	}
	out = append(out, c[i:]...)
	return append(out, o[j:]...)
}

// valid reports whether the context is sorted, unique and has no zero entries.
func (c Context) valid() bool {
	for i, d := range c {
		if d.Site == "" || d.Seq == 0 {
			return false
		}
		if i > 0 && c[i-1].Site >= d.Site {
			return false
		}
	}
	return true
}
