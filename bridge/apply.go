package bridge

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"meridian/crdt"
)

// StateTable holds, per doctype, the version vector of the replica state
// the bridge has written into the site's tables. It changes in the same
// transaction as the rows, so after a crash the bridge resumes exactly
// where the database says it stopped: nothing applied twice, nothing
// skipped.
const StateTable = "__meridian_bridge"

// DefaultUser is the modified_by (and owner, for documents the bridge
// creates) of the bridge's writes.
const DefaultUser = "Administrator"

// sqlDatetime is how naive datetimes are written (Frappe's own format).
const sqlDatetime = "2006-01-02 15:04:05.000000"

// Doc is one converged document to write: what a reader sees, and when it
// was created and last changed (UTC, from the writes' hybrid clocks), so
// every site writes the same creation and modified.
type Doc struct {
	View     *crdt.View
	Creation time.Time
	Modified time.Time
}

// DocFromCRDT computes a Doc from a replica's document: creation is the
// time of the write that (last) created it, modified that of its latest write.
func DocFromCRDT(d *crdt.Doc) Doc {
	var created, modified int64
	for _, s := range d.Register(crdt.LifeKey) {
		created = max(created, s.HLC.Physical())
	}
	for i := range d.Regs {
		for _, s := range d.Regs[i].Sibs {
			modified = max(modified, s.HLC.Physical())
		}
	}
	if created == 0 {
		created = modified
	}
	return Doc{View: d.View(), Creation: time.UnixMilli(created).UTC(), Modified: time.UnixMilli(modified).UTC()}
}

// Applier writes converged documents of master doctypes into a site's
// tables, exactly as Frappe lays them out: the master's columns only (a
// site's own custom fields and columns keep their values), child rows by
// parent/parentfield/parenttype, timestamps in the site's time zone.
type Applier struct {
	// mu serialises writers (Apply, EnsureState, Reload) against each other
	// and against readers of the definitions (capture, adoption): the node
	// applies from its bridge goroutine and from admin requests.
	mu    sync.RWMutex
	db    *DB
	loc   *time.Location
	user  string
	types map[string]*DocType
	specs map[string]*TableSpec
	// Settle is how far behind the clock capture stays (default 2 s).
	Settle time.Duration
	// failing holds the sync log's keys (doctype NUL name), so a success
	// clears its entry without a query per document.
	failing map[string]bool
	// maps are the site's names for mesh doctypes (by mesh and by site name).
	maps, bySite map[string]*mapper
	colCache     map[*DocType][]colField
	pkOnly       map[string]bool // table → no unique index but the primary key
}

// NewApplier prepares writing the given doctypes (masters and the child
// doctypes their Table fields name). Their tables must exist (EnsureTable).
func NewApplier(db *DB, tz TimeZone, user string, doctypes ...*DocType) (*Applier, error) {
	if user == "" {
		user = DefaultUser
	}
	loc := tz.Location
	if loc == nil {
		loc = time.UTC
	}
	a := &Applier{db: db, loc: loc, user: user, types: map[string]*DocType{}, specs: map[string]*TableSpec{}, failing: map[string]bool{}, maps: map[string]*mapper{}, bySite: map[string]*mapper{}}
	for _, dt := range doctypes {
		spec, err := NewTableSpec(db.Dialect(), dt)
		if err != nil {
			return nil, err
		}
		a.types[dt.Name], a.specs[dt.Name] = dt, spec
	}
	for _, dt := range doctypes {
		for _, f := range dt.Fields {
			if tableFieldtypes[f.Fieldtype] && a.types[f.Options] == nil {
				return nil, fmt.Errorf("%w: %s.%s is a table of %q, which was not given to the bridge", ErrInvalidDocType, dt.Name, f.Fieldname, f.Options)
			}
		}
	}
	return a, nil
}

// EnsureState creates the bridge's state and sync-log tables if they are
// missing, and reads the sync log.
func (a *Applier) EnsureState(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	d := a.db.Dialect()
	ts := "datetime(6)"
	opts := " ENGINE=InnoDB CHARACTER SET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
	if d == Postgres {
		ts, opts = "timestamp(6)", ""
	}
	_, err := a.db.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+d.mustQuote(StateTable)+" ("+
		d.mustQuote("doctype")+" varchar(140) NOT NULL PRIMARY KEY, "+
		d.mustQuote("vv")+" text NOT NULL, "+
		d.mustQuote("documents")+" bigint NOT NULL DEFAULT 0, "+
		d.mustQuote("modified")+" "+ts+", "+
		d.mustQuote("capture_modified")+" varchar(40), "+
		d.mustQuote("capture_name")+" varchar(140), "+
		d.mustQuote("deleted_at")+" varchar(40), "+
		d.mustQuote("deleted_document")+" varchar(140))"+opts)
	if err != nil {
		return fmt.Errorf("bridge: creating %s: %w", StateTable, err)
	}
	_, err = a.db.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+d.mustQuote(SyncLogTable)+" ("+
		d.mustQuote("doctype")+" varchar(140) NOT NULL, "+
		d.mustQuote("name")+" varchar(140) NOT NULL, "+
		d.mustQuote("reason")+" text NOT NULL, "+
		d.mustQuote("attempts")+" bigint NOT NULL DEFAULT 1, "+
		d.mustQuote("first_failed")+" "+ts+" NOT NULL, "+
		d.mustQuote("last_failed")+" "+ts+" NOT NULL, "+
		d.mustQuote("next_retry")+" "+ts+" NOT NULL, "+
		"PRIMARY KEY ("+d.mustQuote("doctype")+", "+d.mustQuote("name")+"))"+opts)
	if err != nil {
		return fmt.Errorf("bridge: creating %s: %w", SyncLogTable, err)
	}
	fs, err := a.Failures(ctx, false)
	if err != nil {
		return err
	}
	a.failing = map[string]bool{}
	for _, f := range fs {
		a.failing[f.Doctype+"\x00"+f.Name] = true
	}
	return nil
}

// State returns the version vector the bridge has applied for a doctype
// (empty when it has applied nothing).
func (a *Applier) State(ctx context.Context, doctype string) (crdt.VersionVector, error) {
	d := a.db.Dialect()
	var raw string
	err := queryRow(ctx, a.db, "SELECT "+d.mustQuote("vv")+" FROM "+d.mustQuote(StateTable)+" WHERE "+d.mustQuote("doctype")+" = "+d.Placeholder(1),
		[]any{doctype}, &raw)
	if err != nil {
		if isNoRows(err) {
			return crdt.VersionVector{}, nil
		}
		return nil, fmt.Errorf("bridge: reading the applied state of %s: %w", doctype, err)
	}
	return decodeVV(raw)
}

// ApplyStats counts what one Apply wrote.
type ApplyStats struct {
	Upserted, Deleted, RowsWritten, RowsDeleted int
	// Failed lists the documents that could not be written: each is in the
	// sync log with its reason and is retried; the others were written.
	Failed []Failure
	// Held lists the documents waiting for a Link target (a document of a
	// master written here) to arrive; they are in the sync log too and
	// retried every second.
	Held []Failure
}

// Apply writes documents of one master doctype and, unless vv is nil, the
// version vector they bring the site to, in one transaction. A document
// that cannot be written (a value its column refuses, a constraint) does
// not stop the others: it is rolled back alone (a savepoint) and recorded
// in the sync log in the same transaction, so after any crash the database
// holds either the whole batch with its failures logged, or nothing of it.
func (a *Applier) Apply(ctx context.Context, doctype string, docs []Doc, vv crdt.VersionVector) (ApplyStats, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var st ApplyStats
	dt := a.siteType(doctype)
	if dt == nil {
		return st, fmt.Errorf("bridge: %s is not a doctype this bridge writes", doctype)
	}
	for _, doc := range docs {
		if doc.View == nil || doc.View.Doctype != doctype {
			return st, fmt.Errorf("bridge: a document of another doctype in a batch of %s", doctype)
		}
	}
	mesh := docs
	docs = make([]Doc, len(mesh))
	var unmappable []Failure
	for i, doc := range mesh {
		v, err := a.viewToSite(dt, doc.View)
		if err != nil {
			unmappable = append(unmappable, Failure{Doctype: doctype, Name: doc.View.Name, Reason: err.Error()})
			v = nil
		}
		docs[i] = Doc{View: v, Creation: doc.Creation, Modified: doc.Modified}
		if v == nil {
			docs[i].View = &crdt.View{Doctype: dt.Name, Name: doc.View.Name}
		}
	}
	bad := map[string]string{}
	for _, f := range unmappable {
		bad[f.Name] = f.Reason
	}
	tx, err := a.db.Begin(ctx)
	if err != nil {
		return st, err
	}
	defer tx.Rollback(ctx)
	d := a.db.Dialect()
	now := time.Now()
	var cleared []string
	batch := make([]string, len(docs))
	for i, doc := range docs {
		batch[i] = doc.View.Name
	}
	ex, err := a.existing(ctx, tx, dt, batch)
	if err != nil {
		return st, fmt.Errorf("bridge: reading which documents of %s exist: %w", doctype, err)
	}
	held, err := a.heldLinks(ctx, tx, dt, docs)
	if err != nil {
		return st, fmt.Errorf("bridge: checking the Link targets of %s: %w", doctype, err)
	}
	// Fast path: every writable document in a few multi-row statements. If
	// the database refuses any of it, the batch is rolled back to here and
	// written document by document, so the refused one is isolated.
	var fast []Doc
	for _, doc := range docs {
		if _, ok := bad[doc.View.Name]; !ok && held[doc.View.Name] == "" {
			fast = append(fast, doc)
		}
	}
	slow := docs
	if len(fast) > 1 {
		if _, err := tx.Exec(ctx, "SAVEPOINT "+d.mustQuote("meridian_batch")); err != nil {
			return st, err
		}
		one, err := a.applyBatch(ctx, tx, dt, fast, ex)
		if err == nil {
			if _, err := tx.Exec(ctx, "RELEASE SAVEPOINT "+d.mustQuote("meridian_batch")); err != nil {
				return st, err
			}
			st.Upserted, st.Deleted, st.RowsWritten, st.RowsDeleted = one.Upserted, one.Deleted, one.RowsWritten, one.RowsDeleted
			for _, doc := range fast {
				if a.failing[doctype+"\x00"+doc.View.Name] {
					if _, err := tx.Exec(ctx, "DELETE FROM "+d.mustQuote(SyncLogTable)+" WHERE "+d.mustQuote("doctype")+" = "+d.Placeholder(1)+
						" AND "+d.mustQuote("name")+" = "+d.Placeholder(2), doctype, doc.View.Name); err != nil {
						return st, err
					}
					cleared = append(cleared, doctype+"\x00"+doc.View.Name)
				}
			}
			slow = nil
			for _, doc := range docs {
				if _, ok := bad[doc.View.Name]; ok || held[doc.View.Name] != "" {
					slow = append(slow, doc)
				}
			}
		} else if _, rerr := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT "+d.mustQuote("meridian_batch")); rerr != nil {
			return st, fmt.Errorf("bridge: writing %s: %w (and rolling it back: %v)", doctype, err, rerr)
		}
	}
	for _, doc := range slow {
		if _, err := tx.Exec(ctx, "SAVEPOINT "+d.mustQuote("meridian_doc")); err != nil {
			return st, err
		}
		one := ApplyStats{}
		if why, ok := bad[doc.View.Name]; ok {
			f, lerr := a.logFailure(ctx, tx, doctype, doc.View.Name, errors.New(why), now)
			if lerr != nil {
				return st, lerr
			}
			st.Failed = append(st.Failed, f)
			if _, err := tx.Exec(ctx, "RELEASE SAVEPOINT "+d.mustQuote("meridian_doc")); err != nil {
				return st, err
			}
			continue
		}
		if missing := held[doc.View.Name]; missing != "" {
			f, lerr := a.logFailure(ctx, tx, doctype, doc.View.Name, errors.New(missing), now)
			if lerr != nil {
				return st, lerr
			}
			st.Held = append(st.Held, f)
			if _, err := tx.Exec(ctx, "RELEASE SAVEPOINT "+d.mustQuote("meridian_doc")); err != nil {
				return st, err
			}
			continue
		}
		if err := a.applyDoc(ctx, tx, dt, doc, ex, &one); err != nil {
			if _, rerr := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT "+d.mustQuote("meridian_doc")); rerr != nil {
				return st, fmt.Errorf("bridge: writing %s %q: %w (and rolling it back: %v)", doctype, doc.View.Name, err, rerr)
			}
			f, lerr := a.logFailure(ctx, tx, doctype, doc.View.Name, err, now)
			if lerr != nil {
				return st, lerr
			}
			st.Failed = append(st.Failed, f)
			continue
		}
		st.Upserted += one.Upserted
		st.Deleted += one.Deleted
		st.RowsWritten += one.RowsWritten
		st.RowsDeleted += one.RowsDeleted
		if a.failing[doctype+"\x00"+doc.View.Name] {
			if _, err := tx.Exec(ctx, "DELETE FROM "+d.mustQuote(SyncLogTable)+" WHERE "+d.mustQuote("doctype")+" = "+d.Placeholder(1)+
				" AND "+d.mustQuote("name")+" = "+d.Placeholder(2), doctype, doc.View.Name); err != nil {
				return st, err
			}
			cleared = append(cleared, doctype+"\x00"+doc.View.Name)
		}
	}
	if vv != nil {
		if err := a.saveState(ctx, tx, doctype, vv, len(docs)); err != nil {
			return st, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return ApplyStats{}, err
	}
	for _, k := range cleared {
		delete(a.failing, k)
	}
	for _, f := range append(st.Failed, st.Held...) {
		a.failing[f.Doctype+"\x00"+f.Name] = true
	}
	return st, nil
}

// heldPrefix starts the sync-log reason of a document held for a Link.
const heldPrefix = "held: "

// heldLinks returns, per document that must wait, why: a Link field naming
// a document of another master this bridge writes that the site's
// database does not hold yet (Frappe would refuse to open it). Targets are
// looked up a few hundred at a time.
func (a *Applier) heldLinks(ctx context.Context, tx *Tx, dt *DocType, docs []Doc) (map[string]string, error) {
	type ref struct{ doc, field, target, name string }
	var refs []ref
	want := map[string]map[string]bool{} // target doctype → names
	add := func(doc, field, target string, v crdt.Value) {
		if v.Kind != crdt.KindStr || v.Str == "" {
			return
		}
		t := a.types[target]
		if t == nil || t.IsTable || (target == dt.Name && v.Str == doc) {
			return // not a master written here, or itself
		}
		refs = append(refs, ref{doc, field, target, v.Str})
		if want[target] == nil {
			want[target] = map[string]bool{}
		}
		want[target][v.Str] = true
	}
	for _, doc := range docs {
		v := doc.View
		if !v.Exists {
			continue
		}
		for _, f := range dt.ColumnFields() {
			if f.Fieldtype == "Link" {
				add(v.Name, f.Fieldname, f.Options, v.Fields[f.Fieldname])
			}
		}
		for _, tf := range dt.TableFields() {
			child := a.types[tf.Options]
			for _, row := range v.Tables[tf.Fieldname] {
				for _, f := range child.ColumnFields() {
					if f.Fieldtype == "Link" {
						add(v.Name, tf.Fieldname+"."+f.Fieldname, f.Options, row.Fields[f.Fieldname])
					}
				}
			}
		}
	}
	out := map[string]string{}
	if len(refs) == 0 {
		return out, nil
	}
	d := a.db.Dialect()
	present := map[string]map[string]bool{}
	for target, names := range want {
		present[target] = map[string]bool{}
		if target == dt.Name { // written in this very batch counts as present
			for _, doc := range docs {
				if doc.View.Exists {
					present[target][doc.View.Name] = true
				}
			}
		}
		list := sortedNames(names)
		for i := 0; i < len(list); i += 500 {
			part := list[i:min(i+500, len(list))]
			in := make([]string, len(part))
			args := make([]any, len(part))
			for j, n := range part {
				in[j], args[j] = d.Placeholder(j+1), n
			}
			rows, err := tx.Query(ctx, "SELECT "+textExpr(d, "name")+" FROM "+d.mustQuote(a.types[target].Table())+" WHERE "+d.mustQuote("name")+" IN ("+strings.Join(in, ", ")+")", args...)
			if err != nil {
				return nil, err
			}
			for rows.Next() {
				var n string
				if err := rows.Scan(&n); err != nil {
					rows.Close()
					return nil, err
				}
				present[target][n] = true
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return nil, err
			}
		}
	}
	for _, r := range refs {
		if out[r.doc] == "" && !present[r.target][r.name] {
			out[r.doc] = fmt.Sprintf("%sLink %s → %s %q has not arrived in this site's database yet; written once it has", heldPrefix, r.field, r.target, r.name)
		}
	}
	return out, nil
}

func sortedNames(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// SyncLogTable is the bridge's durable sync log: every document it could
// not write, with the reason, the attempts and when it is retried next.
const SyncLogTable = "__meridian_synclog"

// Failure is one entry of the sync log.
type Failure struct {
	Doctype     string    `json:"doctype"`
	Name        string    `json:"name"`
	Reason      string    `json:"reason"`
	Attempts    int       `json:"attempts"`
	FirstFailed time.Time `json:"first_failed"`
	LastFailed  time.Time `json:"last_failed"`
	NextRetry   time.Time `json:"next_retry"`
}

// retryDelay is the back-off after n failed attempts: 2 s doubling, at most an hour.
func retryDelay(n int) time.Duration {
	d := 2 * time.Second
	for i := 1; i < n && d < time.Hour; i++ {
		d *= 2
	}
	return min(d, time.Hour)
}

func (a *Applier) logFailure(ctx context.Context, tx *Tx, doctype, name string, cause error, now time.Time) (Failure, error) {
	d := a.db.Dialect()
	f := Failure{Doctype: doctype, Name: name, Reason: cause.Error(), Attempts: 1, FirstFailed: now.UTC(), LastFailed: now.UTC()}
	var first string
	var attempts int64
	err := queryRow(ctx, tx, "SELECT "+d.mustQuote("attempts")+", "+castText(d, "first_failed")+" FROM "+d.mustQuote(SyncLogTable)+
		" WHERE "+d.mustQuote("doctype")+" = "+d.Placeholder(1)+" AND "+d.mustQuote("name")+" = "+d.Placeholder(2), []any{doctype, name}, &attempts, &first)
	switch {
	case err == nil:
		f.Attempts = int(attempts) + 1
		if t, perr := time.Parse(sqlDatetime, first); perr == nil {
			f.FirstFailed = t
		}
		if _, err := tx.Exec(ctx, "DELETE FROM "+d.mustQuote(SyncLogTable)+" WHERE "+d.mustQuote("doctype")+" = "+d.Placeholder(1)+
			" AND "+d.mustQuote("name")+" = "+d.Placeholder(2), doctype, name); err != nil {
			return f, err
		}
	case !isNoRows(err):
		return f, fmt.Errorf("bridge: reading the sync log: %w", err)
	}
	f.NextRetry = now.Add(retryDelay(f.Attempts)).UTC()
	if strings.HasPrefix(f.Reason, heldPrefix) {
		f.NextRetry = now.Add(time.Second).UTC() // the target usually arrives within moments
	}
	_, err = tx.Exec(ctx, "INSERT INTO "+d.mustQuote(SyncLogTable)+" ("+d.mustQuote("doctype")+", "+d.mustQuote("name")+", "+d.mustQuote("reason")+", "+
		d.mustQuote("attempts")+", "+d.mustQuote("first_failed")+", "+d.mustQuote("last_failed")+", "+d.mustQuote("next_retry")+") VALUES ("+
		d.Placeholder(1)+", "+d.Placeholder(2)+", "+d.Placeholder(3)+", "+d.Placeholder(4)+", "+d.Placeholder(5)+", "+d.Placeholder(6)+", "+d.Placeholder(7)+")",
		doctype, name, f.Reason, f.Attempts, f.FirstFailed.Format(sqlDatetime), f.LastFailed.Format(sqlDatetime), f.NextRetry.Format(sqlDatetime))
	if err != nil {
		return f, fmt.Errorf("bridge: writing the sync log: %w", err)
	}
	return f, nil
}

// Failures lists the sync log (UTC times); with due, only the entries
// whose next retry has come.
func (a *Applier) Failures(ctx context.Context, due bool) ([]Failure, error) {
	d := a.db.Dialect()
	q := "SELECT " + d.mustQuote("doctype") + ", " + d.mustQuote("name") + ", " + d.mustQuote("reason") + ", " + d.mustQuote("attempts") + ", " +
		castText(d, "first_failed") + ", " + castText(d, "last_failed") + ", " + castText(d, "next_retry") + " FROM " + d.mustQuote(SyncLogTable)
	var args []any
	if due {
		q += " WHERE " + d.mustQuote("next_retry") + " <= " + d.Placeholder(1)
		args = append(args, time.Now().UTC().Format(sqlDatetime))
	}
	q += " ORDER BY " + d.mustQuote("doctype") + ", " + d.mustQuote("name")
	rows, err := a.db.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("bridge: reading the sync log: %w", err)
	}
	defer rows.Close()
	var out []Failure
	for rows.Next() {
		var f Failure
		var attempts int64
		var first, last, next string
		if err := rows.Scan(&f.Doctype, &f.Name, &f.Reason, &attempts, &first, &last, &next); err != nil {
			return nil, err
		}
		f.Attempts = int(attempts)
		f.FirstFailed, _ = time.Parse(sqlDatetime, first[:min(len(first), len(sqlDatetime))])
		f.LastFailed, _ = time.Parse(sqlDatetime, last[:min(len(last), len(sqlDatetime))])
		f.NextRetry, _ = time.Parse(sqlDatetime, next[:min(len(next), len(sqlDatetime))])
		out = append(out, f)
	}
	return out, rows.Err()
}

// castText renders a datetime column as text in the sqlDatetime layout.
func castText(d Dialect, col string) string {
	if d == Postgres {
		return "to_char(" + d.mustQuote(col) + ", 'YYYY-MM-DD HH24:MI:SS.US')"
	}
	return "DATE_FORMAT(" + d.mustQuote(col) + ", '%Y-%m-%d %H:%i:%s.%f')"
}

func (a *Applier) applyDoc(ctx context.Context, tx *Tx, dt *DocType, doc Doc, ex existence, st *ApplyStats) error {
	v := doc.View
	if !v.Exists {
		for _, f := range dt.Fields {
			if tableFieldtypes[f.Fieldtype] {
				n, err := a.deleteRows(ctx, tx, a.types[f.Options], dt.Name, v.Name, f.Fieldname, nil)
				if err != nil {
					return err
				}
				st.RowsDeleted += n
			}
		}
		d := a.db.Dialect()
		n, err := tx.Exec(ctx, "DELETE FROM "+d.mustQuote(dt.Table())+" WHERE "+d.mustQuote("name")+" = "+d.Placeholder(1), v.Name)
		if err != nil {
			return err
		}
		if n > 0 {
			st.Deleted++
		}
		return nil
	}
	cols := map[string]any{
		"name": v.Name, "creation": a.ts(doc.Creation), "modified": a.ts(doc.Modified),
		"modified_by": a.user, "owner": a.user, "docstatus": v.DocStatus, "idx": 0,
	}
	if err := a.fieldValues(dt, v.Fields, cols); err != nil {
		return err
	}
	if err := a.upsert(ctx, tx, dt, cols, ex[dt.Table()][v.Name]); err != nil {
		return err
	}
	st.Upserted++
	for _, f := range dt.Fields {
		if !tableFieldtypes[f.Fieldtype] {
			continue
		}
		child := a.types[f.Options]
		keep := map[string]bool{}
		for _, row := range v.Tables[f.Fieldname] {
			rc := map[string]any{
				"name": row.Name, "creation": a.ts(doc.Creation), "modified": a.ts(doc.Modified),
				"modified_by": a.user, "owner": a.user, "docstatus": v.DocStatus, "idx": row.Idx,
				"parent": v.Name, "parentfield": f.Fieldname, "parenttype": dt.Name,
			}
			if err := a.fieldValues(child, row.Fields, rc); err != nil {
				return fmt.Errorf("row %s of %s: %w", row.Name, f.Fieldname, err)
			}
			if err := a.upsert(ctx, tx, child, rc, ex[child.Table()][row.Name]); err != nil {
				return fmt.Errorf("row %s of %s: %w", row.Name, f.Fieldname, err)
			}
			keep[row.Name] = true
			st.RowsWritten++
		}
		n, err := a.deleteRows(ctx, tx, child, dt.Name, v.Name, f.Fieldname, keep)
		if err != nil {
			return err
		}
		st.RowsDeleted += n
	}
	return nil
}

// fieldValues converts a document's (or row's) fields to column values,
// for every column-backed field of the master's definition: a field the
// document does not hold is written as the column's default (Frappe's
// NOT NULL numeric and Check columns) or NULL.
// colField is a column-backed field with its column and varchar length.
type colField struct {
	f       *DocField
	col     *Column
	varchar int
}

// columns returns a doctype's column-backed fields (computed once per
// definition: the writer calls it for every row).
func (a *Applier) columns(dt *DocType) []colField {
	if cf, ok := a.colCache[dt]; ok {
		return cf
	}
	spec := a.specs[dt.Name]
	var out []colField
	for _, f := range dt.ColumnFields() {
		if col := spec.Column(f.Fieldname); col != nil {
			out = append(out, colField{f, col, varcharLength(col.Type)})
		}
	}
	if a.colCache == nil {
		a.colCache = map[*DocType][]colField{}
	}
	a.colCache[dt] = out
	return out
}

func (a *Applier) fieldValues(dt *DocType, fields map[string]crdt.Value, out map[string]any) error {
	cs := a.columns(dt)
	vals := make([]any, len(cs))
	if err := a.fieldSlice(dt, fields, vals); err != nil {
		return err
	}
	for i, c := range cs {
		out[c.f.Fieldname] = vals[i]
	}
	return nil
}

func nullFor(c *Column) any {
	if c.NotNull && c.Default != nil {
		return c.Default.Value
	}
	if c.NotNull {
		return ""
	}
	return nil
}

// sqlValue converts a replicated value to what the column takes, and
// refuses (naming the fieldtype) a value the column could not hold.
func (a *Applier) sqlValue(f *DocField, v crdt.Value) (any, error) {
	switch f.Fieldtype {
	case "Int", "Long Int", "Check":
		if v.Kind == crdt.KindInt {
			return v.Int, nil
		}
		if v.Kind == crdt.KindStr {
			if n, err := strconv.ParseInt(strings.TrimSpace(v.Str), 10, 64); err == nil {
				return n, nil
			}
		}
		return nil, fmt.Errorf("%q is not an integer, and the field is %s", v.String(), f.Fieldtype)
	case "Currency", "Float", "Percent", "Duration", "Rating":
		switch v.Kind {
		case crdt.KindInt:
			return strconv.FormatInt(v.Int, 10), nil
		case crdt.KindDec:
			return v.Str, nil
		case crdt.KindStr:
			if dec, err := crdt.CanonicalDecimal(strings.TrimSpace(v.Str)); err == nil {
				return dec, nil
			}
		}
		return nil, fmt.Errorf("%q is not a number, and the field is %s", v.String(), f.Fieldtype)
	case "Date":
		if v.Kind == crdt.KindStr {
			if _, err := time.Parse("2006-01-02", v.Str); err == nil {
				return v.Str, nil
			}
		}
		return nil, fmt.Errorf("%q is not a date (YYYY-MM-DD)", v.String())
	}
	switch v.Kind {
	case crdt.KindInt:
		return v.Int, nil
	case crdt.KindDec:
		return v.Str, nil
	case crdt.KindStr:
		if f.Fieldtype == "Datetime" && v.Str != "" {
			t, err := time.ParseInLocation(crdt.DatetimeLayout, v.Str, time.UTC)
			if err != nil {
				return nil, fmt.Errorf("datetime %q is not in the UTC form values travel in", v.Str)
			}
			return t.In(a.loc).Format(sqlDatetime), nil
		}
		return v.Str, nil
	}
	return nil, fmt.Errorf("a %s value cannot be written", v.Kind)
}

func (a *Applier) ts(t time.Time) string { return t.In(a.loc).Format(sqlDatetime) }

// upsert inserts a row or updates the given columns of an existing one
// (exists says which, from the batch's existence check); creation and
// owner are kept when the row exists, and columns not given (a site's own)
// are never touched. It is not INSERT … ON DUPLICATE KEY UPDATE: on
// MariaDB that updates whichever row a *unique* column collides with,
// which would hand another document's row to this one.
func (a *Applier) upsert(ctx context.Context, tx *Tx, dt *DocType, cols map[string]any, exists bool) error {
	d := a.db.Dialect()
	names := make([]string, 0, len(cols))
	for c := range cols {
		names = append(names, c)
	}
	sort.Strings(names)
	var b strings.Builder
	var args []any
	if exists {
		b.WriteString("UPDATE " + d.mustQuote(dt.Table()) + " SET ")
		first := true
		for _, c := range names {
			if c == "name" || c == "creation" || c == "owner" {
				continue
			}
			if !first {
				b.WriteString(", ")
			}
			first = false
			args = append(args, cols[c])
			b.WriteString(d.mustQuote(c) + " = " + d.Placeholder(len(args)))
		}
		args = append(args, cols["name"])
		b.WriteString(" WHERE " + d.mustQuote("name") + " = " + d.Placeholder(len(args)))
		_, err := tx.Exec(ctx, b.String(), args...)
		return err
	}
	b.WriteString("INSERT INTO " + d.mustQuote(dt.Table()) + " (")
	for i, c := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(d.mustQuote(c))
		args = append(args, cols[c])
	}
	b.WriteString(") VALUES (")
	for i := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(d.Placeholder(i + 1))
	}
	b.WriteString(")")
	_, err := tx.Exec(ctx, b.String(), args...)
	return err
}

// existence is which rows of the batch's documents exist, per table.
type existence map[string]map[string]bool

// existing reads which of the documents (and which of their child rows)
// the tables hold, a few hundred names per query.
func (a *Applier) existing(ctx context.Context, tx *Tx, dt *DocType, names []string) (existence, error) {
	d := a.db.Dialect()
	ex := existence{dt.Table(): {}}
	tables := map[string]bool{}
	for _, tf := range dt.TableFields() {
		if c := a.types[tf.Options]; c != nil {
			tables[c.Table()] = true
			ex[c.Table()] = map[string]bool{}
		}
	}
	for i := 0; i < len(names); i += 500 {
		part := names[i:min(i+500, len(names))]
		in := make([]string, len(part))
		args := make([]any, len(part))
		for j, n := range part {
			in[j] = d.Placeholder(j + 1)
			args[j] = n
		}
		list := strings.Join(in, ", ")
		read := func(table, q string, args []any) error {
			rows, err := tx.Query(ctx, q, args...)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var n string
				if err := rows.Scan(&n); err != nil {
					return err
				}
				ex[table][n] = true
			}
			return rows.Err()
		}
		if err := read(dt.Table(), "SELECT "+textExpr(d, "name")+" FROM "+d.mustQuote(dt.Table())+" WHERE "+d.mustQuote("name")+" IN ("+list+")", args); err != nil {
			return nil, err
		}
		for t := range tables {
			q := "SELECT " + textExpr(d, "name") + " FROM " + d.mustQuote(t) + " WHERE " + d.mustQuote("parent") + " IN (" + list + ") AND " +
				d.mustQuote("parenttype") + " = " + d.Placeholder(len(part)+1)
			if err := read(t, q, append(append([]any{}, args...), dt.Name)); err != nil {
				return nil, err
			}
		}
	}
	return ex, nil
}

// deleteRows removes a parent's rows of one child table, except keep.
func (a *Applier) deleteRows(ctx context.Context, tx *Tx, child *DocType, parenttype, parent, parentfield string, keep map[string]bool) (int, error) {
	d := a.db.Dialect()
	q := "DELETE FROM " + d.mustQuote(child.Table()) + " WHERE " + d.mustQuote("parent") + " = " + d.Placeholder(1) +
		" AND " + d.mustQuote("parenttype") + " = " + d.Placeholder(2) + " AND " + d.mustQuote("parentfield") + " = " + d.Placeholder(3)
	args := []any{parent, parenttype, parentfield}
	if len(keep) > 0 {
		names := make([]string, 0, len(keep))
		for n := range keep {
			names = append(names, n)
		}
		sort.Strings(names)
		q += " AND " + d.mustQuote("name") + " NOT IN ("
		for i, n := range names {
			if i > 0 {
				q += ", "
			}
			q += d.Placeholder(len(args) + 1)
			args = append(args, n)
		}
		q += ")"
	}
	n, err := tx.Exec(ctx, q, args...)
	return int(n), err
}

func (a *Applier) saveState(ctx context.Context, tx *Tx, doctype string, vv crdt.VersionVector, docs int) error {
	d := a.db.Dialect()
	raw, err := encodeVV(vv)
	if err != nil {
		return err
	}
	now := time.Now().In(a.loc).Format(sqlDatetime)
	var q string
	if d == Postgres {
		q = `INSERT INTO ` + d.mustQuote(StateTable) + ` ("doctype", "vv", "documents", "modified") VALUES ($1, $2, $3, $4)
ON CONFLICT ("doctype") DO UPDATE SET "vv" = EXCLUDED."vv", "documents" = ` + d.mustQuote(StateTable) + `."documents" + EXCLUDED."documents", "modified" = EXCLUDED."modified"`
	} else {
		q = "INSERT INTO " + d.mustQuote(StateTable) + " (`doctype`, `vv`, `documents`, `modified`) VALUES (?, ?, ?, ?) " +
			"ON DUPLICATE KEY UPDATE `vv` = VALUES(`vv`), `documents` = `documents` + VALUES(`documents`), `modified` = VALUES(`modified`)"
	}
	if _, err := tx.Exec(ctx, q, doctype, raw, docs, now); err != nil {
		return fmt.Errorf("bridge: saving the applied state of %s: %w", doctype, err)
	}
	return nil
}

// vvJSON is the state table's form of a version vector: site → [max,
// [lo, hi]…] (the delivered prefix, then the intervals beyond it).
type vvJSON map[string][]uint64

func encodeVV(vv crdt.VersionVector) (string, error) {
	m := vvJSON{}
	for site, s := range vv {
		e := []uint64{s.Max}
		for _, iv := range s.Extra {
			e = append(e, iv.Lo, iv.Hi)
		}
		m[string(site)] = e
	}
	raw, err := json.Marshal(m)
	return string(raw), err
}

func decodeVV(raw string) (crdt.VersionVector, error) {
	var m vvJSON
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		return nil, fmt.Errorf("bridge: %s holds an unreadable version vector: %w", StateTable, err)
	}
	vv := crdt.VersionVector{}
	for site, e := range m {
		if len(e) == 0 || len(e)%2 != 1 {
			return nil, fmt.Errorf("bridge: %s: malformed entry for %s", StateTable, site)
		}
		if e[0] > 0 {
			vv.Add(crdt.SiteID(site), 1, e[0])
		}
		for i := 1; i+1 < len(e); i += 2 {
			if e[i] == 0 || e[i] > e[i+1] {
				return nil, fmt.Errorf("bridge: %s: malformed interval for %s", StateTable, site)
			}
			vv.Add(crdt.SiteID(site), e[i], e[i+1])
		}
	}
	return vv, nil
}

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

// Reload replaces the definitions of doctypes (a new master version: the
// site ran its migration, or a new DocType file was put in place) after
// EnsureTable has added their columns; documents written from now on fill
// the new columns.
func (a *Applier) Reload(doctypes ...*DocType) error {
	specs := map[string]*TableSpec{}
	for _, dt := range doctypes {
		spec, err := NewTableSpec(a.db.Dialect(), dt)
		if err != nil {
			return err
		}
		specs[dt.Name] = spec
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pkOnly = nil // the tables may have gained indexes
	for _, dt := range doctypes {
		a.types[dt.Name], a.specs[dt.Name] = dt, specs[dt.Name]
	}
	for _, dt := range doctypes {
		for _, f := range dt.Fields {
			if tableFieldtypes[f.Fieldtype] && a.types[f.Options] == nil {
				return fmt.Errorf("%w: %s.%s is a table of %q, which was not given to the bridge", ErrInvalidDocType, dt.Name, f.Fieldname, f.Options)
			}
		}
	}
	return nil
}

// varcharLength returns n for "varchar(n)", 0 for other types.
func varcharLength(typ string) int {
	if !strings.HasPrefix(typ, "varchar(") || !strings.HasSuffix(typ, ")") {
		return 0
	}
	n, err := strconv.Atoi(typ[len("varchar(") : len(typ)-1])
	if err != nil {
		return 0
	}
	return n
}

// applyBatch writes documents with a few multi-row statements per table:
// inserts for new rows, updates for existing ones, one delete per child
// table for removed rows, and deletes for deleted documents. Any error
// leaves it to the caller to roll back and go document by document.
func (a *Applier) applyBatch(ctx context.Context, tx *Tx, dt *DocType, docs []Doc, ex existence) (ApplyStats, error) {
	var st ApplyStats
	d := a.db.Dialect()
	var live, dead []string
	pcols := a.rowColumns(dt, false)
	var parents [][]any
	children := map[string][][]any{} // table fieldname → rows
	for _, doc := range docs {
		v := doc.View
		if !v.Exists {
			dead = append(dead, v.Name)
			continue
		}
		live = append(live, v.Name)
		creation, modified := a.ts(doc.Creation), a.ts(doc.Modified)
		row := make([]any, len(pcols))
		copy(row, []any{v.Name, creation, modified, a.user, a.user, v.DocStatus, 0})
		if err := a.fieldSlice(dt, v.Fields, row[7:]); err != nil {
			return st, err
		}
		parents = append(parents, row)
		for _, tf := range dt.TableFields() {
			child := a.types[tf.Options]
			ccols := a.rowColumns(child, true)
			for _, r := range v.Tables[tf.Fieldname] {
				rc := make([]any, len(ccols))
				copy(rc, []any{r.Name, creation, modified, a.user, a.user, v.DocStatus, r.Idx, v.Name, tf.Fieldname, dt.Name})
				if err := a.fieldSlice(child, r.Fields, rc[10:]); err != nil {
					return st, fmt.Errorf("row %s of %s: %w", r.Name, tf.Fieldname, err)
				}
				children[tf.Fieldname] = append(children[tf.Fieldname], rc)
			}
		}
	}
	in := func(names []string, from int) (string, []any) {
		ph := make([]string, len(names))
		args := make([]any, len(names))
		for i, n := range names {
			ph[i], args[i] = d.Placeholder(from+i), n
		}
		return strings.Join(ph, ", "), args
	}
	// Deleted documents and their rows.
	for i := 0; i < len(dead); i += 500 {
		part := dead[i:min(i+500, len(dead))]
		for _, tf := range dt.TableFields() {
			child := a.types[tf.Options]
			list, args := in(part, 3)
			n, err := tx.Exec(ctx, "DELETE FROM "+d.mustQuote(child.Table())+" WHERE "+d.mustQuote("parenttype")+" = "+d.Placeholder(1)+
				" AND "+d.mustQuote("parentfield")+" = "+d.Placeholder(2)+" AND "+d.mustQuote("parent")+" IN ("+list+")",
				append([]any{dt.Name, tf.Fieldname}, args...)...)
			if err != nil {
				return st, err
			}
			st.RowsDeleted += int(n)
		}
		list, args := in(part, 1)
		n, err := tx.Exec(ctx, "DELETE FROM "+d.mustQuote(dt.Table())+" WHERE "+d.mustQuote("name")+" IN ("+list+")", args...)
		if err != nil {
			return st, err
		}
		st.Deleted += int(n)
	}
	if err := a.writeRows(ctx, tx, dt, pcols, parents, ex[dt.Table()]); err != nil {
		return st, err
	}
	st.Upserted += len(parents)
	for _, tf := range dt.TableFields() {
		child := a.types[tf.Options]
		rows := children[tf.Fieldname]
		if err := a.writeRows(ctx, tx, child, a.rowColumns(child, true), rows, ex[child.Table()]); err != nil {
			return st, err
		}
		st.RowsWritten += len(rows)
		// Rows no longer in their document: one statement per few hundred parents.
		keep := map[string][]string{}
		for _, r := range rows {
			p := r[7].(string)
			keep[p] = append(keep[p], r[0].(string))
		}
		if len(ex[child.Table()]) == 0 {
			continue // none of these documents had rows here before: nothing to remove
		}
		for i := 0; i < len(live); i += 200 {
			part := live[i:min(i+200, len(live))]
			list, args := in(part, 3)
			q := "DELETE FROM " + d.mustQuote(child.Table()) + " WHERE " + d.mustQuote("parenttype") + " = " + d.Placeholder(1) +
				" AND " + d.mustQuote("parentfield") + " = " + d.Placeholder(2) + " AND " + d.mustQuote("parent") + " IN (" + list + ")"
			args = append([]any{dt.Name, tf.Fieldname}, args...)
			var kept []string
			for _, p := range part {
				kept = append(kept, keep[p]...)
			}
			if len(kept) > 0 {
				klist, kargs := in(kept, len(args)+1)
				q += " AND " + d.mustQuote("name") + " NOT IN (" + klist + ")"
				args = append(args, kargs...)
			}
			n, err := tx.Exec(ctx, q, args...)
			if err != nil {
				return st, err
			}
			st.RowsDeleted += int(n)
		}
	}
	return st, nil
}

// maxParams keeps one statement's bind parameters well under both
// servers' limits (65,535).
const maxParams = 60_000

// writeRows inserts the rows that do not exist and updates those that do,
// many rows per statement. cols names the values of every row; the first
// is the name.
func (a *Applier) writeRows(ctx context.Context, tx *Tx, dt *DocType, cols []string, rows [][]any, exists map[string]bool) error {
	if len(rows) == 0 {
		return nil
	}
	d := a.db.Dialect()
	var ins, upd [][]any
	for _, r := range rows {
		if exists[r[0].(string)] {
			upd = append(upd, r)
		} else {
			ins = append(ins, r)
		}
	}
	quoted := make([]string, len(cols))
	for i, c := range cols {
		quoted[i] = d.mustQuote(c)
	}
	values := func(part [][]any) (string, []any) {
		var b strings.Builder
		args := make([]any, 0, len(part)*len(cols))
		for i, r := range part {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(")
			for j := range cols {
				if j > 0 {
					b.WriteString(", ")
				}
				args = append(args, r[j])
				b.WriteString(d.Placeholder(len(args)))
			}
			b.WriteString(")")
		}
		return b.String(), args
	}
	per := max(1, maxParams/len(cols))
	for i := 0; i < len(ins); i += per {
		vals, args := values(ins[i:min(i+per, len(ins))])
		if _, err := tx.Exec(ctx, "INSERT INTO "+d.mustQuote(dt.Table())+" ("+strings.Join(quoted, ", ")+") VALUES "+vals, args...); err != nil {
			return err
		}
	}
	if len(upd) == 0 {
		return nil
	}
	var set []string
	for _, c := range cols {
		if c != "name" && c != "creation" && c != "owner" {
			set = append(set, c)
		}
	}
	if d == Postgres {
		// ON CONFLICT (name) only answers a collision on the primary key; one
		// on another unique column is an error, as it must be.
		assign := make([]string, len(set))
		for i, c := range set {
			q := d.mustQuote(c)
			assign[i] = q + " = EXCLUDED." + q
		}
		for i := 0; i < len(upd); i += per {
			vals, args := values(upd[i:min(i+per, len(upd))])
			if _, err := tx.Exec(ctx, "INSERT INTO "+d.mustQuote(dt.Table())+" ("+strings.Join(quoted, ", ")+") VALUES "+vals+
				" ON CONFLICT ("+d.mustQuote("name")+") DO UPDATE SET "+strings.Join(assign, ", "), args...); err != nil {
				return err
			}
		}
		return nil
	}
	// MariaDB: ON DUPLICATE KEY UPDATE fires on any unique index. It is
	// safe when the table's only unique index is the primary key, or when
	// the rows' values of every other unique column are, locked (FOR
	// UPDATE: no one can insert them meanwhile), either absent or held by
	// the same row.
	only, err := a.primaryOnly(ctx, tx, dt.Table())
	if err != nil {
		return err
	}
	if !only {
		if only, err = a.uniqueValuesOwn(ctx, tx, dt, cols, upd); err != nil {
			return err
		}
	}
	if only {
		assign := make([]string, len(set))
		for i, c := range set {
			q := d.mustQuote(c)
			assign[i] = q + " = VALUES(" + q + ")"
		}
		for i := 0; i < len(upd); i += per {
			vals, args := values(upd[i:min(i+per, len(upd))])
			if _, err := tx.Exec(ctx, "INSERT INTO "+d.mustQuote(dt.Table())+" ("+strings.Join(quoted, ", ")+") VALUES "+vals+
				" ON DUPLICATE KEY UPDATE "+strings.Join(assign, ", "), args...); err != nil {
				return err
			}
		}
		return nil
	}
	// MariaDB: the new values go into a temporary copy of the table, then
	// one UPDATE … JOIN on the primary key. (INSERT … ON DUPLICATE KEY
	// UPDATE would also fire on another unique column and overwrite that
	// row.) Temporary tables belong to the transaction's connection.
	tmp := d.mustQuote("__meridian_upd")
	if _, err := tx.Exec(ctx, "DROP TEMPORARY TABLE IF EXISTS "+tmp); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "CREATE TEMPORARY TABLE "+tmp+" LIKE "+d.mustQuote(dt.Table())); err != nil {
		return err
	}
	for i := 0; i < len(upd); i += per {
		vals, args := values(upd[i:min(i+per, len(upd))])
		if _, err := tx.Exec(ctx, "INSERT INTO "+tmp+" ("+strings.Join(quoted, ", ")+") VALUES "+vals, args...); err != nil {
			return err
		}
	}
	assign := make([]string, len(set))
	for i, c := range set {
		q := d.mustQuote(c)
		assign[i] = "t." + q + " = s." + q
	}
	if _, err := tx.Exec(ctx, "UPDATE "+d.mustQuote(dt.Table())+" t JOIN "+tmp+" s ON t."+d.mustQuote("name")+" = s."+d.mustQuote("name")+
		" SET "+strings.Join(assign, ", ")); err != nil {
		return err
	}
	_, err = tx.Exec(ctx, "DROP TEMPORARY TABLE "+tmp)
	return err
}

// uniqueValuesOwn locks the rows holding the new values of every unique
// column (other than the primary key) and reports whether each is held by
// the row being written (or by none).
func (a *Applier) uniqueValuesOwn(ctx context.Context, tx *Tx, dt *DocType, cols []string, rows [][]any) (bool, error) {
	info, err := InspectTable(ctx, tx, dt.Table())
	if err != nil {
		return false, err
	}
	d := a.db.Dialect()
	pos := map[string]int{}
	for i, c := range cols {
		pos[c] = i
	}
	for _, ix := range info.Indexes {
		if !ix.Unique || ix.Primary {
			continue
		}
		if len(ix.Columns) != 1 {
			return false, nil // a composite unique index: take the slow, safe path
		}
		col := ix.Columns[0]
		p, ok := pos[col]
		if !ok {
			return false, nil // the site's own unique column: not ours to reason about
		}
		owner := map[string]string{} // value → row writing it
		var vals []any
		for _, r := range rows {
			v, ok := r[p].(string)
			if !ok || v == "" {
				continue
			}
			if other, dup := owner[v]; dup && other != r[0].(string) {
				return false, nil // two rows of the batch want it: let the database refuse
			}
			owner[v] = r[0].(string)
			vals = append(vals, v)
		}
		for i := 0; i < len(vals); i += 1000 {
			part := vals[i:min(i+1000, len(vals))]
			ph := make([]string, len(part))
			for j := range part {
				ph[j] = "?"
			}
			q := "SELECT " + d.mustQuote("name") + ", " + d.mustQuote(col) + " FROM " + d.mustQuote(dt.Table()) +
				" WHERE " + d.mustQuote(col) + " IN (" + strings.Join(ph, ", ") + ") FOR UPDATE"
			rs, err := tx.Query(ctx, q, part...)
			if err != nil {
				return false, err
			}
			clash := false
			for rs.Next() {
				var name, v string
				if err := rs.Scan(&name, &v); err != nil {
					rs.Close()
					return false, err
				}
				if owner[v] != name {
					clash = true
				}
			}
			rs.Close()
			if clash {
				return false, nil
			}
		}
	}
	return true, nil
}

// rowColumns is the column order of rows written by the batch path: the
// standard columns (and the child-table ones), then the fields' columns.
func (a *Applier) rowColumns(dt *DocType, child bool) []string {
	cols := []string{"name", "creation", "modified", "modified_by", "owner", "docstatus", "idx"}
	if child {
		cols = append(cols, "parent", "parentfield", "parenttype")
	}
	for _, c := range a.columns(dt) {
		cols = append(cols, c.f.Fieldname)
	}
	return cols
}

// fieldSlice is fieldValues into a slice in the order of columns(dt).
func (a *Applier) fieldSlice(dt *DocType, fields map[string]crdt.Value, out []any) error {
	for i, c := range a.columns(dt) {
		f, col := c.f, c.col
		val, ok := fields[f.Fieldname]
		if !ok || val.Kind == crdt.KindNull || val.Kind == crdt.KindRemoved {
			out[i] = nullFor(col)
			continue
		}
		x, err := a.sqlValue(f, val)
		if err != nil {
			return fmt.Errorf("field %s: %w", f.Fieldname, err)
		}
		if str, ok := x.(string); ok && c.varchar > 0 && len(str) > c.varchar {
			if n := c.varchar; utf8.RuneCountInString(str) > n {
				return fmt.Errorf("field %s: the value is %d characters and its column (%s) holds %d; shorten it at its origin (nothing was truncated)",
					f.Fieldname, utf8.RuneCountInString(str), col.Type, n)
			}
		}
		out[i] = x
	}
	return nil
}

// primaryOnly reports (once per table) whether a table's only unique index
// is its primary key, as the database reports its indexes (a site may have
// added its own).
func (a *Applier) primaryOnly(ctx context.Context, q Querier, table string) (bool, error) {
	if v, ok := a.pkOnly[table]; ok {
		return v, nil
	}
	info, err := InspectTable(ctx, q, table)
	if err != nil {
		return false, err
	}
	only := true
	for _, ix := range info.Indexes {
		if ix.Unique && !ix.Primary {
			only = false
		}
	}
	if a.pkOnly == nil {
		a.pkOnly = map[string]bool{}
	}
	a.pkOnly[table] = only
	return only, nil
}
