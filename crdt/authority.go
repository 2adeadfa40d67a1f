package crdt

import (
	"fmt"
	"sort"
)

// RecordsDoctype is the reserved doctype authority records replicate in:
// one document per record key, its "record" field holding the record.
const RecordsDoctype = "Meridian Record"

// RecordField is the field of a records document that holds the record.
const RecordField = "record"

// AuthorityState is the join of every valid record a site has seen.
type AuthorityState struct {
	versions map[string]map[uint64]*Record // doctype → version
	grants   map[SiteID]map[string]*Record // site → doctype
	admits   map[SiteID]*Record
	subs     map[SiteID]map[string]*Record
	reports  map[SiteID]*Record
}

// NewAuthorityState returns an empty state.
func NewAuthorityState() *AuthorityState {
	return &AuthorityState{versions: map[string]map[uint64]*Record{}, grants: map[SiteID]map[string]*Record{},
		admits: map[SiteID]*Record{}, subs: map[SiteID]map[string]*Record{}, reports: map[SiteID]*Record{}}
}

// Add joins a (checked) record into the state and reports whether the
// state changed.
func (s *AuthorityState) Add(r *Record) bool {
	var slot **Record
	switch r.Kind {
	case RecordVersion:
		m := s.versions[r.Doctype]
		if m == nil {
			m = map[uint64]*Record{}
			s.versions[r.Doctype] = m
		}
		old := m[r.Version]
		j := JoinRecords(old, r)
		m[r.Version] = j
		return old == nil || old.Status != j.Status || old.Issued != j.Issued
	case RecordGrant, RecordSubscribe:
		src := s.grants
		if r.Kind == RecordSubscribe {
			src = s.subs
		}
		m := src[r.Site]
		if m == nil {
			m = map[string]*Record{}
			src[r.Site] = m
		}
		old := m[r.Doctype]
		m[r.Doctype] = JoinRecords(old, r)
		return m[r.Doctype] != old
	case RecordAdmit:
		p := s.admits[r.Site]
		slot = &p
		s.admits[r.Site] = JoinRecords(p, r)
		return s.admits[r.Site] != *slot
	case RecordReport:
		old := s.reports[r.Site]
		s.reports[r.Site] = JoinRecords(old, r)
		return s.reports[r.Site] != old
	}
	return false
}

// Current returns the winning record of a key (what an import must beat).
func (s *AuthorityState) Current(r *Record) *Record {
	switch r.Kind {
	case RecordVersion:
		return s.versions[r.Doctype][r.Version]
	case RecordGrant:
		return s.grants[r.Site][r.Doctype]
	case RecordSubscribe:
		return s.subs[r.Site][r.Doctype]
	case RecordAdmit:
		return s.admits[r.Site]
	case RecordReport:
		return s.reports[r.Site]
	}
	return nil
}

// Supersedes reports whether adding r would change the state.
func (s *AuthorityState) Supersedes(r *Record) bool {
	cur := s.Current(r)
	if cur == nil {
		return true
	}
	j := JoinRecords(cur, r)
	if r.Kind == RecordVersion {
		return j.Status != cur.Status
	}
	return j == r
}

// Grant returns a site's current rights on a doctype.
func (s *AuthorityState) Grant(site SiteID, doctype string) (read, write bool, where string) {
	g := s.grants[site][doctype]
	if g == nil {
		return false, false, ""
	}
	return g.Read || g.Write, g.Write, g.Where
}

// Admitted reports whether the authority admitted a site: by an admit
// record, or by a grant of any right — unless a later admit record expels it.
func (s *AuthorityState) Admitted(site SiteID) bool {
	a := s.admits[site]
	var latestGrant *Record
	for _, g := range s.grants[site] {
		if g.Read || g.Write {
			if latestGrant == nil || recordLater(g, latestGrant) {
				latestGrant = g
			}
		}
	}
	switch {
	case a != nil && !a.Admit:
		return latestGrant != nil && recordLater(latestGrant, a)
	case a != nil:
		return true
	}
	return latestGrant != nil
}

// Version returns a doctype version's record (status joined).
func (s *AuthorityState) Version(doctype string, v uint64) *Record { return s.versions[doctype][v] }

// Versions lists a doctype's versions in order.
func (s *AuthorityState) Versions(doctype string) []*Record {
	var out []*Record
	for _, r := range s.versions[doctype] {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out
}

// LatestActive returns the highest active version of a doctype (0: none).
func (s *AuthorityState) LatestActive(doctype string) uint64 {
	var best uint64
	for v, r := range s.versions[doctype] {
		if r.Status == StatusActive && v > best {
			best = v
		}
	}
	return best
}

// Doctypes lists the doctypes with versions, grants or subscriptions.
func (s *AuthorityState) Doctypes() []string {
	set := map[string]bool{}
	for dt := range s.versions {
		set[dt] = true
	}
	for _, m := range s.grants {
		for dt := range m {
			set[dt] = true
		}
	}
	for _, m := range s.subs {
		for dt := range m {
			set[dt] = true
		}
	}
	return sortedMapKeys(set)
}

// Sites lists every site the records mention.
func (s *AuthorityState) Sites() []SiteID {
	set := map[string]bool{}
	for site := range s.grants {
		set[string(site)] = true
	}
	for site := range s.admits {
		set[string(site)] = true
	}
	for site := range s.subs {
		set[string(site)] = true
	}
	for site := range s.reports {
		set[string(site)] = true
	}
	keys := sortedMapKeys(set)
	out := make([]SiteID, len(keys))
	for i, k := range keys {
		out[i] = SiteID(k)
	}
	return out
}

// Subscription returns a site's subscription request for a doctype.
func (s *AuthorityState) Subscription(site SiteID, doctype string) *Record {
	return s.subs[site][doctype]
}

// Report returns a site's latest report.
func (s *AuthorityState) Report(site SiteID) *Record { return s.reports[site] }

// GrantRecord returns a site's current grant record for a doctype.
func (s *AuthorityState) GrantRecord(site SiteID, doctype string) *Record {
	return s.grants[site][doctype]
}

// AdmitRecord returns a site's admit record.
func (s *AuthorityState) AdmitRecord(site SiteID) *Record { return s.admits[site] }

// Decision is what the authority's records say about an origin's writes.
type Decision int

const (
	// Accept: apply the writes.
	Accept Decision = iota
	// Wait: keep them until the records change (a grant or version not
	// known here yet).
	Wait
	// Flag: apply them and report why (a deprecated version).
	Flag
	// Reject: refuse them (read-only, revoked, a retired version).
	Reject
)

// Decide judges writes an origin made to a (non-records) doctype under a
// master version (0: none), with the reason when it is not Accept.
func (s *AuthorityState) Decide(origin SiteID, doctype string, version uint64) (Decision, string) {
	g := s.GrantRecord(origin, doctype)
	switch {
	case g == nil:
		return Wait, fmt.Sprintf("%s has no grant on %s yet", origin, doctype)
	case !g.Write && !g.Read:
		return Reject, fmt.Sprintf("%s's rights on %s were revoked", origin, doctype)
	case !g.Write:
		return Reject, fmt.Sprintf("%s may only read %s, not write it", origin, doctype)
	}
	if version == 0 {
		return Accept, ""
	}
	v := s.Version(doctype, version)
	switch {
	case v == nil:
		return Wait, fmt.Sprintf("version %d of %s is not known here yet", version, doctype)
	case v.Status == StatusRetired:
		return Reject, fmt.Sprintf("%s edits by %s were written under a retired version (%d); that site must move to version %d", doctype, origin, version, s.LatestActive(doctype))
	case v.Status == StatusDeprecated:
		return Flag, fmt.Sprintf("%s by %s written under deprecated version %d of %s", doctype, origin, version, doctype)
	}
	return Accept, ""
}
