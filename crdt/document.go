package crdt

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"unicode/utf8"
)

// Register keys. A top-level field's key is its fieldname. A child-table
// row's registers are keyed "table\x00row\x00field"; the empty field is the
// row's presence register and "idx" its order register. The life and
// docstatus registers have reserved keys that sort first.
const (
	LifeKey   = "\x00life"
	StatusKey = "\x00docstatus"
	IdxField  = "idx"
	sep       = "\x00"
)

// RowKey returns the key of one field of a child-table row.
func RowKey(table, row, field string) string { return table + sep + row + sep + field }

// PresenceKey returns the key of a row's presence register.
func PresenceKey(table, row string) string { return RowKey(table, row, "") }

// SplitKey parses a key into its table, row and field; table and row are
// empty for a top-level field. ok is false for the reserved keys.
func SplitKey(key string) (table, row, field string, ok bool) {
	if strings.HasPrefix(key, sep) {
		return "", "", "", false
	}
	i := strings.IndexByte(key, 0)
	if i < 0 {
		return "", "", key, true
	}
	rest := key[i+1:]
	j := strings.IndexByte(rest, 0)
	if j < 0 {
		return "", "", "", false
	}
	return key[:i], rest[:j], rest[j+1:], true
}

// MaxNameLen is the longest doctype, document, row or field name accepted;
// Frappe's name columns are varchar(140).
const MaxNameLen = 140

// ValidateName checks a doctype, document, row or field name.
func ValidateName(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("crdt: %s name is empty", what)
	case len(s) > MaxNameLen:
		return fmt.Errorf("crdt: %s name %.40q… is %d bytes; the limit is %d", what, s, len(s), MaxNameLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("crdt: %s name %q is not valid UTF-8", what, s)
	case strings.ContainsRune(s, 0):
		return fmt.Errorf("crdt: %s name %q contains a NUL character", what, s)
	}
	return nil
}

// validateKey checks that a register key is well formed.
func validateKey(key string) error {
	if key == LifeKey || key == StatusKey {
		return nil
	}
	table, row, field, ok := SplitKey(key)
	if !ok {
		return fmt.Errorf("crdt: malformed register key %q", key)
	}
	if table == "" && row == "" {
		return ValidateName("field", field)
	}
	if err := ValidateName("table", table); err != nil {
		return err
	}
	if err := ValidateName("row", row); err != nil {
		return err
	}
	if field != "" {
		return ValidateName("field", field)
	}
	return nil
}

// Doc is the replicated state of one master document: its registers in key
// order. The life register holds the causal length (odd: exists, even:
// deleted); every other write carries the causal length it was made under
// and is dropped once the document moves to a later generation.
type Doc struct {
	Doctype string
	Name    string
	Regs    []Register

	// journal, when tracking, holds each changed register's writes as they
	// were before its first change (nil: the register did not exist), so a
	// store can persist and hash only what changed. A slice: an edit
	// touches a few registers, and a map costs more than a scan of them.
	journal  []JournalEntry
	tracking bool
}

// JournalEntry is a register's state before the changes since the journal
// was reset.
type JournalEntry struct {
	Key    string
	Before []Sibling
}

// Track starts recording which registers change (see Journal).
func (d *Doc) Track() { d.tracking = true }

// Journal returns, for each register changed since tracking started or the
// journal was last reset, its writes before the first change (nil if the
// register did not exist). A register may be listed and yet end unchanged.
func (d *Doc) Journal() []JournalEntry { return d.journal }

// ResetJournal forgets the recorded changes; tracking goes on.
func (d *Doc) ResetJournal() {
	clear(d.journal)
	d.journal = d.journal[:0]
}

func (d *Doc) journaled(key string) bool {
	for i := range d.journal {
		if d.journal[i].Key == key {
			return true
		}
	}
	return false
}

// touch records r's state before a change.
func (d *Doc) touch(r *Register) {
	if !d.tracking || d.journaled(r.Key) {
		return
	}
	d.journal = append(d.journal, JournalEntry{Key: r.Key, Before: append([]Sibling(nil), r.Sibs...)})
}

// NewDoc returns an empty document (one that was never created).
func NewDoc(doctype, name string) *Doc { return &Doc{Doctype: doctype, Name: name} }

// reg returns the register for key, or nil.
func (d *Doc) reg(key string) *Register {
	i := sort.Search(len(d.Regs), func(i int) bool { return d.Regs[i].Key >= key })
	if i < len(d.Regs) && d.Regs[i].Key == key {
		return &d.Regs[i]
	}
	return nil
}

// regAt returns the register for key, creating it.
func (d *Doc) regAt(key string) *Register {
	i := sort.Search(len(d.Regs), func(i int) bool { return d.Regs[i].Key >= key })
	if i < len(d.Regs) && d.Regs[i].Key == key {
		return &d.Regs[i]
	}
	if d.tracking && !d.journaled(key) {
		d.journal = append(d.journal, JournalEntry{Key: key})
	}
	d.Regs = append(d.Regs, Register{})
	copy(d.Regs[i+1:], d.Regs[i:])
	d.Regs[i] = Register{Key: key}
	return &d.Regs[i]
}

// CausalLength returns the document's causal length: 0 if never created,
// odd while it exists, even once deleted.
func (d *Doc) CausalLength() uint64 {
	r := d.reg(LifeKey)
	if r == nil {
		return 0
	}
	var cl uint64
	for i := range r.Sibs {
		if v := uint64(r.Sibs[i].Value.Int); v > cl {
			cl = v
		}
	}
	return cl
}

// Exists reports whether the document currently exists.
func (d *Doc) Exists() bool { return d.CausalLength()%2 == 1 }

// Empty reports whether the document holds no writes at all.
func (d *Doc) Empty() bool { return len(d.Regs) == 0 }

// Clone returns a deep copy.
func (d *Doc) Clone() *Doc {
	out := &Doc{Doctype: d.Doctype, Name: d.Name, Regs: make([]Register, len(d.Regs))}
	for i, r := range d.Regs {
		out.Regs[i] = Register{Key: r.Key, Sibs: append([]Sibling(nil), r.Sibs...)}
	}
	return out
}

// normalize drops overwritten and stale-generation writes and empty
// registers. It is what makes the stored form canonical.
func (d *Doc) normalize() {
	cl := d.CausalLength()
	out := d.Regs[:0]
	for i := range d.Regs {
		r := &d.Regs[i]
		gen := cl
		if r.Key == LifeKey {
			gen = 0
		}
		if r.wouldPrune(gen) {
			d.touch(r)
			r.prune(gen)
		}
		if len(r.Sibs) > 0 {
			out = append(out, *r)
		}
	}
	for i := len(out); i < len(d.Regs); i++ {
		d.Regs[i] = Register{}
	}
	d.Regs = out
}

// Merge joins o into d: the result holds every write of either that the
// other did not overwrite. Merge is commutative, associative and idempotent,
// so deltas may arrive in any order, any number of times, or in part.
// It reports whether d changed.
func (d *Doc) Merge(o *Doc) bool {
	// What this merge touches: each register's size before and the writes
	// added to it, to tell afterwards whether anything changed.
	type touched struct {
		key    string
		before int
		added  []Dot
	}
	var prev []touched
	lifeChanged := false
	for i := range o.Regs {
		or := &o.Regs[i]
		var r *Register
		for _, s := range or.Sibs {
			if r == nil {
				r = d.regAt(or.Key)
			}
			if j := r.find(s.Dot); j >= 0 && (r.Sibs[j].equal(&s) || !siblingContentLess(&s, &r.Sibs[j])) {
				continue // already held
			}
			d.touch(r)
			if len(prev) == 0 || prev[len(prev)-1].key != or.Key {
				prev = append(prev, touched{key: or.Key, before: len(r.Sibs)})
			}
			if r.add(s) {
				p := &prev[len(prev)-1]
				p.added = append(p.added, s.Dot)
			}
			if or.Key == LifeKey {
				lifeChanged = true
			}
		}
	}
	if len(prev) == 0 {
		d.dropEmpty()
		return false
	}
	if faultMergeKeepsDominated.Load() && !lifeChanged {
		d.dropEmpty() // the injected bug: received writes never retire older ones
	} else if lifeChanged {
		d.normalize()
	} else {
		// The causal length did not move: only the registers that received
		// writes can have anything to drop.
		cl := d.CausalLength()
		for _, t := range prev {
			if r := d.reg(t.key); r != nil {
				r.prune(cl)
			}
		}
		d.dropEmpty()
	}
	for _, t := range prev {
		r := d.reg(t.key)
		if r == nil {
			if t.before > 0 {
				return true
			}
			continue
		}
		if len(r.Sibs) != t.before {
			return true
		}
		for _, dot := range t.added {
			if r.find(dot) >= 0 {
				return true // a new write survived (perhaps replacing another)
			}
		}
	}
	return false
}

// dropEmpty removes registers left without writes.
func (d *Doc) dropEmpty() {
	out := d.Regs[:0]
	for _, r := range d.Regs {
		if len(r.Sibs) > 0 {
			out = append(out, r)
		}
	}
	for i := len(out); i < len(d.Regs); i++ {
		d.Regs[i] = Register{}
	}
	d.Regs = out
}

func sameSiblings(a, b []Sibling) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].equal(&b[i]) {
			return false
		}
	}
	return true
}

// faultMergeKeepsDominated makes Merge keep the writes a received write
// overwrote. It exists only so that the simulator's own tests can show its
// checkers catch a broken merge; nothing else sets it.
var faultMergeKeepsDominated atomic.Bool

// InjectMergeFault turns the broken merge on or off (simulator tests only).
func InjectMergeFault(on bool) { faultMergeKeepsDominated.Store(on) }

// OpKind says what an Op does.
type OpKind uint8

const (
	// OpSet writes a value to a field (Table and Row empty) or to a field of
	// a child-table row (adding the row if it is not there).
	OpSet OpKind = iota + 1
	// OpRemoveRow removes a child-table row.
	OpRemoveRow
	// OpCreate creates the document, or re-creates it after a delete.
	OpCreate
	// OpDelete deletes the document.
	OpDelete
	// OpDocStatus raises docstatus (0 draft, 1 submitted, 2 cancelled).
	OpDocStatus
)

// Op is one change within a local edit.
type Op struct {
	Kind  OpKind
	Table string // child table fieldname, for row ops
	Row   string // row name, for row ops
	Field string // fieldname; for rows, "idx" sets the row's position
	Value Value
}

// Errors returned for edits that cannot apply to the current state.
var (
	ErrNotFound      = errors.New("crdt: document does not exist")
	ErrExists        = errors.New("crdt: document already exists")
	ErrDocStatusDown = errors.New("crdt: docstatus can only move up (0 draft → 1 submitted → 2 cancelled)")
	ErrNoChange      = errors.New("crdt: the edit changes nothing")
)

// Write applies a local edit with the given dot and timestamp and returns
// the delta: a document holding just the new writes, which merged into any
// replica has the same effect. Every op of the edit shares the dot. On error
// d is unchanged.
func (d *Doc) Write(dot Dot, hlc HLC, ops []Op) (*Doc, error) {
	if err := d.checkOps(ops); err != nil {
		return nil, err
	}
	// One register per op, plus the life and row-presence registers a
	// create or a new row adds: sized once, not grown op by op.
	need := len(ops) + 1
	for i := range ops {
		if ops[i].Table != "" {
			need++ // a row's presence register
		}
	}
	delta := &Doc{Doctype: d.Doctype, Name: d.Name, Regs: make([]Register, 0, need)}
	if room := cap(d.Regs) - len(d.Regs); room < need && len(ops) > 4 {
		regs := make([]Register, len(d.Regs), len(d.Regs)+need)
		copy(regs, d.Regs)
		d.Regs = regs
	}
	cl := d.CausalLength()
	// Registers left with the one new write get it from a slab: one
	// allocation for the edit, not one per register (see one).
	var docSlab, deltaSlab []Sibling
	one := func(slab *[]Sibling, s Sibling) []Sibling {
		if len(*slab) == cap(*slab) {
			*slab = make([]Sibling, 0, len(ops))
		}
		*slab = append(*slab, s)
		n := len(*slab)
		return (*slab)[n-1 : n : n] // capacity 1: a later append copies
	}
	put := func(key string, gen uint64, v Value) {
		r := d.regAt(key)
		d.touch(r)
		s := Sibling{Dot: dot, HLC: hlc, Gen: gen, Value: v}
		if key == LifeKey {
			for i := range r.Sibs {
				s.Ctx = s.Ctx.Join(r.Sibs[i].Ctx).With(r.Sibs[i].Dot)
			}
		} else {
			s.Ctx = r.overwrite(gen)
		}
		// A second op on the same key in one edit replaces the first.
		if i := r.find(dot); i >= 0 {
			s.Ctx = r.Sibs[i].Ctx
			r.Sibs[i] = s
			r.prune(0)
		} else if s.Ctx.coversAll(r.Sibs) {
			r.Sibs = one(&docSlab, s) // what add and prune would leave
		} else {
			r.add(s)
			r.prune(0)
		}
		dr := delta.regAt(key)
		if i := dr.find(dot); i >= 0 {
			dr.Sibs[i] = s
		} else if len(dr.Sibs) == 0 {
			dr.Sibs = one(&deltaSlab, s)
		} else {
			dr.add(s)
		}
	}
	for _, op := range ops {
		switch op.Kind {
		case OpCreate, OpDelete:
			cl++
			put(LifeKey, 0, Int(int64(cl)))
			d.normalize()
		case OpDocStatus:
			put(StatusKey, cl, op.Value)
		case OpSet:
			if op.Table == "" {
				put(op.Field, cl, op.Value)
				continue
			}
			if !d.rowVisible(op.Table, op.Row, cl) {
				put(PresenceKey(op.Table, op.Row), cl, Int(1))
			}
			put(RowKey(op.Table, op.Row, op.Field), cl, op.Value)
		case OpRemoveRow:
			prefix := op.Table + sep + op.Row + sep
			for _, key := range d.keysWithPrefix(prefix) {
				if r := d.reg(key); r != nil && len(r.visible(cl)) > 0 {
					put(key, cl, Removed)
				}
			}
		}
	}
	// put pruned every register it touched; only a create or delete (which
	// normalized above) can retire other writes.
	if delta.Empty() {
		return nil, fmt.Errorf("%w (removing a row that is not there?)", ErrNoChange)
	}
	return delta, nil
}

// checkOps validates an edit against the current state without changing it.
func (d *Doc) checkOps(ops []Op) error {
	if len(ops) == 0 {
		return errors.New("crdt: empty edit")
	}
	cl := d.CausalLength()
	status := d.DocStatus()
	for i, op := range ops {
		switch op.Kind {
		case OpCreate:
			if cl%2 == 1 {
				return fmt.Errorf("%w: %s %q", ErrExists, d.Doctype, d.Name)
			}
			cl++
			status = 0
		case OpDelete:
			if cl%2 == 0 {
				return fmt.Errorf("%w: %s %q", ErrNotFound, d.Doctype, d.Name)
			}
			cl++
		case OpSet, OpRemoveRow, OpDocStatus:
			if cl%2 == 0 {
				return fmt.Errorf("%w: %s %q (create it first)", ErrNotFound, d.Doctype, d.Name)
			}
			if err := op.Value.Validate(); err != nil {
				return fmt.Errorf("op %d: %w", i, err)
			}
			if op.Value.Kind == KindRemoved {
				return fmt.Errorf("crdt: op %d writes a removal marker; remove rows with OpRemoveRow", i)
			}
			switch op.Kind {
			case OpDocStatus:
				if op.Value.Kind != KindInt || op.Value.Int < 0 || op.Value.Int > 2 {
					return fmt.Errorf("crdt: docstatus must be 0, 1 or 2, not %v", op.Value)
				}
				if op.Value.Int < status {
					return fmt.Errorf("%w: it is %d, the edit sets %d", ErrDocStatusDown, status, op.Value.Int)
				}
				status = op.Value.Int
			case OpSet:
				if op.Table == "" {
					if err := ValidateName("field", op.Field); err != nil {
						return err
					}
					if op.Row != "" {
						return fmt.Errorf("crdt: op %d names row %q without a table", i, op.Row)
					}
					continue
				}
				fallthrough
			case OpRemoveRow:
				if err := ValidateName("table", op.Table); err != nil {
					return err
				}
				if err := ValidateName("row", op.Row); err != nil {
					return err
				}
				if op.Kind == OpSet {
					if err := ValidateName("field", op.Field); err != nil {
						return err
					}
					if op.Field == IdxField && op.Value.Kind != KindInt && !op.Value.IsNull() {
						return fmt.Errorf("crdt: idx of row %q must be an integer, not %v", op.Row, op.Value)
					}
				}
			}
		default:
			return fmt.Errorf("crdt: op %d has unknown kind %d", i, op.Kind)
		}
	}
	return nil
}

// keysWithPrefix returns the keys starting with prefix, in order.
func (d *Doc) keysWithPrefix(prefix string) []string {
	i := sort.Search(len(d.Regs), func(i int) bool { return d.Regs[i].Key >= prefix })
	var out []string
	for ; i < len(d.Regs) && strings.HasPrefix(d.Regs[i].Key, prefix); i++ {
		out = append(out, d.Regs[i].Key)
	}
	return out
}

// rowVisible reports whether a row has any visible write that is not a
// removal.
func (d *Doc) rowVisible(table, row string, cl uint64) bool {
	for _, key := range d.keysWithPrefix(table + sep + row + sep) {
		r := d.reg(key)
		for _, i := range r.visible(cl) {
			if r.Sibs[i].Value.Kind != KindRemoved {
				return true
			}
		}
	}
	return false
}

// DocStatus returns the document's docstatus: the greatest visible value.
func (d *Doc) DocStatus() int64 {
	r := d.reg(StatusKey)
	if r == nil {
		return 0
	}
	cl := d.CausalLength()
	var st int64
	for _, i := range r.visible(cl) {
		if v := r.Sibs[i].Value.Int; v > st {
			st = v
		}
	}
	return st
}

// Dots returns every dot whose writes the document still holds, sorted.
func (d *Doc) Dots() []Dot {
	var out []Dot
	for i := range d.Regs {
		for _, s := range d.Regs[i].Sibs {
			// Writes of one edit are usually adjacent: skip the obvious repeats.
			if n := len(out); n == 0 || out[n-1] != s.Dot {
				out = append(out, s.Dot)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	n := 0
	for i, dot := range out {
		if i == 0 || dot != out[n-1] {
			out[n] = dot
			n++
		}
	}
	return out[:n]
}

// HasRemovals reports whether any write is a row-removal marker.
func (d *Doc) HasRemovals() bool {
	for i := range d.Regs {
		for _, s := range d.Regs[i].Sibs {
			if s.Value.Kind == KindRemoved {
				return true
			}
		}
	}
	return false
}

// Select returns a document holding only the writes made by the given dots
// (a join-decomposition of d: merging it into any replica is safe).
func (d *Doc) Select(keep func(Dot) bool) *Doc {
	out := &Doc{Doctype: d.Doctype, Name: d.Name}
	for i := range d.Regs {
		var sibs []Sibling
		for _, s := range d.Regs[i].Sibs {
			if keep(s.Dot) {
				sibs = append(sibs, s)
			}
		}
		if len(sibs) > 0 {
			out.Regs = append(out.Regs, Register{Key: d.Regs[i].Key, Sibs: sibs})
		}
	}
	return out
}

// RowTombstone is a removed child-table row whose writes are all removal
// markers: it only remembers that the row was removed.
type RowTombstone struct {
	Table, Row string
	Dots       []Dot // the writes that make up the tombstone
	Ctx        Context
}

// RowTombstones lists the document's removed rows.
func (d *Doc) RowTombstones() []RowTombstone {
	type acc struct {
		live bool
		dots []Dot
		ctx  Context
	}
	rows := map[[2]string]*acc{}
	var order [][2]string
	for i := range d.Regs {
		r := &d.Regs[i]
		table, row, _, ok := SplitKey(r.Key)
		if !ok || table == "" {
			continue
		}
		k := [2]string{table, row}
		a := rows[k]
		if a == nil {
			a = &acc{}
			rows[k] = a
			order = append(order, k)
		}
		for _, s := range r.Sibs {
			if s.Value.Kind != KindRemoved {
				a.live = true
			}
			a.dots = append(a.dots, s.Dot)
			a.ctx = a.ctx.Join(s.Ctx)
		}
	}
	var out []RowTombstone
	for _, k := range order {
		if a := rows[k]; !a.live {
			out = append(out, RowTombstone{Table: k[0], Row: k[1], Dots: a.dots, Ctx: a.ctx})
		}
	}
	return out
}

// DropRow forgets every register of a row. Only for collecting tombstones
// every replica has acknowledged: it is not a CRDT operation.
func (d *Doc) DropRow(table, row string) {
	prefix := table + sep + row + sep
	out := d.Regs[:0]
	for i := range d.Regs {
		if strings.HasPrefix(d.Regs[i].Key, prefix) {
			d.touch(&d.Regs[i])
			continue
		}
		out = append(out, d.Regs[i])
	}
	d.Regs = out
}

// Register returns the writes of the register with the given key (nil if
// it has none). The slice must not be modified.
func (d *Doc) Register(key string) []Sibling {
	if r := d.reg(key); r != nil {
		return r.Sibs
	}
	return nil
}

// HasDot reports whether any register holds a write of dot.
func (d *Doc) HasDot(dot Dot) bool {
	for i := range d.Regs {
		if d.Regs[i].find(dot) >= 0 {
			return true
		}
	}
	return false
}

// SameWrites reports whether two lists of writes are identical.
func SameWrites(a, b []Sibling) bool { return sameSiblings(a, b) }

// DotsOf returns the distinct dots of a list of writes.
func DotsOf(sibs []Sibling) []Dot {
	var out []Dot
	for _, s := range sibs {
		dup := false
		for _, d := range out {
			if d == s.Dot {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, s.Dot)
		}
	}
	return out
}
