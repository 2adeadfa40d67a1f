package crdt

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Authority records: the few decisions that stay central, signed by the
// mesh's authority key (versions, grants, admissions) or by a site's own
// key (its subscription requests and reports). They travel like data, and
// the state they describe is the join of every valid record, so it
// converges whatever the order and can never be rolled back by replaying an
// old record.

// RecordKind says what a record decides.
type RecordKind uint8

const (
	// RecordVersion publishes or moves a master version (authority).
	RecordVersion RecordKind = iota + 1
	// RecordGrant gives (or, with no rights, revokes) a site's rights on a
	// doctype (authority).
	RecordGrant
	// RecordAdmit admits a site to the mesh, or with Admit false expels it (authority).
	RecordAdmit
	// RecordSubscribe asks for a doctype (the site itself).
	RecordSubscribe
	// RecordReport tells the mesh how the site is doing (the site itself).
	RecordReport
)

func (k RecordKind) String() string {
	switch k {
	case RecordVersion:
		return "version"
	case RecordGrant:
		return "grant"
	case RecordAdmit:
		return "admit"
	case RecordSubscribe:
		return "subscribe"
	case RecordReport:
		return "report"
	}
	return fmt.Sprintf("record(%d)", uint8(k))
}

// VersionStatus only ever moves up.
type VersionStatus uint8

const (
	StatusActive VersionStatus = iota + 1
	StatusDeprecated
	StatusRetired
)

func (s VersionStatus) String() string {
	switch s {
	case StatusActive:
		return "active"
	case StatusDeprecated:
		return "deprecated"
	case StatusRetired:
		return "retired"
	}
	return "unknown"
}

// ParseStatus parses active, deprecated or retired.
func ParseStatus(s string) (VersionStatus, error) {
	switch s {
	case "active":
		return StatusActive, nil
	case "deprecated":
		return StatusDeprecated, nil
	case "retired":
		return StatusRetired, nil
	}
	return 0, fmt.Errorf("crdt: version status %q: use active, deprecated or retired", s)
}

// Record is one signed decision. Which fields matter depends on Kind.
type Record struct {
	Kind    RecordKind
	Mesh    string // the mesh it belongs to
	Signer  SiteID // the authority (by its key) or the site itself
	Issued  int64  // Unix ms when signed; orders grants and reports
	Expires int64  // Unix ms after which it no longer counts (0: never)

	Site    SiteID // grant, admit, subscribe, report: the site concerned
	Doctype string // version, grant, subscribe

	Version uint64        // version
	Schema  string        // version: hex digest of the DocType's field list
	Parents []uint64      // version: the versions it follows
	Status  VersionStatus // version

	Read, Write bool   // grant (both false: revoked)
	Where       string // grant: CEL condition on the document, "" for all
	Admit       bool   // admit

	Report *SiteReport // report

	Sig []byte
}

// SiteReport is what a site says of itself.
type SiteReport struct {
	Versions map[string]uint64 // doctype → version in use
	Seen     map[string]uint64 // doctype → edits delivered (sum of its version vector)
	LastSync map[string]int64  // peer → Unix ms of the last exchange
	Failures map[string]int64  // kind → count
	Lag      int64             // ms the bridge is behind (0 without a bridge)
	// VV is the site's version vector per doctype in compact form: origin →
	// the highest seq delivered without a gap.
	VV map[string]map[string]uint64
}

// Key names the lattice slot a record joins: records with the same key
// are merged by the lattice's rule.
func (r *Record) Key() string {
	switch r.Kind {
	case RecordVersion:
		return fmt.Sprintf("version/%s/%d", r.Doctype, r.Version)
	case RecordGrant:
		return fmt.Sprintf("grant/%s/%s", r.Site, r.Doctype)
	case RecordAdmit:
		return "admit/" + string(r.Site)
	case RecordSubscribe:
		return fmt.Sprintf("subscribe/%s/%s", r.Site, r.Doctype)
	case RecordReport:
		return "report/" + string(r.Site)
	}
	return "unknown"
}

// ByAuthority reports whether the record must be signed by the authority.
func (r *Record) ByAuthority() bool {
	return r.Kind == RecordVersion || r.Kind == RecordGrant || r.Kind == RecordAdmit
}

// signedBytes is the canonical CBOR of everything but the signature.
func (r *Record) signedBytes() []byte {
	w := &cborWriter{b: make([]byte, 0, 256)}
	w.array(17)
	w.text("meridian/record/1")
	w.uint(uint64(r.Kind))
	w.text(r.Mesh)
	w.text(string(r.Signer))
	w.int(r.Issued)
	w.int(r.Expires)
	w.text(string(r.Site))
	w.text(r.Doctype)
	w.uint(r.Version)
	w.text(r.Schema)
	w.array(len(r.Parents))
	for _, p := range r.Parents {
		w.uint(p)
	}
	w.uint(uint64(r.Status))
	writeBool(w, r.Read)
	writeBool(w, r.Write)
	w.text(r.Where)
	writeBool(w, r.Admit)
	writeReport(w, r.Report)
	return w.b
}

func writeBool(w *cborWriter, b bool) {
	if b {
		w.b = append(w.b, 0xf5)
	} else {
		w.b = append(w.b, 0xf4)
	}
}

func readBool(r *cborReader) bool {
	if r.err != nil {
		return false
	}
	if len(r.b) == 0 {
		r.fail("unexpected end of input")
		return false
	}
	switch r.b[0] {
	case 0xf5:
		r.b = r.b[1:]
		return true
	case 0xf4:
		r.b = r.b[1:]
		return false
	}
	r.fail("expected a boolean")
	return false
}

func sortedMapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func writeReport(w *cborWriter, rep *SiteReport) {
	if rep == nil {
		w.b = append(w.b, cborNull)
		return
	}
	w.array(6)
	for _, m := range []map[string]uint64{rep.Versions, rep.Seen} {
		w.array(2 * len(m))
		for _, k := range sortedMapKeys(m) {
			w.text(k)
			w.uint(m[k])
		}
	}
	for _, m := range []map[string]int64{rep.LastSync, rep.Failures} {
		w.array(2 * len(m))
		for _, k := range sortedMapKeys(m) {
			w.text(k)
			w.int(m[k])
		}
	}
	w.int(rep.Lag)
	w.array(2 * len(rep.VV))
	for _, dt := range sortedMapKeys(rep.VV) {
		w.text(dt)
		m := rep.VV[dt]
		w.array(2 * len(m))
		for _, k := range sortedMapKeys(m) {
			w.text(k)
			w.uint(m[k])
		}
	}
}

func (r *cborReader) int64() int64 {
	if r.err != nil || len(r.b) == 0 {
		r.fail("unexpected end of input")
		return 0
	}
	v := r.value()
	if v.Kind != KindInt {
		r.fail("expected an integer")
	}
	return v.Int
}

func readReport(r *cborReader) *SiteReport {
	if r.err == nil && len(r.b) > 0 && r.b[0] == cborNull {
		r.b = r.b[1:]
		return nil
	}
	r.arrayN(6, "report")
	rep := &SiteReport{Versions: map[string]uint64{}, Seen: map[string]uint64{}, LastSync: map[string]int64{}, Failures: map[string]int64{}}
	for _, m := range []map[string]uint64{rep.Versions, rep.Seen} {
		n := r.array(maxArrayElements)
		for i := 0; i+1 < n && r.err == nil; i += 2 {
			k := r.text()
			m[k] = r.uint()
		}
	}
	for _, m := range []map[string]int64{rep.LastSync, rep.Failures} {
		n := r.array(maxArrayElements)
		for i := 0; i+1 < n && r.err == nil; i += 2 {
			k := r.text()
			m[k] = r.int64()
		}
	}
	rep.Lag = r.int64()
	rep.VV = map[string]map[string]uint64{}
	n := r.array(maxArrayElements)
	for i := 0; i+1 < n && r.err == nil; i += 2 {
		dt := r.text()
		m := map[string]uint64{}
		rep.VV[dt] = m
		k := r.array(maxArrayElements)
		for j := 0; j+1 < k && r.err == nil; j += 2 {
			site := r.text()
			m[site] = r.uint()
		}
	}
	return rep
}

// Sign signs the record with a private key; Signer is set from it.
func (r *Record) Sign(key ed25519.PrivateKey) {
	r.Signer = PeerIDFromPublicKey(key.Public().(ed25519.PublicKey))
	r.Sig = ed25519.Sign(key, r.signedBytes())
}

// EncodeRecord returns a record's wire form: its signed bytes and signature.
func EncodeRecord(r *Record) []byte {
	w := &cborWriter{}
	w.array(2)
	body := r.signedBytes()
	w.bytes(body)
	w.bytes(r.Sig)
	return w.b
}

// DecodeRecord parses a record (without checking its signature).
func DecodeRecord(data []byte) (*Record, error) {
	outer := &cborReader{b: data}
	outer.arrayN(2, "record")
	body := outer.bytes()
	sig := outer.bytes()
	outer.end("record")
	if outer.err != nil {
		return nil, malformed("record", outer.err)
	}
	r := &cborReader{b: body}
	r.arrayN(17, "record body")
	if d := r.text(); r.err == nil && d != "meridian/record/1" {
		r.fail("unknown record format %q", d)
	}
	rec := &Record{Kind: RecordKind(r.uint()), Mesh: r.text(), Signer: SiteID(r.text()), Issued: r.int64(), Expires: r.int64(),
		Site: SiteID(r.text()), Doctype: r.text(), Version: r.uint(), Schema: r.text()}
	n := r.array(maxArrayElements)
	for i := 0; i < n && r.err == nil; i++ {
		rec.Parents = append(rec.Parents, r.uint())
	}
	rec.Status = VersionStatus(r.uint())
	rec.Read = readBool(r)
	rec.Write = readBool(r)
	rec.Where = r.text()
	rec.Admit = readBool(r)
	rec.Report = readReport(r)
	r.end("record body")
	if r.err != nil {
		return nil, malformed("record", r.err)
	}
	rec.Sig = append([]byte(nil), sig...)
	return rec, nil
}

// Errors from record checks.
var (
	ErrRecordSignature = errors.New("crdt: record signature does not verify")
	ErrRecordInvalid   = errors.New("crdt: invalid record")
	ErrRecordFuture    = errors.New("crdt: record is dated in the future")
	ErrRecordExpired   = errors.New("crdt: record has expired")
)

// CheckRecord verifies a record for a mesh with the given authority public
// key at time nowMs: structure, signer, signature, dates.
func CheckRecord(r *Record, mesh string, authority ed25519.PublicKey, nowMs, maxSkewMs int64) error {
	bad := func(f string, a ...any) error {
		return fmt.Errorf("%w (%s %s): %s", ErrRecordInvalid, r.Kind, r.Key(), fmt.Sprintf(f, a...))
	}
	if r.Mesh != mesh {
		return bad("belongs to mesh %q, not %q", r.Mesh, mesh)
	}
	switch r.Kind {
	case RecordVersion:
		if err := ValidateName("doctype", r.Doctype); err != nil {
			return bad("%v", err)
		}
		if r.Version == 0 || r.Status < StatusActive || r.Status > StatusRetired {
			return bad("version must be ≥ 1 with a status")
		}
		if _, err := hex.DecodeString(r.Schema); err != nil || len(r.Schema) != 64 {
			return bad("schema must be a 64-digit hex digest")
		}
	case RecordGrant, RecordSubscribe:
		if err := ValidateName("doctype", r.Doctype); err != nil {
			return bad("%v", err)
		}
		fallthrough
	case RecordAdmit, RecordReport:
		if _, err := PeerIDPublicKey(string(r.Site)); err != nil {
			return bad("site: %v", err)
		}
	default:
		return bad("unknown kind")
	}
	if r.Kind == RecordReport && r.Report == nil {
		return bad("report without content")
	}
	var pub ed25519.PublicKey
	if r.ByAuthority() {
		pub = authority
		if PeerIDFromPublicKey(authority) != r.Signer {
			return fmt.Errorf("%w: %s record signed by %s, which is not this mesh's authority", ErrRecordSignature, r.Kind, r.Signer)
		}
	} else {
		if r.Signer != r.Site {
			return fmt.Errorf("%w: a %s record of %s signed by %s", ErrRecordSignature, r.Kind, r.Site, r.Signer)
		}
		var err error
		if pub, err = PeerIDPublicKey(string(r.Signer)); err != nil {
			return bad("signer: %v", err)
		}
	}
	if !ed25519.Verify(pub, r.signedBytes(), r.Sig) {
		return fmt.Errorf("%w: %s record %s", ErrRecordSignature, r.Kind, r.Key())
	}
	if r.Issued > nowMs+maxSkewMs {
		return fmt.Errorf("%w: %s record %s issued %d ms from now", ErrRecordFuture, r.Kind, r.Key(), r.Issued-nowMs)
	}
	if r.Expires != 0 && r.Expires < nowMs {
		return fmt.Errorf("%w: %s record %s", ErrRecordExpired, r.Kind, r.Key())
	}
	return nil
}

// recordOrder orders records of one key: the later issued wins, ties by
// signature bytes so every site picks the same one.
func recordLater(a, b *Record) bool {
	if a.Issued != b.Issued {
		return a.Issued > b.Issued
	}
	return string(a.Sig) > string(b.Sig)
}

// JoinRecords merges two records of the same key by the lattice of their
// kind: a version's status is the maximum (its other fields are those of
// the first record that published it: the lowest issued); grants, admits,
// subscriptions and reports are last-writer-wins by issue time.
func JoinRecords(a, b *Record) *Record {
	if a == nil {
		return b
	}
	if b == nil {
		return a
	}
	if a.Kind == RecordVersion {
		first, other := a, b
		if recordLater(a, b) {
			first, other = b, a
		}
		if other.Status > first.Status {
			j := *first
			j.Status = other.Status
			return &j
		}
		return first
	}
	if recordLater(b, a) {
		return b
	}
	return a // the later one, or a when they are the same record
}

// SchemaDigest hashes a DocType's field list (fieldname:fieldtype:options
// lines, sorted) into the digest a version record carries.
func SchemaDigest(fields []string) string {
	s := append([]string(nil), fields...)
	sort.Strings(s)
	h := sha256.Sum256([]byte(strings.Join(s, "\n")))
	return hex.EncodeToString(h[:])
}

// SignedBy reports whether the record's signature is pub's. CheckRecord
// does this and more (it also requires site IDs to be peer IDs, which the
// simulator's sites are not).
func (r *Record) SignedBy(pub ed25519.PublicKey) bool {
	return ed25519.Verify(pub, r.signedBytes(), r.Sig)
}
