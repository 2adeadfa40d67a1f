package replica

import (
	"errors"
	"fmt"

	"meridian/crdt"
)

// MsgType names a replication message.
type MsgType uint8

const (
	// MsgPush carries fresh batches from their origin, in full.
	MsgPush MsgType = iota + 1
	// MsgSync opens anti-entropy: a digest of the sender's version vector
	// and state per doctype.
	MsgSync
	// MsgVV answers a MsgSync for the doctypes whose digests differ, with
	// the full version vectors.
	MsgVV
	// MsgPull asks for ranges of dots the sender lacks.
	MsgPull
	// MsgServe carries writes served from state and the ranges they cover:
	// after applying it the receiver has delivered every dot of Covers.
	MsgServe
	// MsgDocs carries whole documents (every live write) to a peer that
	// receives a doctype filtered by a condition; no range is covered.
	MsgDocs
)

func (t MsgType) String() string {
	switch t {
	case MsgPush:
		return "push"
	case MsgSync:
		return "sync"
	case MsgVV:
		return "vv"
	case MsgPull:
		return "pull"
	case MsgServe:
		return "serve"
	case MsgDocs:
		return "docs"
	}
	return fmt.Sprintf("msg(%d)", uint8(t))
}

// Message is one replication message between two sites.
type Message struct {
	Type MsgType
	// From and To are set by the transport (From authenticated by it);
	// they are not part of the encoding.
	From, To crdt.SiteID

	Doctype string        // MsgPull, MsgServe
	Batches []*crdt.Batch // MsgPush, MsgServe
	Covers  []crdt.Range  // MsgServe
	Ranges  []crdt.Range  // MsgPull
	Sums    []Summary     // MsgSync
	VVs     []DoctypeVV   // MsgVV
}

// Summary is one doctype's entry in a MsgSync.
type Summary struct {
	Doctype string
	VV      crdt.Digest // hash of the version vector
	State   crdt.Digest // hash of the doctype's state (bucket digests)
}

// DoctypeVV is one doctype's version vector in a MsgVV.
type DoctypeVV struct {
	Doctype string
	VV      crdt.VersionVector
}

// Size estimates the encoded size of a message, for splitting responses.
func (m *Message) Size() int {
	n := 16 + len(m.Doctype) + 40*(len(m.Covers)+len(m.Ranges)) + 80*len(m.Sums) + batchesSize(m.Batches)
	for _, v := range m.VVs {
		n += len(v.Doctype) + 64*len(v.VV)
	}
	return n
}

// batchesSize is the estimated size of batches; a message being filled
// keeps it as a running total (Size walks every write).
func batchesSize(bs []*crdt.Batch) int {
	n := 0
	for _, b := range bs {
		n += batchSize(b)
	}
	return n
}

func batchSize(b *crdt.Batch) int {
	n := 160 + len(b.Sig)
	if b.Proof != nil {
		n += 32*len(b.Proof.Hashes) + 4*len(b.Proof.Indices)
	}
	for _, d := range b.Docs {
		n += len(d.Name) + 8
		for i := range d.Regs {
			r := &d.Regs[i]
			n += len(r.Key) + 4
			for _, s := range r.Sibs {
				n += 24 + 12*len(s.Ctx) + len(s.Value.Str)
			}
		}
	}
	return n
}

type wireRange struct {
	_    struct{} `cbor:",toarray"`
	Site string
	Lo   uint64
	Hi   uint64
}

type wireSeen struct {
	_     struct{} `cbor:",toarray"`
	Site  string
	Max   uint64
	Extra []uint64 // lo, hi pairs
}

type wireSum struct {
	_       struct{} `cbor:",toarray"`
	Doctype string
	VV      []byte
	State   []byte
}

type wireVV struct {
	_       struct{} `cbor:",toarray"`
	Doctype string
	Entries []wireSeen
}

type wireMsg struct {
	_       struct{} `cbor:",toarray"`
	Version uint8
	Type    uint8
	Doctype string
	Batches [][]byte
	Covers  []wireRange
	Ranges  []wireRange
	Sums    []wireSum
	VVs     []wireVV
}

// ProtocolVersion is the version of the message encoding; a message of
// another version is refused.
const ProtocolVersion = 1

// Limits on decoded messages.
const (
	maxRanges   = 1 << 16
	maxDoctypes = 1 << 12
	maxVVSites  = 1 << 16
)

// ErrBadMessage marks a message that does not decode or breaks a limit.
var ErrBadMessage = errors.New("replica: bad message")

// EncodeMessage returns the canonical wire form of m.
func EncodeMessage(m *Message) ([]byte, error) {
	w := wireMsg{Version: ProtocolVersion, Type: uint8(m.Type), Doctype: m.Doctype}
	for _, b := range m.Batches {
		enc, err := crdt.EncodeBatch(b)
		if err != nil {
			return nil, err
		}
		w.Batches = append(w.Batches, enc)
	}
	w.Covers = wireRanges(m.Covers)
	w.Ranges = wireRanges(m.Ranges)
	for _, s := range m.Sums {
		w.Sums = append(w.Sums, wireSum{Doctype: s.Doctype, VV: s.VV[:], State: s.State[:]})
	}
	for _, v := range m.VVs {
		w.VVs = append(w.VVs, wireVV{Doctype: v.Doctype, Entries: encodeVV(v.VV)})
	}
	return crdt.Marshal(&w)
}

func wireRanges(rs []crdt.Range) []wireRange {
	var out []wireRange
	for _, r := range rs {
		out = append(out, wireRange{Site: string(r.Site), Lo: r.Lo, Hi: r.Hi})
	}
	return out
}

func encodeVV(vv crdt.VersionVector) []wireSeen {
	var out []wireSeen
	for _, site := range vv.Sites() {
		s := vv[site]
		ws := wireSeen{Site: string(site), Max: s.Max}
		for _, iv := range s.Extra {
			ws.Extra = append(ws.Extra, iv.Lo, iv.Hi)
		}
		out = append(out, ws)
	}
	return out
}

func decodeVV(ws []wireSeen) (crdt.VersionVector, error) {
	if len(ws) > maxVVSites {
		return nil, fmt.Errorf("version vector of %d sites; the limit is %d", len(ws), maxVVSites)
	}
	vv := crdt.VersionVector{}
	for i, e := range ws {
		if e.Site == "" || (i > 0 && ws[i-1].Site >= e.Site) {
			return nil, errors.New("version vector sites empty, unsorted or repeated")
		}
		s, err := decodeSeen(e.Max, e.Extra)
		if err != nil {
			return nil, fmt.Errorf("version vector entry %s: %v", e.Site, err)
		}
		vv[crdt.SiteID(e.Site)] = s
	}
	return vv, nil
}

// decodeSeen rebuilds a Seen, checking the intervals are sorted, disjoint,
// non-adjacent and above Max+1.
func decodeSeen(maxSeq uint64, extra []uint64) (*crdt.Seen, error) {
	if len(extra)%2 != 0 {
		return nil, errors.New("odd interval list")
	}
	s := &crdt.Seen{Max: maxSeq}
	prev := maxSeq
	for i := 0; i < len(extra); i += 2 {
		lo, hi := extra[i], extra[i+1]
		if prev >= ^uint64(0)-1 || lo < prev+2 || hi < lo {
			return nil, errors.New("intervals unsorted, overlapping or adjacent")
		}
		s.Extra = append(s.Extra, crdt.Interval{Lo: lo, Hi: hi})
		prev = hi
	}
	return s, nil
}

// DecodeMessage parses a message from the wire, rejecting anything
// malformed, of another protocol version, or over the limits.
func DecodeMessage(data []byte) (*Message, error) {
	// The version comes first, so that a message of another version is
	// told apart from a malformed one before its body is parsed.
	if len(data) >= 2 && data[0]>>5 == 4 && data[1] < 24 && data[1] != ProtocolVersion {
		return nil, fmt.Errorf("%w: protocol version %d, this node speaks %d", ErrBadMessage, data[1], ProtocolVersion)
	}
	var w wireMsg
	if err := crdt.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadMessage, err)
	}
	if w.Version != ProtocolVersion {
		return nil, fmt.Errorf("%w: protocol version %d, this node speaks %d", ErrBadMessage, w.Version, ProtocolVersion)
	}
	m := &Message{Type: MsgType(w.Type), Doctype: w.Doctype}
	if m.Type < MsgPush || m.Type > MsgDocs {
		return nil, fmt.Errorf("%w: unknown message type %d", ErrBadMessage, w.Type)
	}
	if w.Doctype != "" {
		if err := crdt.ValidateName("doctype", w.Doctype); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadMessage, err)
		}
	}
	for _, raw := range w.Batches {
		b, err := crdt.DecodeBatch(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadMessage, err)
		}
		m.Batches = append(m.Batches, b)
	}
	var err error
	if m.Covers, err = decodeRanges(w.Covers); err != nil {
		return nil, err
	}
	if m.Ranges, err = decodeRanges(w.Ranges); err != nil {
		return nil, err
	}
	if len(w.Sums) > maxDoctypes || len(w.VVs) > maxDoctypes {
		return nil, fmt.Errorf("%w: more than %d doctypes", ErrBadMessage, maxDoctypes)
	}
	seenDT := map[string]bool{}
	for _, s := range w.Sums {
		if err := crdt.ValidateName("doctype", s.Doctype); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadMessage, err)
		}
		if seenDT[s.Doctype] {
			return nil, fmt.Errorf("%w: doctype %s summarised twice", ErrBadMessage, s.Doctype)
		}
		seenDT[s.Doctype] = true
		if len(s.VV) != 32 || len(s.State) != 32 {
			return nil, fmt.Errorf("%w: digests of %d and %d bytes; want 32", ErrBadMessage, len(s.VV), len(s.State))
		}
		var sum Summary
		sum.Doctype = s.Doctype
		copy(sum.VV[:], s.VV)
		copy(sum.State[:], s.State)
		m.Sums = append(m.Sums, sum)
	}
	seenDT = map[string]bool{}
	for _, v := range w.VVs {
		if err := crdt.ValidateName("doctype", v.Doctype); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadMessage, err)
		}
		if seenDT[v.Doctype] {
			return nil, fmt.Errorf("%w: doctype %s sent twice", ErrBadMessage, v.Doctype)
		}
		seenDT[v.Doctype] = true
		vv, err := decodeVV(v.Entries)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadMessage, err)
		}
		m.VVs = append(m.VVs, DoctypeVV{Doctype: v.Doctype, VV: vv})
	}
	return m, nil
}

func decodeRanges(ws []wireRange) ([]crdt.Range, error) {
	if len(ws) > maxRanges {
		return nil, fmt.Errorf("%w: %d ranges; the limit is %d", ErrBadMessage, len(ws), maxRanges)
	}
	var out []crdt.Range
	for _, r := range ws {
		if r.Site == "" || r.Lo == 0 || r.Hi < r.Lo {
			return nil, fmt.Errorf("%w: range %s[%d..%d]", ErrBadMessage, r.Site, r.Lo, r.Hi)
		}
		out = append(out, crdt.Range{Site: crdt.SiteID(r.Site), Lo: r.Lo, Hi: r.Hi})
	}
	return out, nil
}
