package crdt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// View is what a reader sees of a document: the winning value of every
// field, child tables as ordered rows, docstatus, and whether it exists.
type View struct {
	Doctype   string
	Name      string
	Exists    bool
	DocStatus int64
	Fields    map[string]Value
	Tables    map[string][]RowView
}

// RowView is one visible child-table row. Idx is its 1-based position after
// sorting by (idx register, row name), as the bridge writes it.
type RowView struct {
	Name   string
	Idx    int64
	Fields map[string]Value
}

// View computes the visible document.
func (d *Doc) View() *View {
	cl := d.CausalLength()
	v := &View{Doctype: d.Doctype, Name: d.Name, Exists: cl%2 == 1, Fields: map[string]Value{}, Tables: map[string][]RowView{}}
	if !v.Exists {
		return v
	}
	v.DocStatus = d.DocStatus()
	type rowAcc struct {
		idx     int64
		visible bool
		fields  map[string]Value
	}
	rows := map[string]map[string]*rowAcc{}
	for i := range d.Regs {
		r := &d.Regs[i]
		table, row, field, ok := SplitKey(r.Key)
		if !ok {
			continue
		}
		w := r.winner(cl)
		if w < 0 {
			continue
		}
		val := r.Sibs[w].Value
		if table == "" {
			v.Fields[field] = val
			continue
		}
		if rows[table] == nil {
			rows[table] = map[string]*rowAcc{}
		}
		acc := rows[table][row]
		if acc == nil {
			acc = &rowAcc{idx: math.MaxInt64, fields: map[string]Value{}}
			rows[table][row] = acc
		}
		for _, j := range r.visible(cl) {
			if r.Sibs[j].Value.Kind != KindRemoved {
				acc.visible = true
			}
		}
		if val.Kind == KindRemoved {
			continue
		}
		switch field {
		case "":
		case IdxField:
			if val.Kind == KindInt {
				acc.idx = val.Int
			}
		default:
			acc.fields[field] = val
		}
	}
	for table, byName := range rows {
		type named struct {
			name string
			acc  *rowAcc
		}
		var list []named
		for name, acc := range byName {
			if acc.visible {
				list = append(list, named{name, acc})
			}
		}
		sort.Slice(list, func(i, j int) bool {
			if list[i].acc.idx != list[j].acc.idx {
				return list[i].acc.idx < list[j].acc.idx
			}
			return list[i].name < list[j].name
		})
		out := make([]RowView, len(list))
		for i, n := range list {
			out[i] = RowView{Name: n.name, Idx: int64(i + 1), Fields: n.acc.fields}
		}
		if len(out) > 0 {
			v.Tables[table] = out
		}
	}
	return v
}

// Conflict is a set of concurrent writes to one field that the CRDT
// resolved: every value, who wrote it and when, and which one is shown.
type Conflict struct {
	Doctype string
	Name    string
	Table   string // child table, for a row field
	Row     string
	Field   string // "docstatus" and "(life)" for the reserved registers
	Values  []ConflictValue
	Winner  int // index into Values of the value shown
}

// ConflictValue is one of the concurrent writes of a conflict.
type ConflictValue struct {
	Value Value
	Dot   Dot
	HLC   HLC
}

// Conflicts lists the fields whose visible writes are concurrent and differ.
// Writes are concurrent exactly when neither overwrote the other.
func (d *Doc) Conflicts() []Conflict {
	cl := d.CausalLength()
	var out []Conflict
	for i := range d.Regs {
		r := &d.Regs[i]
		var idxs []int
		if r.Key == LifeKey {
			for j := range r.Sibs {
				idxs = append(idxs, j)
			}
		} else {
			idxs = r.visible(cl)
		}
		if len(idxs) < 2 {
			continue
		}
		distinct := false
		for _, j := range idxs[1:] {
			if r.Sibs[j].Value != r.Sibs[idxs[0]].Value {
				distinct = true
			}
		}
		if !distinct {
			continue
		}
		c := Conflict{Doctype: d.Doctype, Name: d.Name}
		switch r.Key {
		case LifeKey:
			c.Field = "(life)"
		case StatusKey:
			c.Field = "docstatus"
		default:
			c.Table, c.Row, c.Field, _ = SplitKey(r.Key)
		}
		w := r.winner(cl)
		if r.Key == LifeKey {
			w = -1
			for _, j := range idxs {
				if w < 0 || r.Sibs[j].Value.Int > r.Sibs[w].Value.Int {
					w = j
				}
			}
		}
		if r.Key == StatusKey {
			for _, j := range idxs {
				if r.Sibs[j].Value.Int > r.Sibs[w].Value.Int {
					w = j
				}
			}
		}
		for _, j := range idxs {
			s := r.Sibs[j]
			if j == w {
				c.Winner = len(c.Values)
			}
			c.Values = append(c.Values, ConflictValue{Value: s.Value, Dot: s.Dot, HLC: s.HLC})
		}
		out = append(out, c)
	}
	return out
}

// StandardFields are Frappe's own columns: set by each site, never replicated.
var StandardFields = map[string]bool{
	"name": true, "doctype": true, "owner": true, "creation": true, "modified": true,
	"modified_by": true, "docstatus": true, "idx": true, "parent": true, "parentfield": true,
	"parenttype": true, "_user_tags": true, "_comments": true, "_assign": true,
	"_liked_by": true, "_seen": true,
}

// isStandard reports whether a JSON key is Frappe-managed rather than data.
func isStandard(key string) bool { return StandardFields[key] || strings.HasPrefix(key, "__") }

// MarshalJSON renders the view in the shape of Frappe's
// /api/resource/DOCTYPE/NAME: fields at the top, child tables as arrays of
// row objects with name and idx.
func (v *View) MarshalJSON() ([]byte, error) {
	m := map[string]any{"doctype": v.Doctype, "name": v.Name, "docstatus": v.DocStatus}
	for k, val := range v.Fields {
		m[k] = jsonValue(val)
	}
	for table, rows := range v.Tables {
		list := make([]map[string]any, len(rows))
		for i, row := range rows {
			rm := map[string]any{"name": row.Name, "idx": row.Idx}
			for k, val := range row.Fields {
				rm[k] = jsonValue(val)
			}
			list[i] = rm
		}
		m[table] = list
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func jsonValue(v Value) any {
	switch v.Kind {
	case KindStr:
		return v.Str
	case KindInt:
		return v.Int
	case KindDec:
		return json.Number(v.Str)
	}
	return nil
}

// ValueFromJSON converts one decoded JSON value (decoded with UseNumber)
// into a Value: text stays text, integral numbers become Int, other numbers
// exact decimals, booleans Check values, objects and arrays canonical JSON.
func ValueFromJSON(x any) (Value, error) {
	switch t := x.(type) {
	case nil:
		return Null, nil
	case string:
		return Str(t), nil
	case bool:
		return Check(t), nil
	case json.Number:
		s := string(t)
		if !strings.ContainsAny(s, ".eE") {
			if i, err := strconv.ParseInt(s, 10, 64); err == nil {
				return Int(i), nil
			}
		}
		return Dec(s)
	case map[string]any, []any:
		b, err := json.Marshal(t)
		if err != nil {
			return Null, err
		}
		c, err := CanonicalJSON(string(b))
		if err != nil {
			return Null, err
		}
		return Str(c), nil
	}
	return Null, fmt.Errorf("crdt: unsupported JSON value %T", x)
}

// Desired is a document as a client wants it, parsed from Frappe-shaped
// JSON: fields to set and child tables to replace.
type Desired struct {
	Fields    map[string]Value
	Tables    map[string][]DesiredRow
	DocStatus *int64
}

// DesiredRow is one row of a child table in a Desired document.
type DesiredRow struct {
	Name   string
	Idx    *int64
	Fields map[string]Value
}

// ParseDesired parses a Frappe-shaped JSON document. Frappe's own columns
// (name, modified, owner…) are ignored; an array of objects is a child
// table whose rows must each have a name. newRowName, if not nil, names rows
// that have none.
func ParseDesired(data []byte, newRowName func() string) (*Desired, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("crdt: document JSON: %v", err)
	}
	if m == nil {
		return nil, errors.New("crdt: document JSON must be an object")
	}
	des := &Desired{Fields: map[string]Value{}, Tables: map[string][]DesiredRow{}}
	if ds, ok := m["docstatus"]; ok && ds != nil {
		n, ok := ds.(json.Number)
		i, err := strconv.ParseInt(string(n), 10, 64)
		if !ok || err != nil {
			return nil, fmt.Errorf("crdt: docstatus must be 0, 1 or 2, not %v", ds)
		}
		des.DocStatus = &i
	}
	for k, x := range m {
		if isStandard(k) {
			continue
		}
		if err := ValidateName("field", k); err != nil {
			return nil, err
		}
		if rows, ok := tableRows(x); ok {
			var list []DesiredRow
			names := map[string]bool{}
			for i, rm := range rows {
				dr := DesiredRow{Fields: map[string]Value{}}
				if n, ok := rm["name"].(string); ok && n != "" {
					dr.Name = n
				} else if newRowName != nil {
					dr.Name = newRowName()
				} else {
					return nil, fmt.Errorf("crdt: row %d of table %q has no name", i+1, k)
				}
				if err := ValidateName("row", dr.Name); err != nil {
					return nil, err
				}
				if names[dr.Name] {
					return nil, fmt.Errorf("crdt: table %q has two rows named %q", k, dr.Name)
				}
				names[dr.Name] = true
				if n, ok := rm["idx"].(json.Number); ok {
					i, err := strconv.ParseInt(string(n), 10, 64)
					if err != nil {
						return nil, fmt.Errorf("crdt: idx of row %q must be an integer", dr.Name)
					}
					dr.Idx = &i
				}
				for fk, fx := range rm {
					if isStandard(fk) {
						continue
					}
					if err := ValidateName("field", fk); err != nil {
						return nil, err
					}
					val, err := ValueFromJSON(fx)
					if err != nil {
						return nil, fmt.Errorf("crdt: %s row %q field %q: %w", k, dr.Name, fk, err)
					}
					dr.Fields[fk] = val
				}
				list = append(list, dr)
			}
			des.Tables[k] = list
			continue
		}
		val, err := ValueFromJSON(x)
		if err != nil {
			return nil, fmt.Errorf("crdt: field %q: %w", k, err)
		}
		des.Fields[k] = val
	}
	return des, nil
}

// tableRows reports whether x is a child table: an array of objects (an
// empty array counts, clearing the table).
func tableRows(x any) ([]map[string]any, bool) {
	arr, ok := x.([]any)
	if !ok {
		return nil, false
	}
	out := make([]map[string]any, 0, len(arr))
	for _, e := range arr {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, false
		}
		out = append(out, m)
	}
	return out, true
}

// Diff returns the ops that turn the document into des: only real changes,
// so writing back what was read produces no edit. Fields des does not
// mention are left alone; a table des mentions is replaced by its rows.
func (d *Doc) Diff(des *Desired) []Op {
	var ops []Op
	cur := d.View()
	if !cur.Exists {
		ops = append(ops, Op{Kind: OpCreate})
		cur = &View{Fields: map[string]Value{}, Tables: map[string][]RowView{}}
	}
	if des.DocStatus != nil && *des.DocStatus != cur.DocStatus {
		ops = append(ops, Op{Kind: OpDocStatus, Value: Int(*des.DocStatus)})
	}
	for _, k := range sortedKeys(des.Fields) {
		if old, ok := cur.Fields[k]; !ok || old != des.Fields[k] {
			if !ok && des.Fields[k].IsNull() {
				continue
			}
			ops = append(ops, Op{Kind: OpSet, Field: k, Value: des.Fields[k]})
		}
	}
	tables := make([]string, 0, len(des.Tables))
	for t := range des.Tables {
		tables = append(tables, t)
	}
	sort.Strings(tables)
	for _, t := range tables {
		existing := map[string]RowView{}
		for _, r := range cur.Tables[t] {
			existing[r.Name] = r
		}
		want := map[string]bool{}
		for i, dr := range orderRows(des.Tables[t]) {
			want[dr.Name] = true
			idx := int64(i + 1)
			old, had := existing[dr.Name]
			if !had || old.Idx != idx {
				ops = append(ops, Op{Kind: OpSet, Table: t, Row: dr.Name, Field: IdxField, Value: Int(idx)})
			}
			for _, fk := range sortedKeys(dr.Fields) {
				nv := dr.Fields[fk]
				if ov, ok := old.Fields[fk]; (!ok && !nv.IsNull()) || (ok && ov != nv) {
					ops = append(ops, Op{Kind: OpSet, Table: t, Row: dr.Name, Field: fk, Value: nv})
				}
			}
		}
		for _, r := range cur.Tables[t] {
			if !want[r.Name] {
				ops = append(ops, Op{Kind: OpRemoveRow, Table: t, Row: r.Name})
			}
		}
	}
	return ops
}

// orderRows returns rows in the order they will be shown: by the idx the
// client gave (rows without one keep their place after those with one
// before them), ties by position in the array.
func orderRows(rows []DesiredRow) []DesiredRow {
	out := append([]DesiredRow(nil), rows...)
	last := int64(0)
	keys := make([]int64, len(out))
	for i, r := range out {
		if r.Idx != nil {
			last = *r.Idx
		}
		keys[i] = last
	}
	idx := make([]int, len(out))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return keys[idx[a]] < keys[idx[b]] })
	sorted := make([]DesiredRow, len(out))
	for i, j := range idx {
		sorted[i] = out[j]
	}
	return sorted
}

func sortedKeys(m map[string]Value) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
