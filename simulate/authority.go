package simulate

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"fmt"

	"meridian/crdt"
	"meridian/replica"
)

// The simulated authority: records signed with a key derived from the seed
// travel as documents of the records doctype through the real replicas, as
// they do between nodes, and each site enforces them through the replica's
// hooks with the same decisions a node makes (crdt.AuthorityState.Decide).
// Every site starts with the initial records (the handshake's work in a
// real mesh); later grants and deprecations are written at one running
// site and spread by replication.

const simMesh = "sim"

func (s *Sim) authorityKey() ed25519.PrivateKey {
	seed := sha256.Sum256([]byte(fmt.Sprintf("meridian-sim-authority/%d", s.seed)))
	return ed25519.NewKeyFromSeed(seed[:])
}

func (s *Sim) signRecord(r crdt.Record) *crdt.Record {
	s.recordsIssued++
	r.Mesh = simMesh
	r.Issued = 1_700_000_000_000 + s.now/1000 + s.recordsIssued // strictly increasing
	r.Sign(s.authorityKey())
	return &r
}

// initialRecords: version 1 of Item and Customer active; every site may
// write Items, and Customers too unless a scenario event grants them later.
func (s *Sim) initialRecords() []*crdt.Record {
	schema := crdt.SchemaDigest([]string{"item_name:Data:"})
	out := []*crdt.Record{
		s.signRecord(crdt.Record{Kind: crdt.RecordVersion, Doctype: "Item", Version: 1, Schema: schema, Status: crdt.StatusActive}),
		s.signRecord(crdt.Record{Kind: crdt.RecordVersion, Doctype: "Customer", Version: 1, Schema: schema, Status: crdt.StatusActive}),
	}
	lateCustomers := false
	for _, ev := range s.sc.Events {
		if ev.Kind == "grant" && ev.Doctype == "Customer" {
			lateCustomers = true
		}
	}
	for _, st := range s.sites {
		out = append(out, s.signRecord(crdt.Record{Kind: crdt.RecordGrant, Site: st.id, Doctype: "Item", Read: true, Write: true}))
		if !lateCustomers {
			out = append(out, s.signRecord(crdt.Record{Kind: crdt.RecordGrant, Site: st.id, Doctype: "Customer", Read: true, Write: true}))
		}
	}
	return out
}

// authorityHooks wires a site's replica to its view of the records.
func (s *Sim) authorityHooks(st *site, cfg *replica.Config) {
	if st.auth == nil {
		st.auth = crdt.NewAuthorityState()
		for _, r := range s.initial {
			st.auth.Add(r)
		}
	}
	a := st.auth
	cfg.CanRead = func(peer crdt.SiteID, dt string) bool {
		if !a.Admitted(peer) {
			return false
		}
		if dt == crdt.RecordsDoctype {
			return true
		}
		read, _, _ := a.Grant(peer, dt)
		return read
	}
	cfg.Accept = func(origin crdt.SiteID, dt string, version uint64) error {
		if dt == crdt.RecordsDoctype {
			if origin == st.id || a.Admitted(origin) {
				return nil
			}
			return fmt.Errorf("%w: %s not admitted", replica.ErrWait, origin)
		}
		switch d, why := a.Decide(origin, dt, version); d {
		case crdt.Wait:
			return fmt.Errorf("%w: %s", replica.ErrWait, why)
		case crdt.Flag:
			return fmt.Errorf("%w: %s", replica.ErrFlag, why)
		case crdt.Reject:
			return fmt.Errorf("%s", why)
		}
		return nil
	}
	cfg.VersionOf = func(dt string) uint64 { return 1 } // every site runs version 1 of the masters
}

// loadRecords rejoins the records a restarted site holds in its store.
func (s *Sim) loadRecords(st *site) {
	names, err := st.r.Names(crdt.RecordsDoctype, "", 0)
	if err != nil {
		s.rep.fail("%s: reading records: %v", st.id, err)
		return
	}
	for _, name := range names {
		s.readRecords(st, name)
	}
}

// readRecords joins the records a records document holds; it reports
// whether the site's view changed.
func (s *Sim) readRecords(st *site, name string) bool {
	pub := s.authorityKey().Public().(ed25519.PublicKey)
	changed := false
	_ = st.r.Read(crdt.RecordsDoctype, name, func(d *crdt.Doc) {
		for _, sib := range d.Register(crdt.RecordField) {
			raw, err := base64.StdEncoding.DecodeString(sib.Value.Str)
			if err != nil {
				continue
			}
			r, err := crdt.DecodeRecord(raw)
			if err != nil || r.Mesh != simMesh || !r.ByAuthority() || !r.SignedBy(pub) {
				continue // the simulated sites' IDs are not peer IDs: CheckRecord's other checks do not apply
			}
			if st.auth.Add(r) {
				changed = true
			}
		}
	})
	return changed
}

// issue writes a record at a running site (a head office importing it).
func (s *Sim) issue(r *crdt.Record) {
	for _, st := range s.sites {
		if !st.up {
			continue
		}
		doc, err := st.r.Doc(crdt.RecordsDoctype, r.Key())
		if err != nil {
			s.rep.fail("%s: %v", st.id, err)
			return
		}
		var ops []crdt.Op
		if !doc.Exists() {
			ops = append(ops, crdt.Op{Kind: crdt.OpCreate})
		}
		ops = append(ops, crdt.Op{Kind: crdt.OpSet, Field: crdt.RecordField, Value: crdt.Str(base64.StdEncoding.EncodeToString(crdt.EncodeRecord(r)))})
		dot, err := st.r.Propose(replica.Proposal{Doctype: crdt.RecordsDoctype, Name: r.Key(), Ops: ops})
		if err != nil {
			s.rep.fail("%s: writing record %s: %v", st.id, r.Key(), err)
			return
		}
		st.auth.Add(r)
		st.r.Recheck()
		s.chk.proposed(s, st, docRef{dt: crdt.RecordsDoctype, name: r.Key()}, dot)
		s.rep.Totals.Records++
		s.needReady(st)
		return
	}
}

// authorityEvent handles the scenario's grant and deprecate events.
func (s *Sim) authorityEvent(ev *Event) error {
	if !s.sc.Authority {
		return fmt.Errorf("simulate: a %s event needs authority = true", ev.Kind)
	}
	switch ev.Kind {
	case "grant":
		for _, st := range s.sites {
			s.issue(s.signRecord(crdt.Record{Kind: crdt.RecordGrant, Site: st.id, Doctype: ev.Doctype, Read: true, Write: true}))
		}
	case "deprecate":
		v := uint64(ev.Version)
		if v == 0 {
			v = 1
		}
		s.issue(s.signRecord(crdt.Record{Kind: crdt.RecordVersion, Doctype: ev.Doctype, Version: v,
			Schema: crdt.SchemaDigest([]string{"item_name:Data:"}), Status: crdt.StatusDeprecated}))
	}
	return nil
}
