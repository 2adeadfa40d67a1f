package replica

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sort"

	"github.com/fxamacker/cbor/v2"
	"meridian/crdt"
)

// HistoryEntry is one write a document received: which site wrote which
// register to what, and when (its hybrid clock).
type HistoryEntry struct {
	_     struct{} `cbor:",toarray"`
	HLC   uint64
	Site  string
	Seq   uint64
	Key   string // the register: a field, a child row's field, the life or docstatus register
	Kind  uint8  // crdt.Kind of the value
	Str   string
	Int   int64
	Order uint64 // position in this replica's history of the document
}

// Value returns the entry's value.
func (h *HistoryEntry) Value() crdt.Value {
	return crdt.Value{Kind: crdt.Kind(h.Kind), Str: h.Str, Int: h.Int}
}

var historyEnc, _ = cbor.CoreDetEncOptions().EncMode()
var historyDec = mustDecMode(cbor.DecOptions{MaxArrayElements: maxHistoryRecord, MaxNestedLevels: 4})

// maxHistoryRecord bounds the entries of one stored history record (the
// writes one Ready brought to one document).
const maxHistoryRecord = 1 << 16

func mustDecMode(o cbor.DecOptions) cbor.DecMode {
	dm, err := o.DecMode()
	if err != nil {
		panic("replica: CBOR decoder options: " + err.Error())
	}
	return dm
}

// History keys: 'h' NUL doctype NUL name NUL slot(2 bytes) holds a record,
// the entries one Ready brought to the document (a CBOR array of entries;
// stores written before records held one entry each, which still reads);
// 'h' NUL doctype NUL name holds the document's counters: entries, then
// records (8 bytes each; an older store has only the first). Slots are a
// ring of Config.History records, so the history of a document is bounded,
// and one key is written per document and Ready, not one per write.
func histCountKey(dt, name string) []byte { return key('h', dt, name) }
func histKey(dt, name string, slot uint64) []byte {
	return binary.BigEndian.AppendUint16(append(histCountKey(dt, name), sepByte), uint16(slot))
}

// noteHistory records the writes of a delta about to merge into a document.
func (r *Replica) noteHistory(e *docEntry, delta *crdt.Doc) {
	if r.cfg.History <= 0 || delta == nil {
		return
	}
	n := 0
	for i := range delta.Regs {
		n += len(delta.Regs[i].Sibs)
	}
	e.hist = slices.Grow(e.hist, n)
	for i := range delta.Regs {
		for _, s := range delta.Regs[i].Sibs {
			e.hist = append(e.hist, HistoryEntry{HLC: uint64(s.HLC), Site: string(s.Dot.Site), Seq: s.Dot.Seq, Key: delta.Regs[i].Key,
				Kind: uint8(s.Value.Kind), Str: s.Value.Str, Int: s.Value.Int})
		}
	}
}

// flushHistory turns a document's new history entries into store writes:
// one record in the next slot of the ring, and the counters.
func (r *Replica) flushHistory(e *docEntry, put func(k, v []byte)) error {
	if len(e.hist) == 0 {
		return nil
	}
	if !e.histLoaded {
		raw, err := r.store.Get(histCountKey(e.id.dt, e.id.name))
		if err != nil {
			return err
		}
		switch len(raw) {
		case 16:
			e.histN, e.histR = binary.BigEndian.Uint64(raw), binary.BigEndian.Uint64(raw[8:])
		case 8: // one entry per record so far
			e.histN = binary.BigEndian.Uint64(raw)
			e.histR = e.histN
		}
		e.histLoaded = true
	}
	for i := range e.hist {
		e.hist[i].Order = e.histN
		e.histN++
	}
	for len(e.hist) > 0 {
		n := min(len(e.hist), maxHistoryRecord)
		raw, err := historyEnc.Marshal(e.hist[:n])
		if err != nil {
			return err
		}
		put(histKey(e.id.dt, e.id.name, e.histR%uint64(r.cfg.History)), raw)
		e.histR++
		e.hist = e.hist[n:]
	}
	put(histCountKey(e.id.dt, e.id.name), binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, e.histN), e.histR))
	e.hist = nil
	return nil
}

// decodeHistoryRecord reads a stored history record: a list of entries, or
// the single entry an older store kept per slot.
func decodeHistoryRecord(v []byte) ([]HistoryEntry, error) {
	var list []HistoryEntry
	err := historyDec.Unmarshal(v, &list)
	if err == nil {
		return list, nil
	}
	var one HistoryEntry
	if historyDec.Unmarshal(v, &one) == nil {
		return []HistoryEntry{one}, nil
	}
	return nil, err
}

// History returns the writes a document received, oldest first (at most
// Config.History of them: older ones have been overwritten in the ring).
func (r *Replica) History(dt, name string) ([]HistoryEntry, error) {
	if r.cfg.History <= 0 {
		return nil, fmt.Errorf("replica: history is not kept (Config.History is 0)")
	}
	var out []HistoryEntry
	var bad error
	err := r.store.Scan(append(histCountKey(dt, name), sepByte), nil, func(k, v []byte) bool {
		hs, err := decodeHistoryRecord(v)
		if err != nil {
			bad = fmt.Errorf("replica: history record %q: %w", k, err)
			return false
		}
		out = append(out, hs...)
		return true
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return nil, err
	}
	// Entries not yet persisted are in the document's cache entry.
	if e := r.cache.get(docID{dt, name}); e != nil {
		n := e.histN
		for _, h := range e.hist {
			h.Order = n
			n++
			out = append(out, h)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Order < out[j].Order })
	if len(out) > r.cfg.History { // records hold several entries: the last History of them
		out = out[len(out)-r.cfg.History:]
	}
	return out, nil
}
