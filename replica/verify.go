package replica

import (
	"fmt"

	"meridian/crdt"
)

// NameDigest is a document's name and the digest of its content.
type NameDigest struct {
	Name   string
	Digest crdt.Digest
}

// ContentDigests walks up to limit documents of a doctype after `after`
// (by name) and returns each with a digest computed afresh from its
// content, not the digest kept with it: verification must see what is
// really stored, including damage the replica never made. With bucket ≥ 0
// only the documents of that bucket are digested (names are still walked).
func (r *Replica) ContentDigests(dt, after string, limit, bucket int) ([]NameDigest, error) {
	names, err := r.Names(dt, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]NameDigest, 0, len(names))
	for _, name := range names {
		if bucket >= 0 && crdt.BucketOf(name) != bucket {
			out = append(out, NameDigest{Name: name}) // walked, not digested
			continue
		}
		e, err := r.load(dt, name)
		if err != nil {
			return nil, err
		}
		out = append(out, NameDigest{Name: name, Digest: e.doc.Digest()})
	}
	return out, nil
}

// Tamper rewrites the stored value of a document's field in place, keeping
// the write's dot, the stored digests and everything else: what a disk
// fault or a tool writing behind Meridian's back would do. It exists for
// fault-injection drills and for testing `meridian verify`; the replica
// never calls it. Run it on a store no replica has open.
func Tamper(s DurableStore, dt, name, field string, v crdt.Value) error {
	raw, err := s.Get(docKey(dt, name))
	if err != nil {
		return err
	}
	if raw == nil {
		return fmt.Errorf("replica: no stored %s %q", dt, name)
	}
	doc, digest, err := decodeStoredDoc(dt, name, raw)
	if err != nil {
		return err
	}
	var writes []Write
	prefix := append(docKey(dt, name), sepByte)
	var bad error
	if err := s.Scan(prefix, nil, func(k, val []byte) bool {
		if len(val) < 32 {
			bad = fmt.Errorf("replica: delta record %q is truncated", k)
			return false
		}
		if bad = doc.ApplyPatch(val[32:]); bad != nil {
			return false
		}
		copy(digest[:], val)
		writes = append(writes, Write{Key: append([]byte(nil), k...), Delete: true})
		return true
	}); err != nil {
		return err
	}
	if bad != nil {
		return bad
	}
	found := false
	for i := range doc.Regs {
		if doc.Regs[i].Key != field {
			continue
		}
		for j := range doc.Regs[i].Sibs {
			doc.Regs[i].Sibs[j].Value = v
			found = true
		}
	}
	if !found {
		return fmt.Errorf("replica: %s %q has no field %s to tamper with", dt, name, field)
	}
	enc, err := crdt.EncodeDoc(doc)
	if err != nil {
		return err
	}
	base := append(append([]byte(nil), digest[:]...), enc...)
	return s.Apply(append(writes, Write{Key: docKey(dt, name), Value: base}))
}

// ServeRanges returns the serve messages that would answer a pull of the
// given ranges from `to` (limited to what this replica holds durably, with
// to's row filters applied): the content of an offline bundle.
func (r *Replica) ServeRanges(to crdt.SiteID, dt string, ranges []crdt.Range) ([]Message, error) {
	ours := r.durableVV[dt]
	if ours == nil {
		return nil, nil
	}
	var rs []crdt.Range
	for _, rg := range ranges {
		s := ours[rg.Site]
		if s == nil {
			continue
		}
		for _, iv := range s.Intersect(crdt.Interval{Lo: rg.Lo, Hi: rg.Hi}) {
			rs = append(rs, crdt.Range{Site: rg.Site, Lo: iv.Lo, Hi: iv.Hi})
		}
	}
	saved := r.outbox
	r.outbox = nil
	err := r.serveRanges(to, dt, rs)
	out := r.outbox
	r.outbox = saved
	return out, err
}
