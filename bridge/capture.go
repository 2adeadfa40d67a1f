package bridge

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"meridian/crdt"
)

// Capture is a master document as the site's database holds it after a
// local change (a Desk save, an import, a script): the values of the
// master's columns, its child rows, and when and by whom it was modified.
// The node diffs it against the replica and proposes what differs.
type Capture struct {
	Doctype    string
	Name       string
	Deleted    bool      // removed locally (a row in tabDeleted Document)
	Modified   time.Time // UTC; for a deletion, when it was deleted
	ModifiedBy string
	DocStatus  int64
	Fields     map[string]crdt.Value
	// Defaulted names the fields whose value is their column's default: a
	// replica that has no value for them does not need one.
	Defaulted map[string]bool
	Tables    map[string][]crdt.DesiredRow

	modifiedText string // modified as the database printed it (the watermark)
}

// Desired is the capture as a document to diff against cur (the
// replica's view): a field holding its column's default that cur has no
// value for is left out — nobody set it, the column's default did.
func (c *Capture) Desired(cur *crdt.View) *crdt.Desired {
	ds := c.DocStatus
	fields := make(map[string]crdt.Value, len(c.Fields))
	for k, v := range c.Fields {
		if c.Defaulted[k] {
			if _, ok := cur.Fields[k]; !ok {
				continue
			}
		}
		fields[k] = v
	}
	return &crdt.Desired{Fields: fields, Tables: c.Tables, DocStatus: &ds}
}

// Watermark is how far capture has read, tie-safe: rows ordered by
// (modified, name), deletions by (creation, name) of tabDeleted Document.
type Watermark struct {
	Modified, Name             string
	DeletedAt, DeletedDocument string
}

// DeletedDocumentTable is Frappe's log of deleted documents.
const DeletedDocumentTable = "tabDeleted Document"

// captureSettle keeps the watermark behind the clock: a transaction that
// set `modified` a moment ago may not have committed yet, and a watermark
// past it would skip that row forever. Rows newer than that are captured
// at once all the same; they are simply read again until they settle.
const captureSettle = 2 * time.Second

// textExpr selects a column as text on both dialects.
func textExpr(d Dialect, col string) string {
	if d == Postgres {
		return "CAST(" + d.mustQuote(col) + " AS text)"
	}
	return d.mustQuote(col)
}

// LoadWatermark returns where capture of a doctype stopped.
func (a *Applier) LoadWatermark(ctx context.Context, doctype string) (Watermark, error) {
	d := a.db.Dialect()
	var wm Watermark
	var m, n, da, dn sql.NullString
	err := queryRow(ctx, a.db, "SELECT "+d.mustQuote("capture_modified")+", "+d.mustQuote("capture_name")+", "+d.mustQuote("deleted_at")+", "+
		d.mustQuote("deleted_document")+" FROM "+d.mustQuote(StateTable)+" WHERE "+d.mustQuote("doctype")+" = "+d.Placeholder(1), []any{doctype}, &m, &n, &da, &dn)
	if err != nil && !isNoRows(err) {
		return wm, fmt.Errorf("bridge: reading the capture watermark of %s: %w", doctype, err)
	}
	wm = Watermark{Modified: m.String, Name: n.String, DeletedAt: da.String, DeletedDocument: dn.String}
	return wm, nil
}

// SaveWatermark records where capture of a doctype stopped.
func (a *Applier) SaveWatermark(ctx context.Context, doctype string, wm Watermark) error {
	d := a.db.Dialect()
	var q string
	if d == Postgres {
		q = `INSERT INTO "` + StateTable + `" ("doctype", "vv", "capture_modified", "capture_name", "deleted_at", "deleted_document") VALUES ($1, '{}', $2, $3, $4, $5)
ON CONFLICT ("doctype") DO UPDATE SET "capture_modified" = EXCLUDED."capture_modified", "capture_name" = EXCLUDED."capture_name",
"deleted_at" = EXCLUDED."deleted_at", "deleted_document" = EXCLUDED."deleted_document"`
	} else {
		q = "INSERT INTO `" + StateTable + "` (`doctype`, `vv`, `capture_modified`, `capture_name`, `deleted_at`, `deleted_document`) VALUES (?, '{}', ?, ?, ?, ?) " +
			"ON DUPLICATE KEY UPDATE `capture_modified` = VALUES(`capture_modified`), `capture_name` = VALUES(`capture_name`), " +
			"`deleted_at` = VALUES(`deleted_at`), `deleted_document` = VALUES(`deleted_document`)"
	}
	if _, err := a.db.Exec(ctx, q, doctype, wm.Modified, wm.Name, wm.DeletedAt, wm.DeletedDocument); err != nil {
		return fmt.Errorf("bridge: saving the capture watermark of %s: %w", doctype, err)
	}
	return nil
}

// Captures reads up to limit documents of a master changed after the
// watermark, and the documents deleted after it, and returns them with the
// watermark to save once they are in the replica (moved only past rows
// modified at least two seconds ago). A fresh watermark (empty) starts from now:
// rows that predate the bridge are adopted with `meridian bridge adopt`,
// not captured.
func (a *Applier) Captures(ctx context.Context, doctype string, wm Watermark, limit int) ([]Capture, Watermark, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	dt := a.siteType(doctype)
	if dt == nil {
		return nil, wm, fmt.Errorf("bridge: %s is not a doctype this bridge writes", doctype)
	}
	d := a.db.Dialect()
	settle := a.Settle
	if settle == 0 {
		settle = captureSettle
	}
	settledAt := time.Now().Add(-settle)
	settled := settledAt.In(a.loc).Format(sqlDatetime)
	if wm.Modified == "" {
		wm.Modified, wm.Name = settled, ""
	}
	if wm.DeletedAt == "" {
		wm.DeletedAt, wm.DeletedDocument = settled, ""
	}
	mq, nq := d.mustQuote("modified"), d.mustQuote("name")
	out, err := a.readDocs(ctx, dt,
		"("+mq+" > "+d.Placeholder(1)+" OR ("+mq+" = "+d.Placeholder(2)+" AND "+nq+" > "+d.Placeholder(3)+"))",
		[]any{wm.Modified, wm.Modified, wm.Name}, mq+", "+nq, limit)
	if err != nil {
		return nil, wm, err
	}
	advance := true
	for i := range out {
		// Recent rows are captured at once but the watermark stays behind
		// them until they are settled: a transaction that set an earlier
		// `modified` and has not committed yet is read by a later scan.
		// Rows read twice yield no edit the second time.
		if advance && !out[i].Modified.After(settledAt) {
			wm.Modified, wm.Name = out[i].modifiedText, out[i].Name
		} else {
			advance = false
		}
		if err := a.captureToMesh(doctype, dt, &out[i]); err != nil {
			return nil, wm, fmt.Errorf("bridge: %s %q: %w", dt.Name, out[i].Name, err)
		}
	}
	dels, wm, err := a.capturedDeletes(ctx, doctype, dt.Name, wm, limit, settledAt)
	if err != nil {
		return nil, wm, err
	}
	return append(out, dels...), wm, nil
}

func valueIsDefault(v crdt.Value, def string) bool {
	switch v.Kind {
	case crdt.KindInt:
		return strconv.FormatInt(v.Int, 10) == def
	case crdt.KindDec, crdt.KindStr:
		return v.Str == def
	}
	return false
}

// captureRows reads a captured document's child rows.
func (a *Applier) captureRows(ctx context.Context, dt *DocType, c *Capture) error {
	d := a.db.Dialect()
	for _, tf := range dt.TableFields() {
		child := a.types[tf.Options]
		cols := []string{"name", "idx"}
		for _, f := range child.ColumnFields() {
			cols = append(cols, f.Fieldname)
		}
		sel := make([]string, len(cols))
		for i, col := range cols {
			sel[i] = textExpr(d, col)
		}
		rows, err := a.db.Query(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM "+d.mustQuote(child.Table())+" WHERE "+d.mustQuote("parent")+" = "+d.Placeholder(1)+
			" AND "+d.mustQuote("parenttype")+" = "+d.Placeholder(2)+" AND "+d.mustQuote("parentfield")+" = "+d.Placeholder(3)+
			" ORDER BY "+d.mustQuote("idx")+", "+d.mustQuote("name"), c.Name, dt.Name, tf.Fieldname)
		if err != nil {
			return fmt.Errorf("bridge: capturing rows of %s %q: %w", dt.Name, c.Name, err)
		}
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		list := []crdt.DesiredRow{}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return err
			}
			idx, _ := strconv.ParseInt(vals[1].String, 10, 64)
			row := crdt.DesiredRow{Name: vals[0].String, Idx: &idx, Fields: map[string]crdt.Value{}}
			for i, f := range child.ColumnFields() {
				v, err := a.fromSQL(f, vals[2+i])
				if err != nil {
					rows.Close()
					return fmt.Errorf("bridge: %s %q row %s: field %s: %w", dt.Name, c.Name, row.Name, f.Fieldname, err)
				}
				if v.Kind != crdt.KindNull {
					row.Fields[f.Fieldname] = v
				}
			}
			list = append(list, row)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		c.Tables[tf.Fieldname] = list
	}
	return nil
}

// capturedDeletes reads the deletions of a master after the watermark.
func (a *Applier) capturedDeletes(ctx context.Context, doctype, siteDoctype string, wm Watermark, limit int, settledAt time.Time) ([]Capture, Watermark, error) {
	d := a.db.Dialect()
	exists, err := TableExists(ctx, a.db, DeletedDocumentTable)
	if err != nil || !exists {
		return nil, wm, err
	}
	cq, nq := d.mustQuote("creation"), d.mustQuote("name")
	rows, err := a.db.Query(ctx, "SELECT "+textExpr(d, "name")+", "+textExpr(d, "creation")+", "+textExpr(d, "deleted_name")+", "+textExpr(d, "owner")+
		" FROM "+d.mustQuote(DeletedDocumentTable)+" WHERE "+d.mustQuote("deleted_doctype")+" = "+d.Placeholder(1)+
		" AND ("+cq+" > "+d.Placeholder(2)+" OR ("+cq+" = "+d.Placeholder(3)+" AND "+nq+" > "+d.Placeholder(4)+"))"+
		" ORDER BY "+cq+", "+nq+" LIMIT "+strconv.Itoa(limit), siteDoctype, wm.DeletedAt, wm.DeletedAt, wm.DeletedDocument)
	if err != nil {
		return nil, wm, fmt.Errorf("bridge: reading %s: %w", DeletedDocumentTable, err)
	}
	defer rows.Close()
	var out []Capture
	advance := true
	for rows.Next() {
		var name, creation, deleted, owner sql.NullString
		if err := rows.Scan(&name, &creation, &deleted, &owner); err != nil {
			return nil, wm, err
		}
		at, err := a.parseTS(creation.String)
		if err != nil {
			return nil, wm, fmt.Errorf("bridge: %s %s: creation %q: %w", DeletedDocumentTable, name.String, creation.String, err)
		}
		out = append(out, Capture{Doctype: doctype, Name: deleted.String, Deleted: true, Modified: at, ModifiedBy: owner.String})
		if advance && !at.After(settledAt) {
			wm.DeletedAt, wm.DeletedDocument = creation.String, name.String
		} else {
			advance = false
		}
	}
	return out, wm, rows.Err()
}

// parseTS reads a naive timestamp of the site's zone.
func (a *Applier) parseTS(s string) (time.Time, error) {
	s = strings.Replace(s, "T", " ", 1)
	t, err := time.ParseInLocation("2006-01-02 15:04:05.999999", s, a.loc)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

// fromSQL converts a column's text to the value the mesh carries, as the
// admin API would for the same JSON: integers (and integral decimals) as
// Int, other numbers as exact decimals, datetimes in UTC.
func (a *Applier) fromSQL(f *DocField, v sql.NullString) (crdt.Value, error) {
	if !v.Valid {
		return crdt.Null, nil
	}
	s := v.String
	switch f.Fieldtype {
	case "Int", "Long Int", "Check":
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return crdt.Null, fmt.Errorf("%q is not an integer", s)
		}
		return crdt.Int(n), nil
	case "Currency", "Float", "Percent", "Duration", "Rating":
		dec, err := crdt.CanonicalDecimal(strings.TrimSpace(s))
		if err != nil {
			return crdt.Null, err
		}
		if n, err := strconv.ParseInt(dec, 10, 64); err == nil {
			return crdt.Int(n), nil
		}
		return crdt.Dec(dec)
	case "Date":
		if len(s) >= 10 {
			s = s[:10]
		}
		return crdt.Str(s), nil
	case "Datetime":
		u, err := crdt.NormalizeDatetime(strings.Replace(s, "T", " ", 1), a.loc)
		if err != nil {
			return crdt.Null, err
		}
		return crdt.Str(u), nil
	case "JSON":
		j, err := crdt.CanonicalJSON(s)
		if err != nil {
			return crdt.Null, err
		}
		return crdt.Str(j), nil
	}
	return crdt.Str(s), nil
}

// readDocs reads documents of a master (and their child rows) matching an
// SQL condition, in the given order.
func (a *Applier) readDocs(ctx context.Context, dt *DocType, where string, args []any, order string, limit int) ([]Capture, error) {
	d := a.db.Dialect()
	cols := []string{"name", "modified", "modified_by", "docstatus"}
	for _, f := range dt.ColumnFields() {
		cols = append(cols, f.Fieldname)
	}
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = textExpr(d, c)
	}
	q := "SELECT " + strings.Join(sel, ", ") + " FROM " + d.mustQuote(dt.Table()) + " WHERE " + where + " ORDER BY " + order + " LIMIT " + strconv.Itoa(limit)
	rows, err := a.db.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("bridge: reading %s: %w", dt.Name, err)
	}
	var out []Capture
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			rows.Close()
			return nil, err
		}
		c := Capture{Doctype: dt.Name, Name: vals[0].String, ModifiedBy: vals[2].String, Fields: map[string]crdt.Value{}, Defaulted: map[string]bool{},
			Tables: map[string][]crdt.DesiredRow{}, modifiedText: vals[1].String}
		c.Modified, err = a.parseTS(vals[1].String)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("bridge: %s %q: modified %q: %w", dt.Name, c.Name, vals[1].String, err)
		}
		c.DocStatus, _ = strconv.ParseInt(vals[3].String, 10, 64)
		for i, f := range dt.ColumnFields() {
			v, err := a.fromSQL(f, vals[4+i])
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("bridge: %s %q: field %s: %w", dt.Name, c.Name, f.Fieldname, err)
			}
			c.Fields[f.Fieldname] = v
			if col := a.specs[dt.Name].Column(f.Fieldname); col != nil && col.Default != nil && vals[4+i].Valid && valueIsDefault(v, col.Default.Value) {
				c.Defaulted[f.Fieldname] = true
			}
		}
		out = append(out, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		if err := a.captureRows(ctx, dt, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// AdoptPage reads up to limit documents of a master whose names sort after
// `after`: `meridian bridge adopt` walks a table with it.
func (a *Applier) AdoptPage(ctx context.Context, doctype, after string, limit int) ([]Capture, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	dt := a.siteType(doctype)
	if dt == nil {
		return nil, fmt.Errorf("bridge: %s is not a doctype this bridge writes", doctype)
	}
	d := a.db.Dialect()
	out, err := a.readDocs(ctx, dt, d.mustQuote("name")+" > "+d.Placeholder(1), []any{after}, d.mustQuote("name"), limit)
	if err != nil {
		return nil, err
	}
	for i := range out {
		if err := a.captureToMesh(doctype, dt, &out[i]); err != nil {
			return nil, fmt.Errorf("bridge: %s %q: %w", dt.Name, out[i].Name, err)
		}
	}
	return out, nil
}

// Count returns how many documents a master's table holds.
func (a *Applier) Count(ctx context.Context, doctype string) (int, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	dt := a.siteType(doctype)
	if dt == nil {
		return 0, fmt.Errorf("bridge: %s is not a doctype this bridge writes", doctype)
	}
	var n int64
	err := queryRow(ctx, a.db, "SELECT COUNT(*) FROM "+a.db.Dialect().mustQuote(dt.Table()), nil, &n)
	return int(n), err
}
