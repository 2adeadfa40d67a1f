package crdt

import (
	"errors"
	"fmt"
	"sort"

	"github.com/fxamacker/cbor/v2"
)

// Canonical encoding: CBOR with the Core Deterministic options of RFC 8949
// §4.2.1. Digests and signatures are computed over these bytes only.
var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

// Decoding limits: generous for real documents, small enough that a hostile
// input cannot make the decoder allocate without bound.
const (
	maxArrayElements = 1 << 20
	maxNesting       = 12
)

func init() {
	var err error
	encMode, err = cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	decMode, err = cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		MaxNestedLevels:   maxNesting,
		MaxArrayElements:  maxArrayElements,
		MaxMapPairs:       maxArrayElements,
		UTF8:              cbor.UTF8RejectInvalid,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

// Marshal encodes v canonically.
func Marshal(v any) ([]byte, error) { return encMode.Marshal(v) }

// Unmarshal decodes canonical CBOR with the package's strict limits; it
// rejects trailing bytes.
func Unmarshal(data []byte, v any) error {
	rest, err := decMode.UnmarshalFirst(data, v)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("%d trailing bytes", len(rest))
	}
	return nil
}

// ErrMalformed marks bytes that do not decode to a valid value.
var ErrMalformed = errors.New("crdt: malformed encoding")

func malformed(what string, err error) error {
	return fmt.Errorf("%w: %s: %v", ErrMalformed, what, err)
}

// MarshalCBOR encodes a value compactly: null, a text string, an integer,
// or a one-element array holding a decimal's canonical text.
func (v Value) MarshalCBOR() ([]byte, error) {
	switch v.Kind {
	case KindNull:
		return []byte{0xf6}, nil
	case KindStr:
		return encMode.Marshal(v.Str)
	case KindInt:
		return encMode.Marshal(v.Int)
	case KindDec:
		return encMode.Marshal([1]string{v.Str})
	case KindRemoved:
		return []byte{0xf7}, nil // CBOR undefined
	}
	return nil, fmt.Errorf("crdt: cannot encode value kind %d", v.Kind)
}

// UnmarshalCBOR decodes a value and checks it is well formed.
func (v *Value) UnmarshalCBOR(data []byte) error {
	if len(data) == 0 {
		return errors.New("empty value")
	}
	switch data[0] >> 5 {
	case 0, 1:
		var i int64
		if err := decMode.Unmarshal(data, &i); err != nil {
			return err
		}
		*v = Int(i)
	case 3:
		var s string
		if err := decMode.Unmarshal(data, &s); err != nil {
			return err
		}
		*v = Str(s)
	case 4:
		var a [1]string
		if err := decMode.Unmarshal(data, &a); err != nil {
			return err
		}
		*v = Value{Kind: KindDec, Str: a[0]}
	case 7:
		switch {
		case len(data) == 1 && data[0] == 0xf6:
			*v = Null
		case len(data) == 1 && data[0] == 0xf7:
			*v = Removed
		default:
			return fmt.Errorf("unexpected simple value 0x%x", data[0])
		}
	default:
		return fmt.Errorf("unexpected CBOR major type %d for a value", data[0]>>5)
	}
	return v.Validate()
}

// siteTable interns site IDs so each appears once per encoded object. A
// document has writes of a handful of sites, so a short slice with a
// one-entry cache beats a map.
type siteTable struct {
	ids  []SiteID
	last SiteID
	lidx uint64
}

func newSiteTable() *siteTable { return &siteTable{} }

func (t *siteTable) add(s SiteID) {
	if s == t.last && len(t.ids) > 0 {
		return
	}
	for _, x := range t.ids {
		if x == s {
			t.last = s
			return
		}
	}
	t.ids = append(t.ids, s)
	t.last = s
}

// seal sorts the table so the encoding does not depend on insertion order.
func (t *siteTable) seal() []string {
	sort.Slice(t.ids, func(i, j int) bool { return t.ids[i] < t.ids[j] })
	out := make([]string, len(t.ids))
	for i, s := range t.ids {
		out[i] = string(s)
	}
	t.last = ""
	return out
}

// num returns a site's index in the sealed table.
func (t *siteTable) num(s SiteID) uint64 {
	if s == t.last && t.last != "" {
		return t.lidx
	}
	var i int
	if len(t.ids) <= 8 {
		for i = 0; i < len(t.ids) && t.ids[i] != s; i++ {
		}
	} else {
		i = sort.Search(len(t.ids), func(i int) bool { return t.ids[i] >= s })
	}
	t.last, t.lidx = s, uint64(i)
	return uint64(i)
}

// sizeHint estimates the encoded size of a document, to allocate once.
func (d *Doc) sizeHint() int {
	n := 64 + len(d.Doctype) + len(d.Name)
	for i := range d.Regs {
		n += len(d.Regs[i].Key) + 4
		for j := range d.Regs[i].Sibs {
			s := &d.Regs[i].Sibs[j]
			n += 24 + 12*len(s.Ctx) + len(s.Value.Str)
		}
	}
	return n
}

func (t *siteTable) addDoc(d *Doc) {
	for i := range d.Regs {
		for _, s := range d.Regs[i].Sibs {
			t.add(s.Dot.Site)
			for _, c := range s.Ctx {
				t.add(c.Site)
			}
		}
	}
}

// writeRegs encodes registers with site indexes from the sealed table t:
// [[key, [[site, seq, hlc, gen, [site, seq, …], value], …]], …].
func (t *siteTable) writeRegs(w *cborWriter, regs []Register) {
	w.array(len(regs))
	for i := range regs {
		r := &regs[i]
		w.array(2)
		w.text(r.Key)
		writeSibs(w, r.Sibs, t.num)
	}
}

// readSites reads a site table, which must be sorted and unique.
func readSites(r *cborReader) []SiteID {
	n := r.array(maxArrayElements)
	ids := make([]SiteID, 0, min(n, 64))
	for i := 0; i < n && r.err == nil; i++ {
		s := r.text()
		if r.err != nil {
			break
		}
		if s == "" {
			r.fail("empty site ID")
		} else if i > 0 && string(ids[i-1]) >= s {
			r.fail("site table not sorted")
		}
		ids = append(ids, SiteID(s))
	}
	return ids
}

// readRegs decodes registers, checking every invariant the rest of the
// package relies on: sorted unique keys, sorted unique dots, well-formed
// contexts, valid site indexes, life writes holding positive integers.
func readRegs(r *cborReader, ids []SiteID) []Register {
	site := func(i uint64) SiteID {
		if i >= uint64(len(ids)) {
			r.fail("site index %d out of range", i)
			return ""
		}
		return ids[i]
	}
	n := r.array(maxArrayElements)
	regs := make([]Register, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		r.arrayN(2, "register")
		key := r.text()
		if r.err != nil {
			break
		}
		if err := validateKey(key); err != nil {
			r.fail("%v", err)
			break
		}
		if i > 0 && regs[i-1].Key >= key {
			r.fail("register keys not sorted at %q", key)
			break
		}
		reg := Register{Key: key, Sibs: readSibs(r, key, site)}
		regs = append(regs, reg)
	}
	return regs
}

// readSibs decodes one register's writes and checks them.
func readSibs(r *cborReader, key string, site func(uint64) SiteID) []Sibling {
	ns := r.array(maxArrayElements)
	if r.err == nil && ns == 0 {
		r.fail("register %q is empty", key)
	}
	sibs := make([]Sibling, 0, ns)
	for j := 0; j < ns && r.err == nil; j++ {
		r.arrayN(6, "write")
		sib := Sibling{}
		sib.Dot.Site = site(r.uint())
		sib.Dot.Seq = r.uint()
		sib.HLC = HLC(r.uint())
		sib.Gen = r.uint()
		nc := r.array(maxArrayElements)
		if nc%2 != 0 {
			r.fail("register %q: odd-length context", key)
		}
		if nc > 0 {
			sib.Ctx = make(Context, 0, nc/2)
		}
		for k := 0; k < nc/2 && r.err == nil; k++ {
			sib.Ctx = append(sib.Ctx, Dot{site(r.uint()), r.uint()})
		}
		sib.Value = r.value()
		if r.err != nil {
			break
		}
		switch {
		case sib.Dot.Seq == 0:
			r.fail("register %q has a write with sequence 0", key)
		case !sib.Ctx.valid():
			r.fail("register %q: context not sorted, duplicated or zero", key)
		case j > 0 && !sibs[j-1].Dot.Less(sib.Dot):
			r.fail("register %q: writes not in dot order", key)
		case (key == LifeKey) != (sib.Gen == 0):
			r.fail("register %q: write has generation %d", key, sib.Gen)
		case key == LifeKey && (sib.Value.Kind != KindInt || sib.Value.Int <= 0):
			r.fail("life register holds %v; want a positive integer", sib.Value)
		}
		sibs = append(sibs, sib)
	}
	return sibs
}

// writeSibs encodes one register's writes, numbering sites with siteNum.
func writeSibs(w *cborWriter, sibs []Sibling, siteNum func(SiteID) uint64) {
	w.array(len(sibs))
	for j := range sibs {
		s := &sibs[j]
		w.array(6)
		w.uint(siteNum(s.Dot.Site))
		w.uint(s.Dot.Seq)
		w.uint(uint64(s.HLC))
		w.uint(s.Gen)
		w.array(2 * len(s.Ctx))
		for _, c := range s.Ctx {
			w.uint(siteNum(c.Site))
			w.uint(c.Seq)
		}
		w.value(s.Value)
	}
}

// AppendRegister appends the encoding of one register's writes to dst,
// with sites numbered by siteNum (a store's own numbering): the per-register
// storage form.
func AppendRegister(dst []byte, sibs []Sibling, siteNum func(SiteID) uint64) []byte {
	w := cborWriter{b: dst}
	writeSibs(&w, sibs, siteNum)
	return w.b
}

// DecodeRegister parses what AppendRegister produced for the register key;
// site maps the store's numbers back to site IDs.
func DecodeRegister(key string, data []byte, site func(uint64) (SiteID, bool)) ([]Sibling, error) {
	if err := validateKey(key); err != nil {
		return nil, malformed("register", err)
	}
	r := &cborReader{b: data}
	sibs := readSibs(r, key, func(i uint64) SiteID {
		s, ok := site(i)
		if !ok {
			r.fail("site number %d unknown", i)
		}
		return s
	})
	r.end("register")
	if r.err != nil {
		return nil, malformed(fmt.Sprintf("register %q", key), r.err)
	}
	return sibs, nil
}

// EncodeDoc returns the canonical bytes of a document's state:
// [doctype, name, [sites…], registers].
func EncodeDoc(d *Doc) ([]byte, error) {
	t := newSiteTable()
	t.addDoc(d)
	w := cborWriter{b: make([]byte, 0, d.sizeHint())}
	w.array(4)
	w.text(d.Doctype)
	w.text(d.Name)
	sites := t.seal()
	w.array(len(sites))
	for _, s := range sites {
		w.text(s)
	}
	t.writeRegs(&w, d.Regs)
	return w.b, nil
}

// DecodeDoc parses bytes produced by EncodeDoc, rejecting anything that is
// not a well-formed document in canonical form.
func DecodeDoc(data []byte) (*Doc, error) {
	r := &cborReader{b: data}
	r.arrayN(4, "document")
	d := &Doc{Doctype: r.text(), Name: r.text()}
	if r.err == nil {
		if err := ValidateName("doctype", d.Doctype); err != nil {
			return nil, malformed("document", err)
		}
		if err := ValidateName("document", d.Name); err != nil {
			return nil, malformed("document", err)
		}
	}
	ids := readSites(r)
	d.Regs = readRegs(r, ids)
	r.end("document")
	if r.err != nil {
		return nil, malformed(fmt.Sprintf("document %s %q", d.Doctype, d.Name), r.err)
	}
	return d, nil
}

// EncodePatch encodes the current writes of some registers of d (an empty
// register meaning it was removed): the store's delta record, which
// ApplyPatch replays onto the document as it was before.
// [[sites…], [[key, writes], …]].
func EncodePatch(d *Doc, keys []string) []byte {
	t := newSiteTable()
	n := 16
	for _, k := range keys {
		for _, s := range d.Register(k) {
			t.add(s.Dot.Site)
			for _, c := range s.Ctx {
				t.add(c.Site)
			}
			n += 24 + 12*len(s.Ctx) + len(s.Value.Str)
		}
		n += len(k) + 4
	}
	sites := t.seal()
	w := cborWriter{b: make([]byte, 0, n)}
	w.array(2)
	w.array(len(sites))
	for _, s := range sites {
		w.text(s)
	}
	w.array(len(keys))
	for _, k := range keys {
		w.array(2)
		w.text(k)
		sibs := d.Register(k)
		if len(sibs) == 0 {
			w.array(0)
			continue
		}
		writeSibs(&w, sibs, t.num)
	}
	return w.b
}

// ApplyPatch replaces the registers a patch lists (removing those it lists
// empty). The journal is not touched: a patch restores stored state.
func (d *Doc) ApplyPatch(data []byte) error {
	r := &cborReader{b: data}
	r.arrayN(2, "patch")
	ids := readSites(r)
	n := r.array(maxArrayElements)
	for i := 0; i < n && r.err == nil; i++ {
		r.arrayN(2, "patch register")
		key := r.text()
		if r.err != nil {
			break
		}
		if err := validateKey(key); err != nil {
			r.fail("%v", err)
			break
		}
		var sibs []Sibling
		if len(r.b) > 0 && r.b[0] == majArray<<5 {
			r.b = r.b[1:] // removed register
		} else {
			sibs = readSibs(r, key, func(i uint64) SiteID {
				if i >= uint64(len(ids)) {
					r.fail("site index %d out of range", i)
					return ""
				}
				return ids[i]
			})
		}
		if r.err != nil {
			break
		}
		j := sort.Search(len(d.Regs), func(j int) bool { return d.Regs[j].Key >= key })
		exists := j < len(d.Regs) && d.Regs[j].Key == key
		switch {
		case len(sibs) == 0 && exists:
			d.Regs = append(d.Regs[:j], d.Regs[j+1:]...)
		case len(sibs) > 0 && exists:
			d.Regs[j].Sibs = sibs
		case len(sibs) > 0:
			d.Regs = append(d.Regs, Register{})
			copy(d.Regs[j+1:], d.Regs[j:])
			d.Regs[j] = Register{Key: key, Sibs: sibs}
		}
	}
	r.end("patch")
	if r.err != nil {
		return malformed(fmt.Sprintf("patch of %s %q", d.Doctype, d.Name), r.err)
	}
	return nil
}
