package replica

import (
	"sort"

	"github.com/google/btree"
	"meridian/crdt"
)

// dotIndex maps live edits to documents, (doctype, site, seq) → name, and
// knows the stored batches' ranges. It is what anti-entropy serves ranges
// from. It is derived state: kept in memory (a few dozen bytes per live
// edit) and rebuilt from the stored documents when a replica opens, which
// spares two store writes per edit.
type dotIndex struct {
	dots    map[siteOf]*btree.BTreeG[dotEntry]
	batches map[siteOf][]batchRange // sorted by first
	live    int
	free    *btree.FreeListG[dotEntry]
}

type siteOf struct {
	dt   string
	site crdt.SiteID
}

type dotEntry struct {
	seq  uint64
	name string
}

func newDotIndex() *dotIndex {
	return &dotIndex{dots: map[siteOf]*btree.BTreeG[dotEntry]{}, batches: map[siteOf][]batchRange{}}
}

func (x *dotIndex) add(dt string, d crdt.Dot, name string) {
	k := siteOf{dt, d.Site}
	t := x.dots[k]
	if t == nil {
		if x.free == nil {
			x.free = btree.NewFreeListG[dotEntry](64)
		}
		// One free list for all of a replica's trees: btree's default keeps
		// 32 spare nodes (~100 KB) per tree, and there is a tree per origin.
		t = btree.NewWithFreeListG(16, func(a, b dotEntry) bool { return a.seq < b.seq }, x.free)
		x.dots[k] = t
	}
	if _, had := t.ReplaceOrInsert(dotEntry{d.Seq, name}); !had {
		x.live++
	}
}

func (x *dotIndex) remove(dt string, d crdt.Dot) {
	if t := x.dots[siteOf{dt, d.Site}]; t != nil {
		if _, had := t.Delete(dotEntry{seq: d.Seq}); had {
			x.live--
		}
	}
}

// scan calls fn for each live edit of site in [lo, hi], in order.
func (x *dotIndex) scan(dt string, site crdt.SiteID, lo, hi uint64, fn func(seq uint64, name string) bool) {
	t := x.dots[siteOf{dt, site}]
	if t == nil {
		return
	}
	t.AscendRange(dotEntry{seq: lo}, dotEntry{seq: hi + 1}, func(e dotEntry) bool { return fn(e.seq, e.name) })
}

// anyLive reports whether an edit of site in [lo, hi] is live.
func (x *dotIndex) anyLive(dt string, site crdt.SiteID, lo, hi uint64) bool {
	found := false
	x.scan(dt, site, lo, hi, func(uint64, string) bool { found = true; return false })
	return found
}

func (x *dotIndex) addBatch(dt string, site crdt.SiteID, first, last uint64) {
	k := siteOf{dt, site}
	bs := x.batches[k]
	i := sort.Search(len(bs), func(i int) bool { return bs[i].first >= first })
	if i < len(bs) && bs[i].first == first {
		return
	}
	bs = append(bs, batchRange{})
	copy(bs[i+1:], bs[i:])
	bs[i] = batchRange{first, last}
	x.batches[k] = bs
}

func (x *dotIndex) removeBatch(dt string, site crdt.SiteID, first uint64) {
	k := siteOf{dt, site}
	bs := x.batches[k]
	i := sort.Search(len(bs), func(i int) bool { return bs[i].first >= first })
	if i < len(bs) && bs[i].first == first {
		x.batches[k] = append(bs[:i], bs[i+1:]...)
	}
}

// batchOf returns the stored batch holding dot d.
func (x *dotIndex) batchOf(dt string, d crdt.Dot) (batchRange, bool) {
	bs := x.batches[siteOf{dt, d.Site}]
	i := sort.Search(len(bs), func(i int) bool { return bs[i].last >= d.Seq })
	if i < len(bs) && bs[i].first <= d.Seq {
		return bs[i], true
	}
	return batchRange{}, false
}
