package node

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"meridian/crdt"
	"meridian/replica"
)

const testMesh = "m"

// newTestAuthority is an authority (key 100) enforced at site `self`.
func newTestAuthority(t *testing.T, self crdt.SiteID, pins map[string]uint64) *authority {
	t.Helper()
	pub, _ := testKey(100)
	a, err := newAuthority(Config{Authority: string(crdt.PeerIDFromPublicKey(pub)), Mesh: testMesh, MaxClockSkew: Duration(time.Minute), Versions: pins}, self)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

var issued int64 = 1_000_000

func signed(t *testing.T, a *authority, r crdt.Record, by byte) *crdt.Record {
	t.Helper()
	issued += 1000
	r.Mesh, r.Issued = testMesh, issued
	_, key := testKey(by)
	r.Sign(key)
	return &r
}

func add(t *testing.T, a *authority, r *crdt.Record) {
	t.Helper()
	if err := a.check(r); err != nil {
		t.Fatalf("a valid record was refused: %v", err)
	}
	a.add(r)
}

func schema(v int) string {
	return crdt.SchemaDigest([]string{"item_name:Data:", strings.Repeat("x", v)})
}

func TestAcceptDecidesByGrantAndVersion(t *testing.T) {
	self, w, ro, rev, none := siteOf(1), siteOf(2), siteOf(3), siteOf(4), siteOf(5)
	a := newTestAuthority(t, self, nil)
	add(t, a, signed(t, a, crdt.Record{Kind: crdt.RecordGrant, Site: w, Doctype: "Item", Write: true, Read: true}, 100))
	add(t, a, signed(t, a, crdt.Record{Kind: crdt.RecordGrant, Site: ro, Doctype: "Item", Read: true}, 100))
	add(t, a, signed(t, a, crdt.Record{Kind: crdt.RecordGrant, Site: rev, Doctype: "Item", Write: true}, 100))
	add(t, a, signed(t, a, crdt.Record{Kind: crdt.RecordGrant, Site: rev, Doctype: "Item"}, 100)) // later: revoked
	for v, st := range map[uint64]crdt.VersionStatus{1: crdt.StatusRetired, 2: crdt.StatusDeprecated, 3: crdt.StatusActive} {
		add(t, a, signed(t, a, crdt.Record{Kind: crdt.RecordVersion, Doctype: "Item", Version: v, Schema: schema(int(v)), Status: st}, 100))
	}
	cases := []struct {
		name    string
		origin  crdt.SiteID
		version uint64
		want    []error // all must match; nil: accepted
	}{
		{"write grant, no version", w, 0, nil},
		{"write grant, active version", w, 3, nil},
		{"no grant yet: held", none, 0, []error{replica.ErrWait, ErrNoGrant}},
		{"read-only", ro, 0, []error{ErrReadOnly}},
		{"revoked", rev, 0, []error{ErrNoGrant}},
		{"retired version", w, 1, []error{ErrRetired}},
		{"deprecated version: applied and flagged", w, 2, []error{replica.ErrFlag}},
		{"unknown version: held", w, 9, []error{replica.ErrWait}},
	}
	for _, c := range cases {
		err := a.accept(c.origin, "Item", c.version)
		if c.want == nil {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		for _, want := range c.want {
			if !errors.Is(err, want) {
				t.Errorf("%s: %v, want %v", c.name, err, want)
			}
		}
		if c.name == "read-only" && errors.Is(err, replica.ErrWait) {
			t.Errorf("a read-only origin's write is held instead of rejected")
		}
	}
	if err := a.accept(w, "Item", 1); err == nil || !strings.Contains(err.Error(), "move to version 3") {
		t.Errorf("the retired-version reason does not name the version to move to: %v", err)
	}
	// Records: admitted origins and this site; others wait for admission.
	if err := a.accept(self, crdt.RecordsDoctype, 0); err != nil {
		t.Error(err)
	}
	if err := a.accept(w, crdt.RecordsDoctype, 0); err != nil {
		t.Error(err)
	}
	if err := a.accept(none, crdt.RecordsDoctype, 0); !errors.Is(err, replica.ErrWait) {
		t.Errorf("records from a site not admitted: %v", err)
	}
}

func TestCanReadAdmissionAndVersionOf(t *testing.T) {
	self, r, x := siteOf(1), siteOf(2), siteOf(3)
	a := newTestAuthority(t, self, map[string]uint64{"Customer": 1})
	if a.canRead(r, "Item") || a.canRead(r, crdt.RecordsDoctype) || a.admitted(r) {
		t.Fatal("a site with no record reads or is admitted")
	}
	add(t, a, signed(t, a, crdt.Record{Kind: crdt.RecordGrant, Site: r, Doctype: "Item", Read: true}, 100))
	if !a.canRead(r, "Item") || !a.canRead(r, crdt.RecordsDoctype) || a.canRead(r, "Customer") {
		t.Fatal("a read grant on Item admits the site and lets it read Item (and records) only")
	}
	add(t, a, signed(t, a, crdt.Record{Kind: crdt.RecordAdmit, Site: x, Admit: true}, 100))
	if !a.admitted(x) || a.canRead(x, "Item") {
		t.Fatal("an admitted site without a grant reads records only")
	}
	add(t, a, signed(t, a, crdt.Record{Kind: crdt.RecordAdmit, Site: r, Admit: false}, 100)) // expelled, later than its grant
	if a.admitted(r) || a.canRead(r, "Item") {
		t.Fatal("an expelled site still reads")
	}
	if !a.admitted(self) {
		t.Fatal("a site always trusts itself")
	}
	add(t, a, signed(t, a, crdt.Record{Kind: crdt.RecordVersion, Doctype: "Item", Version: 4, Schema: schema(4), Status: crdt.StatusActive}, 100))
	add(t, a, signed(t, a, crdt.Record{Kind: crdt.RecordVersion, Doctype: "Item", Version: 5, Schema: schema(5), Status: crdt.StatusActive}, 100))
	add(t, a, signed(t, a, crdt.Record{Kind: crdt.RecordVersion, Doctype: "Item", Version: 5, Schema: schema(5), Status: crdt.StatusDeprecated}, 100))
	if v := a.versionOf("Item"); v != 4 {
		t.Fatalf("versionOf Item = %d, want the latest active (4)", v)
	}
	if v := a.versionOf("Customer"); v != 1 {
		t.Fatalf("versionOf Customer = %d, want the pinned 1", v)
	}
}

func TestRowConditions(t *testing.T) {
	self, p := siteOf(1), siteOf(2)
	a := newTestAuthority(t, self, nil)
	doc := func(ops ...crdt.Op) *crdt.Doc {
		d := crdt.NewDoc("Customer", "C1")
		if _, err := d.Write(crdt.Dot{Site: self, Seq: 1}, crdt.MakeHLC(1000, 0), append([]crdt.Op{{Kind: crdt.OpCreate}}, ops...)); err != nil {
			t.Fatal(err)
		}
		return d
	}
	set := func(f string, v crdt.Value) crdt.Op { return crdt.Op{Kind: crdt.OpSet, Field: f, Value: v} }
	wholesale := doc(set("customer_group", crdt.Str("Wholesale")), set("credit_limit", crdt.MustDec("1500.5")), set("priority", crdt.Int(3)),
		crdt.Op{Kind: crdt.OpSet, Table: "accounts", Row: "r1", Field: "company", Value: crdt.Str("ACME")})
	retail := doc(set("customer_group", crdt.Str("Retail")))
	cases := []struct {
		where string
		doc   *crdt.Doc
		want  bool
	}{
		{`doc.customer_group == "Wholesale"`, wholesale, true},
		{`doc.customer_group == "Wholesale"`, retail, false},
		{`doc.credit_limit > 1000`, wholesale, true}, // decimal vs int literal
		{`doc.priority >= 3.0`, wholesale, true},     // int vs double literal
		{`doc.credit_limit > 1000`, retail, false},   // missing field: not visible, no panic
		{`doc.accounts.exists(r, r.company == "ACME")`, wholesale, true},
		{`doc.name.startsWith("C")`, retail, true},
	}
	for _, c := range cases {
		a.add(signed(t, a, crdt.Record{Kind: crdt.RecordGrant, Site: p, Doctype: "Customer", Read: true, Where: c.where}, 100))
		f := a.filter(p, "Customer")
		if f == nil {
			t.Fatalf("%s: no filter", c.where)
		}
		if got := f(c.doc); got != c.want {
			t.Errorf("%s on %s: %v, want %v", c.where, c.doc.View().Fields["customer_group"], got, c.want)
		}
	}
	a.add(signed(t, a, crdt.Record{Kind: crdt.RecordGrant, Site: p, Doctype: "Customer", Read: true}, 100))
	if a.filter(p, "Customer") != nil {
		t.Fatal("a grant without a condition filters")
	}
	if err := CompileCondition(`doc.customer_group ==`); err == nil || !strings.Contains(err.Error(), "doc.customer_group ==") {
		t.Fatalf("a malformed condition: %v", err)
	}
	if err := CompileCondition(`size(doc) + 1`); err == nil || !strings.Contains(err.Error(), "true or false") {
		t.Fatalf("a condition that is a number was accepted: %v", err)
	}
	// A condition that does not compile (signed elsewhere) shows nothing.
	a.add(signed(t, a, crdt.Record{Kind: crdt.RecordGrant, Site: p, Doctype: "Customer", Read: true, Where: "((("}, 100))
	if f := a.filter(p, "Customer"); f == nil || f(wholesale) {
		t.Fatal("an uncompilable condition shows documents")
	}
}

func TestRecordsFromOtherKeysAndBestRecord(t *testing.T) {
	a := newTestAuthority(t, siteOf(1), nil)
	forged := signed(t, a, crdt.Record{Kind: crdt.RecordGrant, Site: siteOf(2), Doctype: "Item", Write: true}, 7)
	if err := a.check(forged); !errors.Is(err, crdt.ErrRecordSignature) {
		t.Fatalf("a grant signed by another key: %v", err)
	}
	report := signed(t, a, crdt.Record{Kind: crdt.RecordReport, Site: siteOf(2), Report: &crdt.SiteReport{}}, 3) // signed by site 3 for site 2
	if err := a.check(report); !errors.Is(err, crdt.ErrRecordSignature) {
		t.Fatalf("a forged site report: %v", err)
	}
	active := signed(t, a, crdt.Record{Kind: crdt.RecordVersion, Doctype: "Item", Version: 1, Schema: schema(1), Status: crdt.StatusActive}, 100)
	retired := signed(t, a, crdt.Record{Kind: crdt.RecordVersion, Doctype: "Item", Version: 1, Schema: schema(1), Status: crdt.StatusRetired}, 100)
	a.add(retired)
	a.add(active) // later but lower: the retired one still decides
	if b := a.bestOf(active.Key()); b != retired {
		t.Fatalf("best record %v, want the retired one", b.Status)
	}
	g1 := signed(t, a, crdt.Record{Kind: crdt.RecordGrant, Site: siteOf(2), Doctype: "Item", Read: true}, 100)
	g2 := signed(t, a, crdt.Record{Kind: crdt.RecordGrant, Site: siteOf(2), Doctype: "Item", Write: true}, 100)
	a.add(g2)
	a.add(g1)
	if a.bestOf(g1.Key()) != g2 || a.supersedes(g1) {
		t.Fatal("an older grant replayed later decides")
	}
}

func TestConsumersStatusAndBehind(t *testing.T) {
	self, r, q := siteOf(1), siteOf(2), siteOf(3)
	a := newTestAuthority(t, self, nil)
	add(t, a, signed(t, a, crdt.Record{Kind: crdt.RecordSubscribe, Site: q, Doctype: "Item"}, 3))
	add(t, a, signed(t, a, crdt.Record{Kind: crdt.RecordGrant, Site: r, Doctype: "Item", Read: true, Where: `doc.x == 1`}, 100))
	add(t, a, signed(t, a, crdt.Record{Kind: crdt.RecordReport, Site: r, Report: &crdt.SiteReport{
		Versions: map[string]uint64{"Item": 2}, VV: map[string]map[string]uint64{"Item": {string(self): 7}}}}, 2))
	mine := crdt.VersionVector{}
	mine.Add(self, 1, 10)
	cs := a.consumers(map[string]crdt.VersionVector{"Item": mine})
	by := map[crdt.SiteID]Consumer{}
	for _, c := range cs {
		by[crdt.SiteID(c.Site)] = c
	}
	if c := by[q]; c.Status != "requested" {
		t.Fatalf("a subscription without a grant: %+v", c)
	}
	if c := by[r]; c.Status != "read" || c.Where != `doc.x == 1` || c.Version != 2 || c.Behind != 3 || c.LastSeen == 0 {
		t.Fatalf("a reporting reader: %+v (want 3 behind: it reported 7 of this site's 10)", c)
	}
}

// A refused edit answers with the status that says why.
func TestEditStatusSaysWhyAnEditWasRefused(t *testing.T) {
	for _, c := range []struct {
		err    error
		preset int
		want   int
	}{
		{fmt.Errorf("x: %w", replica.ErrTooLarge), http.StatusOK, http.StatusRequestEntityTooLarge},
		{fmt.Errorf("x: %w", ErrReadOnly), http.StatusOK, http.StatusForbidden},
		{errors.New("Item X already exists"), http.StatusConflict, http.StatusConflict},
		{errors.New("bad value"), http.StatusOK, http.StatusBadRequest},
	} {
		if got := editStatus(c.err, c.preset); got != c.want {
			t.Errorf("%v (handler said %d): %d, want %d", c.err, c.preset, got, c.want)
		}
	}
}
