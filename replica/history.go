package replica

import (
	"encoding/binary"
	"fmt"
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
var historyDec = mustDecMode(cbor.DecOptions{MaxArrayElements: 16, MaxNestedLevels: 4})

func mustDecMode(o cbor.DecOptions) cbor.DecMode {
	dm, err := o.DecMode()
	if err != nil {
		panic("replica: CBOR decoder options: " + err.Error())
	}
	return dm
}

// History keys: 'h' NUL doctype NUL name NUL slot(2 bytes) holds an entry;
// 'h' NUL doctype NUL name holds the document's entry counter. Slots are a
// ring of Config.History entries, so the history of a document is bounded.
func histCountKey(dt, name string) []byte { return key('h', dt, name) }
func histKey(dt, name string, slot uint64) []byte {
	return binary.BigEndian.AppendUint16(append(histCountKey(dt, name), sepByte), uint16(slot))
}

// noteHistory records the writes of a delta about to merge into a document.
func (r *Replica) noteHistory(e *docEntry, delta *crdt.Doc) {
	if r.cfg.History <= 0 || delta == nil {
		return
	}
	for i := range delta.Regs {
		for _, s := range delta.Regs[i].Sibs {
			e.hist = append(e.hist, HistoryEntry{HLC: uint64(s.HLC), Site: string(s.Dot.Site), Seq: s.Dot.Seq, Key: delta.Regs[i].Key,
				Kind: uint8(s.Value.Kind), Str: s.Value.Str, Int: s.Value.Int})
		}
	}
}

// flushHistory turns a document's new history entries into store writes.
func (r *Replica) flushHistory(e *docEntry, put func(k, v []byte)) error {
	if len(e.hist) == 0 {
		return nil
	}
	if !e.histLoaded {
		raw, err := r.store.Get(histCountKey(e.id.dt, e.id.name))
		if err != nil {
			return err
		}
		if len(raw) == 8 {
			e.histN = binary.BigEndian.Uint64(raw)
		}
		e.histLoaded = true
	}
	size := uint64(r.cfg.History)
	for i := range e.hist {
		e.hist[i].Order = e.histN
		raw, err := historyEnc.Marshal(&e.hist[i])
		if err != nil {
			return err
		}
		put(histKey(e.id.dt, e.id.name, e.histN%size), raw)
		e.histN++
	}
	put(histCountKey(e.id.dt, e.id.name), binary.BigEndian.AppendUint64(nil, e.histN))
	e.hist = nil
	return nil
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
		var h HistoryEntry
		if bad = historyDec.Unmarshal(v, &h); bad != nil {
			bad = fmt.Errorf("replica: history entry %q: %w", k, bad)
			return false
		}
		out = append(out, h)
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
	return out, nil
}
