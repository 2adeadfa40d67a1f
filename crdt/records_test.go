package crdt

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"

	"pgregory.net/rapid"
)

func keyOf(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("record-test/" + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

func siteOf(name string) SiteID { return PeerIDFromPublicKey(keyOf(name).Public().(ed25519.PublicKey)) }

const testMesh = "mesh-1"

var authKey = keyOf("authority")

func authPub() ed25519.PublicKey { return authKey.Public().(ed25519.PublicKey) }

func signed(r Record, key ed25519.PrivateKey) *Record {
	r.Mesh = testMesh
	r.Sign(key)
	return &r
}

// a random stream of records a mesh might see
func randomRecords(t *rapid.T) []*Record {
	sites := []string{"s1", "s2", "s3"}
	var out []*Record
	n := rapid.IntRange(1, 25).Draw(t, "n")
	for i := 0; i < n; i++ {
		issued := int64(rapid.IntRange(1, 50).Draw(t, "issued")) * 1000
		site := siteOf(rapid.SampledFrom(sites).Draw(t, "site"))
		switch rapid.IntRange(0, 4).Draw(t, "kind") {
		case 0:
			v := uint64(rapid.IntRange(1, 3).Draw(t, "v"))
			out = append(out, signed(Record{Kind: RecordVersion, Issued: issued, Doctype: "Item", Version: v,
				Schema: SchemaDigest([]string{fmt.Sprint(v)}), Status: VersionStatus(rapid.IntRange(1, 3).Draw(t, "status"))}, authKey))
		case 1:
			out = append(out, signed(Record{Kind: RecordGrant, Issued: issued, Site: site, Doctype: "Item",
				Read: rapid.Bool().Draw(t, "read"), Write: rapid.Bool().Draw(t, "write")}, authKey))
		case 2:
			out = append(out, signed(Record{Kind: RecordAdmit, Issued: issued, Site: site, Admit: rapid.Bool().Draw(t, "admit")}, authKey))
		case 3:
			name := rapid.SampledFrom(sites).Draw(t, "subscriber")
			out = append(out, signed(Record{Kind: RecordSubscribe, Issued: issued, Site: siteOf(name), Doctype: "Item"}, keyOf(name)))
		default:
			name := rapid.SampledFrom(sites).Draw(t, "reporter")
			out = append(out, signed(Record{Kind: RecordReport, Issued: issued, Site: siteOf(name),
				Report: &SiteReport{Versions: map[string]uint64{"Item": 1}, Seen: map[string]uint64{"Item": uint64(issued)}}}, keyOf(name)))
		}
	}
	return out
}

// summary describes everything a state decides, for comparison.
func summary(s *AuthorityState) string {
	out := ""
	for _, site := range []string{"s1", "s2", "s3"} {
		id := siteOf(site)
		r, w, _ := s.Grant(id, "Item")
		sub := s.Subscription(id, "Item")
		rep := s.Report(id)
		out += fmt.Sprintf("%s admitted=%v read=%v write=%v sub=%v rep=%v\n", site, s.Admitted(id), r, w, sub != nil && sub.Issued > 0, rep != nil && rep.Issued > 0)
		if rep != nil {
			out += fmt.Sprintf("  report %d\n", rep.Issued)
		}
	}
	for _, v := range s.Versions("Item") {
		out += fmt.Sprintf("v%d %s %s\n", v.Version, v.Status, v.Schema[:8])
	}
	return out
}

func TestRecordLatticesConvergeUnderAnyOrderAndDuplication(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		recs := randomRecords(t)
		for _, r := range recs {
			if err := CheckRecord(r, testMesh, authPub(), 1e9, 0); err != nil {
				t.Fatalf("a valid record was refused: %v", err)
			}
		}
		a := NewAuthorityState()
		for _, r := range recs {
			a.Add(r)
		}
		b := NewAuthorityState()
		order := rapid.Permutation(recs).Draw(t, "order")
		for _, r := range order {
			b.Add(r)
			if rapid.Bool().Draw(t, "dup") {
				b.Add(r)
			}
		}
		if summary(a) != summary(b) {
			t.Fatalf("states differ:\n%s\n---\n%s", summary(a), summary(b))
		}
		// Replaying any old record afterwards changes nothing.
		before := summary(b)
		for _, r := range recs {
			b.Add(r)
		}
		if summary(b) != before {
			t.Fatal("replaying records changed the state")
		}
	})
}

func TestVersionStatusNeverMovesBack(t *testing.T) {
	s := NewAuthorityState()
	schema := SchemaDigest([]string{"item_name:Data:"})
	retired := signed(Record{Kind: RecordVersion, Issued: 3000, Doctype: "Item", Version: 1, Schema: schema, Status: StatusRetired}, authKey)
	active := signed(Record{Kind: RecordVersion, Issued: 9000, Doctype: "Item", Version: 1, Schema: schema, Status: StatusActive}, authKey)
	s.Add(retired)
	if s.Supersedes(active) {
		t.Fatal("a later record marking a retired version active would change the state")
	}
	s.Add(active)
	if got := s.Version("Item", 1).Status; got != StatusRetired {
		t.Fatalf("status %s; a retired version stays retired", got)
	}
}

func TestRecordsNotSignedByTheAuthorityAreRejected(t *testing.T) {
	impostor := keyOf("impostor")
	for name, r := range map[string]*Record{
		"grant by another key":   signed(Record{Kind: RecordGrant, Issued: 1, Site: siteOf("s1"), Doctype: "Item", Read: true}, impostor),
		"version by a site":      signed(Record{Kind: RecordVersion, Issued: 1, Doctype: "Item", Version: 1, Schema: SchemaDigest(nil), Status: StatusActive}, keyOf("s1")),
		"report forged for s2":   signed(Record{Kind: RecordReport, Issued: 1, Site: siteOf("s2"), Report: &SiteReport{}}, keyOf("s1")),
		"subscribe forged by s1": signed(Record{Kind: RecordSubscribe, Issued: 1, Site: siteOf("s2"), Doctype: "Item"}, keyOf("s1")),
	} {
		if err := CheckRecord(r, testMesh, authPub(), 10, 0); !errors.Is(err, ErrRecordSignature) {
			t.Errorf("%s: err = %v; want ErrRecordSignature", name, err)
		}
	}
	altered := signed(Record{Kind: RecordGrant, Issued: 1, Site: siteOf("s1"), Doctype: "Item", Read: true}, authKey)
	altered.Write = true
	if err := CheckRecord(altered, testMesh, authPub(), 10, 0); !errors.Is(err, ErrRecordSignature) {
		t.Errorf("altered grant: err = %v", err)
	}
}

func TestFutureDatedExpiredAndMalformedRecordsAreRejected(t *testing.T) {
	now := int64(1_000_000)
	future := signed(Record{Kind: RecordGrant, Issued: now + 3_600_000, Site: siteOf("s1"), Doctype: "Item", Read: true}, authKey)
	if err := CheckRecord(future, testMesh, authPub(), now, 300_000); !errors.Is(err, ErrRecordFuture) {
		t.Errorf("future: %v", err)
	}
	expired := signed(Record{Kind: RecordGrant, Issued: now - 10, Expires: now - 1, Site: siteOf("s1"), Doctype: "Item", Read: true}, authKey)
	if err := CheckRecord(expired, testMesh, authPub(), now, 300_000); !errors.Is(err, ErrRecordExpired) {
		t.Errorf("expired: %v", err)
	}
	other := signed(Record{Kind: RecordGrant, Issued: now, Site: siteOf("s1"), Doctype: "Item", Read: true}, authKey)
	other.Mesh = "other"
	other.Sign(authKey)
	if err := CheckRecord(other, testMesh, authPub(), now, 0); !errors.Is(err, ErrRecordInvalid) {
		t.Errorf("other mesh: %v", err)
	}
	badSite := signed(Record{Kind: RecordGrant, Issued: now, Site: "not-a-peer-id", Doctype: "Item", Read: true}, authKey)
	if err := CheckRecord(badSite, testMesh, authPub(), now, 0); !errors.Is(err, ErrRecordInvalid) {
		t.Errorf("bad site: %v", err)
	}
	for _, garbage := range [][]byte{nil, {0x82, 0x40}, []byte("grant me everything")} {
		if _, err := DecodeRecord(garbage); !errors.Is(err, ErrMalformed) {
			t.Errorf("DecodeRecord(%q) = %v", garbage, err)
		}
	}
	good := signed(Record{Kind: RecordReport, Issued: now, Site: siteOf("s1"), Report: &SiteReport{Versions: map[string]uint64{"Item": 2}, LastSync: map[string]int64{"x": 5}}}, keyOf("s1"))
	back, err := DecodeRecord(EncodeRecord(good))
	if err != nil || CheckRecord(back, testMesh, authPub(), now, 0) != nil || back.Report.Versions["Item"] != 2 {
		t.Fatalf("round trip: %v", err)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(EncodeRecord(signed(Record{Kind: RecordGrant, Issued: 5, Site: siteOf("s1"), Doctype: "Item", Read: true, Where: `doc.customer_group == "Retail"`}, authKey)))
	f.Add(EncodeRecord(signed(Record{Kind: RecordReport, Issued: 5, Site: siteOf("s1"), Report: &SiteReport{Versions: map[string]uint64{"Item": 1}}}, keyOf("s1"))))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeRecord(data)
		if err != nil {
			return
		}
		_ = CheckRecord(r, testMesh, authPub(), 10, 0)
		back, err := DecodeRecord(EncodeRecord(r))
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if string(back.signedBytes()) != string(r.signedBytes()) {
			t.Fatal("re-encoding changed the signed bytes")
		}
	})
}

// A record seen again (a re-import, a duplicate delivery) changes nothing
// and is not reported as new.
func TestTheSameRecordAgainChangesNothing(t *testing.T) {
	s := NewAuthorityState()
	g := signed(Record{Kind: RecordGrant, Issued: 5000, Site: siteOf("a"), Doctype: "Item", Read: true}, authKey)
	if !s.Add(g) {
		t.Fatal("a first grant changed nothing")
	}
	again := *g // another copy of the same signed record
	if s.Supersedes(&again) || s.Add(&again) {
		t.Fatal("the same grant again counts as new")
	}
	v := signed(Record{Kind: RecordVersion, Issued: 5000, Doctype: "Item", Version: 1, Schema: SchemaDigest([]string{"x"}), Status: StatusActive}, authKey)
	s.Add(v)
	vv := *v
	if s.Supersedes(&vv) || s.Add(&vv) {
		t.Fatal("the same version again counts as new")
	}
}
