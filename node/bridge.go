package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"meridian/bridge"
	"meridian/crdt"
	"meridian/replica"
)

// BridgeConfig connects the node to its Frappe site ([bridge] in config.toml).
type BridgeConfig struct {
	// Site is the bench's site directory (PATH/sites/SITE); the database and
	// the Redis cache are found as Frappe finds them.
	Site string `toml:"site"`
	// DB is a database URL instead of Site (mysql://… or postgres://…).
	DB string `toml:"db"`
	// Doctypes are the masters written into the site's database.
	Doctypes []string `toml:"doctypes"`
	// Schemas is a directory of DocType JSON files (the masters and their
	// child doctypes); without it the definitions are read from the site's
	// tabDocType and tabDocField (its own custom fields left out).
	Schemas string `toml:"schemas"`
	// User is the modified_by of the bridge's writes. Default: Administrator.
	User string `toml:"user"`
	// Map gives the site's own names (and CEL value transforms) for mesh
	// doctypes and fields: [bridge.map.Item] doctype = "Product".
	Map map[string]MapConfig `toml:"map"`
}

// MapConfig is one mesh doctype's names on this site.
type MapConfig struct {
	Doctype string            `toml:"doctype"` // the site's doctype
	Fields  map[string]string `toml:"fields"`  // mesh field = site field
	ToSite  map[string]string `toml:"to_site"` // mesh field = CEL over value (and doc)
	ToMesh  map[string]string `toml:"to_mesh"`
}

// Enabled reports whether a site database is configured.
func (b *BridgeConfig) Enabled() bool { return b != nil && (b.Site != "" || b.DB != "") }

// siteBridge writes the converged masters into the site's database: it
// catches up from the applied version vector kept in the database at start,
// then applies what each advanced Ready changed, in batches.
type siteBridge struct {
	n      *Node
	site   *bridge.Site
	app    *bridge.Applier
	cache  *bridge.Cache
	master map[string]bool

	notes chan bridgeNote

	// captured: documents whose latest write this bridge captured from the
	// site's database (loop goroutine only), with that write's time; they
	// are not written back, so a Desk user's open form stays current.
	captured map[string]time.Time
	wm       map[string]bridge.Watermark // capture only

	cfg      *BridgeConfig
	reload   chan struct{}
	versions string // loop only: the authority's versions of the masters, as last seen

	mu      sync.Mutex
	stats   map[string]*BridgeDoctype
	oldest  time.Time // the oldest change not applied yet (zero: none)
	lastErr string
	logged  int // entries in the sync log, as last counted
}

type bridgeNote struct {
	doctype string
	names   []string
	vv      crdt.VersionVector
	resync  bool // the note channel overflowed: re-read from the applied vector
}

// BridgeDoctype is one master's bridge status.
type BridgeDoctype struct {
	Doctype   string `json:"doctype"`
	Applied   string `json:"applied_vv"`
	Written   int64  `json:"written"`
	Deleted   int64  `json:"deleted"`
	Failures  int    `json:"failures"`
	Pending   int    `json:"pending"`
	LastApply string `json:"last_apply,omitempty"`
}

// BridgeStatus is GET /api/bridge/status.
type BridgeStatus struct {
	Site     string          `json:"site"`
	Dialect  string          `json:"dialect"`
	TimeZone string          `json:"time_zone"`
	LagMs    int64           `json:"lag_ms"`
	Error    string          `json:"last_error,omitempty"`
	Doctypes []BridgeDoctype `json:"doctypes"`
}

// openBridge connects to the site, loads the masters' definitions, creates
// or extends their tables and the bridge's own tables.
func openBridge(ctx context.Context, n *Node, cfg *BridgeConfig) (*siteBridge, error) {
	if len(cfg.Doctypes) == 0 {
		return nil, fmt.Errorf("%w: [bridge] doctypes is empty: list the masters to write into the site, e.g. doctypes = [\"Item\", \"Customer\"]", bridge.ErrConfig)
	}
	var site *bridge.Site
	var err error
	if cfg.Site != "" {
		site, err = bridge.OpenSite(ctx, cfg.Site)
	} else {
		site, err = bridge.OpenDSN(ctx, cfg.DB)
	}
	if err != nil {
		return nil, fmt.Errorf("node: bridge: %w", err)
	}
	b := &siteBridge{n: n, site: site, master: map[string]bool{}, notes: make(chan bridgeNote, 1024), stats: map[string]*BridgeDoctype{},
		captured: map[string]time.Time{}, wm: map[string]bridge.Watermark{}, cfg: cfg, reload: make(chan struct{}, 1)}
	fail := func(err error) (*siteBridge, error) {
		site.Close()
		return nil, fmt.Errorf("node: bridge: %w", err)
	}
	var defs []*bridge.DocType
	seen := map[string]bool{}
	var load func(name string) error
	load = func(name string) error {
		if seen[name] {
			return nil
		}
		seen[name] = true
		dt, err := b.definition(ctx, cfg.Schemas, name)
		if err != nil {
			return err
		}
		defs = append(defs, dt)
		for _, f := range dt.TableFields() {
			if err := load(f.Options); err != nil {
				return fmt.Errorf("%s.%s: %w", name, f.Fieldname, err)
			}
		}
		return nil
	}
	var maps []bridge.Mapping
	for mesh, m := range cfg.Map {
		maps = append(maps, bridge.Mapping{Mesh: mesh, Site: m.Doctype, Fields: m.Fields, ToSite: m.ToSite, ToMesh: m.ToMesh})
	}
	siteName := func(mesh string) string {
		if m, ok := cfg.Map[mesh]; ok && m.Doctype != "" {
			return m.Doctype
		}
		return mesh
	}
	for _, name := range cfg.Doctypes {
		if err := load(siteName(name)); err != nil {
			return fail(err)
		}
		b.master[name] = true
		b.stats[name] = &BridgeDoctype{Doctype: name}
	}
	for _, dt := range defs {
		rep, err := bridge.EnsureTable(ctx, site.DB, dt)
		if err != nil {
			return fail(err)
		}
		for _, c := range rep.Changes {
			n.log.Info("bridge: schema change", "doctype", dt.Name, "change", fmt.Sprint(c))
		}
		for _, m := range rep.Mismatches {
			n.log.Warn("bridge: column differs from Frappe's layout; left as it is", "doctype", dt.Name, "column", m.Column, "reason", m.Reason)
		}
	}
	if b.app, err = bridge.NewApplier(site.DB, site.TimeZone, cfg.User, defs...); err != nil {
		return fail(err)
	}
	if err := b.app.SetMappings(maps...); err != nil {
		return fail(err)
	}
	if err := b.app.EnsureState(ctx); err != nil {
		return fail(err)
	}
	for _, dt := range cfg.Doctypes {
		if b.wm[dt], err = b.app.LoadWatermark(ctx, dt); err != nil {
			return fail(err)
		}
	}
	if site.Config != nil && site.Config.RedisCache != "" {
		if b.cache, err = bridge.NewCache(site.Config.RedisCache, site.Config.DBName); err != nil {
			return fail(err)
		}
	}
	b.versions = b.versionPrint()
	n.log.Info("bridge: connected", "site", site.Name, "dialect", site.Dialect().String(), "time_zone", site.TimeZone.Name, "masters", strings.Join(cfg.Doctypes, ","))
	return b, nil
}

// definition reads a doctype from the schemas directory or the site,
// without the site's own custom fields (they are the site's, not the mesh's).
func (b *siteBridge) definition(ctx context.Context, dir, name string) (*bridge.DocType, error) {
	var dt *bridge.DocType
	var err error
	if dir != "" {
		slug := strings.ToLower(strings.ReplaceAll(name, " ", "_"))
		path := filepath.Join(dir, slug+".json")
		if _, serr := os.Stat(path); serr != nil {
			path = filepath.Join(dir, name+".json")
		}
		if dt, err = bridge.ReadDocTypeFile(path); err != nil {
			return nil, fmt.Errorf("the definition of %s: %w (expected %s in %s)", name, err, slug+".json", dir)
		}
	} else if dt, _, err = bridge.LoadDocType(ctx, b.site.DB, name); err != nil {
		return nil, fmt.Errorf("the definition of %s from the site: %w (or give [bridge] schemas, a directory of DocType JSON files)", name, err)
	}
	if dt.Name != name {
		return nil, fmt.Errorf("%s holds DocType %q, not %q", dir, dt.Name, name)
	}
	dt = dt.Clone()
	var keep []bridge.DocField
	for _, f := range dt.Fields {
		if !f.IsCustom {
			keep = append(keep, f)
		}
	}
	dt.Fields = keep
	return dt, nil
}

// noteChanges is called on the loop after each Ready: the names of bridged
// documents it changed and the durable vector that covers them.
func (b *siteBridge) noteChanges(changes []replica.Change) {
	by := map[string][]string{}
	for _, c := range changes {
		if b.master[c.Doctype] {
			by[c.Doctype] = append(by[c.Doctype], c.Name)
		}
	}
	for dt, names := range by {
		note := bridgeNote{doctype: dt, names: names, vv: b.n.r.DurableVersionVector(dt)}
		select {
		case b.notes <- note:
		default:
			select { // full: ask for a re-read instead; never block the loop
			case b.notes <- bridgeNote{doctype: dt, resync: true}:
			default:
			}
		}
	}
}

// run applies changes until the node stops.
func (b *siteBridge) run() {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-b.n.quit
		cancel()
	}()
	pending := map[string]map[string]bool{}
	vvs := map[string]crdt.VersionVector{}
	resync := map[string]bool{}
	for dt := range b.master {
		resync[dt] = true // catch up from the applied vector
	}
	flush := time.NewTimer(0)
	retry := time.NewTicker(2 * time.Second)
	defer retry.Stop()
	capture := time.NewTicker(500 * time.Millisecond)
	defer capture.Stop()
	backoff := 100 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return
		case note := <-b.notes:
			if note.resync {
				resync[note.doctype] = true
			} else {
				if pending[note.doctype] == nil {
					pending[note.doctype] = map[string]bool{}
				}
				for _, name := range note.names {
					pending[note.doctype][name] = true
				}
				vvs[note.doctype] = note.vv
			}
			b.markPending(pending)
			flush.Reset(50 * time.Millisecond) // gather a batch
			continue
		case <-retry.C:
			b.retryFailures(ctx)
			continue
		case <-b.reload:
			if err := b.reloadSchemas(ctx); err != nil {
				b.noteErr("", err)
			}
			continue
		case <-capture.C:
			for _, dt := range sortedSet(b.master) {
				if err := b.capture(ctx, dt); err != nil {
					b.noteErr(dt, err)
				}
			}
			continue
		case <-flush.C:
		}
		failed := false
		for dt := range resync {
			if err := b.catchUp(ctx, dt); err != nil {
				b.noteErr(dt, err)
				failed = true
				continue
			}
			delete(resync, dt)
		}
		for dt, names := range pending {
			if err := b.apply(ctx, dt, sortedSet(names), vvs[dt]); err != nil {
				b.noteErr(dt, err)
				failed = true
				continue
			}
			delete(pending, dt)
		}
		b.markPending(pending)
		if failed { // the database is unreachable or refused a whole batch: try again
			flush.Reset(backoff)
			backoff = min(2*backoff, 30*time.Second)
		} else {
			backoff = 100 * time.Millisecond
		}
	}
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (b *siteBridge) noteErr(dt string, err error) {
	b.n.log.Warn("bridge: applying failed; will retry", "doctype", dt, "err", err)
	b.mu.Lock()
	b.lastErr = err.Error()
	b.mu.Unlock()
}

func (b *siteBridge) markPending(pending map[string]map[string]bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	busy := false
	for dt, st := range b.stats {
		st.Pending = len(pending[dt])
		busy = busy || st.Pending > 0
	}
	switch {
	case !busy:
		b.oldest = time.Time{}
	case b.oldest.IsZero():
		b.oldest = time.Now()
	}
}

// lag is how long the oldest unapplied change has waited.
func (b *siteBridge) lag() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.oldest.IsZero() {
		return 0
	}
	return time.Since(b.oldest)
}

// catchUp applies every document changed since the vector the database
// says was applied, in chunks; the vector is saved with the last chunk.
func (b *siteBridge) catchUp(ctx context.Context, dt string) error {
	applied, err := b.app.State(ctx, dt)
	if err != nil {
		return err
	}
	var names []string
	var vv crdt.VersionVector
	if err := b.n.do(ctx, func(r *replica.Replica) error {
		names = r.ChangedSince(dt, applied)
		vv = r.DurableVersionVector(dt)
		return nil
	}); err != nil {
		return err
	}
	if len(names) == 0 {
		if !vv.Equal(applied) && len(vv) > 0 {
			return b.apply(ctx, dt, nil, vv)
		}
		return nil
	}
	start := time.Now()
	const chunk = 500
	for i := 0; i < len(names); i += chunk {
		part := names[i:min(i+chunk, len(names))]
		var save crdt.VersionVector
		if i+chunk >= len(names) {
			save = vv
		}
		if err := b.apply(ctx, dt, part, save); err != nil {
			return err
		}
		if len(names) > chunk {
			b.n.log.Info("bridge: catching up", "doctype", dt, "done", min(i+chunk, len(names)), "of", len(names))
		}
	}
	b.n.log.Info("bridge: caught up", "doctype", dt, "documents", len(names), "took", time.Since(start).Round(time.Millisecond).String())
	return nil
}

// apply reads the documents' current state on the loop and writes them.
func (b *siteBridge) apply(ctx context.Context, dt string, names []string, vv crdt.VersionVector) error {
	return b.applyDocs(ctx, dt, names, vv, false)
}

// applyDocs is apply; with force it writes even a state captured from the
// site's own database (resync).
func (b *siteBridge) applyDocs(ctx context.Context, dt string, names []string, vv crdt.VersionVector, force bool) error {
	docs := make([]bridge.Doc, 0, len(names))
	if err := b.n.do(ctx, func(r *replica.Replica) error {
		for _, name := range names {
			if err := r.Read(dt, name, func(d *crdt.Doc) {
				if d.Empty() {
					return
				}
				doc := bridge.DocFromCRDT(d)
				key := dt + "\x00" + name
				if at, ok := b.captured[key]; ok {
					delete(b.captured, key)
					if at.Equal(doc.Modified) && !force {
						return // the site's database already holds this state
					}
				}
				docs = append(docs, doc)
			}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	st, err := b.app.Apply(ctx, dt, docs, vv)
	if err != nil {
		return err
	}
	for _, f := range st.Failed {
		b.n.log.Warn("bridge: a document could not be written; it is in the sync log and will be retried",
			"doctype", f.Doctype, "name", f.Name, "attempt", f.Attempts, "reason", f.Reason, "next_retry", f.NextRetry.Format(time.RFC3339))
	}
	for _, f := range st.Held {
		b.n.log.Info("bridge: a document waits for a Link target", "doctype", f.Doctype, "name", f.Name, "reason", f.Reason)
	}
	if err := b.cache.Invalidate(ctx, b.app.SiteDoctype(dt), names); err != nil {
		b.n.log.Warn("bridge: Frappe's cache was not invalidated", "doctype", dt, "err", err)
	}
	b.mu.Lock()
	s := b.stats[dt]
	s.Written += int64(st.Upserted)
	s.Deleted += int64(st.Deleted)
	s.LastApply = time.Now().UTC().Format(time.RFC3339)
	b.lastErr = ""
	b.mu.Unlock()
	b.n.met.bridgeWritten.Add(float64(st.Upserted + st.Deleted))
	return nil
}

// failing is how many documents the sync log held at the last count.
func (b *siteBridge) failing() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.logged
}

// retryFailures re-applies the sync log's entries whose back-off is over.
func (b *siteBridge) retryFailures(ctx context.Context) {
	all, err := b.app.Failures(ctx, false)
	if err != nil {
		b.noteErr("", err)
		return
	}
	var due []bridge.Failure
	now := time.Now()
	for _, f := range all {
		if !f.NextRetry.After(now) {
			due = append(due, f)
		}
	}
	b.mu.Lock()
	b.logged = len(all)
	b.mu.Unlock()
	by := map[string][]string{}
	for _, f := range due {
		if b.master[f.Doctype] {
			by[f.Doctype] = append(by[f.Doctype], f.Name)
		}
	}
	for dt, names := range by {
		if err := b.apply(ctx, dt, names, nil); err != nil {
			b.noteErr(dt, err)
		}
	}
}

// resync re-applies documents: one, every one of a doctype, or all.
func (b *siteBridge) resync(ctx context.Context, dt, name string) (int, error) {
	total := 0
	for m := range b.master {
		if dt != "" && m != dt {
			continue
		}
		var names []string
		var vv crdt.VersionVector
		if err := b.n.do(ctx, func(r *replica.Replica) error {
			if name != "" {
				names = []string{name}
			} else {
				names = r.ChangedSince(m, crdt.VersionVector{})
			}
			vv = r.DurableVersionVector(m)
			return nil
		}); err != nil {
			return total, err
		}
		for i := 0; i < len(names); i += 500 {
			part := names[i:min(i+500, len(names))]
			var save crdt.VersionVector
			if name == "" && i+500 >= len(names) {
				save = vv
			}
			if err := b.applyDocs(ctx, m, part, save, true); err != nil {
				return total, err
			}
			total += len(part)
		}
	}
	if dt != "" && !b.master[dt] {
		return 0, fmt.Errorf("%s is not a master this bridge writes (configured: %s)", dt, strings.Join(sortedSet(b.master), ", "))
	}
	return total, nil
}

func (b *siteBridge) status(ctx context.Context) (BridgeStatus, error) {
	st := BridgeStatus{Site: b.site.Name, Dialect: b.site.Dialect().String(), TimeZone: b.site.TimeZone.Name, LagMs: b.lag().Milliseconds()}
	fails, err := b.app.Failures(ctx, false)
	if err != nil {
		return st, err
	}
	count := map[string]int{}
	for _, f := range fails {
		count[f.Doctype]++
	}
	for _, dt := range sortedSet(b.master) {
		vv, err := b.app.State(ctx, dt)
		if err != nil {
			return st, err
		}
		b.mu.Lock()
		s := *b.stats[dt]
		st.Error = b.lastErr
		b.mu.Unlock()
		s.Applied = vv.String()
		s.Failures = count[dt]
		st.Doctypes = append(st.Doctypes, s)
	}
	return st, nil
}

func (b *siteBridge) close() {
	b.cache.Close()
	b.site.Close()
}

// capture turns the site's local changes to a master into edits of the
// replica: a document whose row is newer than the replica's state is diffed
// and the difference proposed; a deletion deletes. Rows the bridge wrote
// (or older than the replica) are skipped, so nothing echoes. The watermark
// is saved once the edits are durable.
func (b *siteBridge) capture(ctx context.Context, dt string) error {
	caps, next, err := b.app.Captures(ctx, dt, b.wm[dt], 500)
	if err != nil {
		return err
	}
	if len(caps) > 0 {
		proposed, err := b.propose(ctx, dt, caps, false)
		if err != nil {
			return err
		}
		if proposed > 0 {
			b.n.log.Info("bridge: captured local changes", "doctype", dt, "documents", proposed)
			b.n.met.bridgeCaptured.Add(float64(proposed))
		}
	}
	if next != b.wm[dt] {
		if err := b.app.SaveWatermark(ctx, dt, next); err != nil {
			return err
		}
		b.wm[dt] = next
	}
	return nil
}

// propose diffs documents read from the site against the replica and
// proposes the differences, returning once they are durable. Captured
// changes older than the replica's state are skipped; adopted documents
// are taken as they are (concurrent values resolve as any conflict).
func (b *siteBridge) propose(ctx context.Context, dt string, caps []bridge.Capture, adopting bool) (int, error) {
	proposed := 0
	err := b.n.propose(ctx, func(r *replica.Replica) ([]replica.Edit, error) {
		var edits []replica.Edit
		for _, c := range caps {
			var ops []crdt.Op
			if err := r.Read(dt, c.Name, func(d *crdt.Doc) {
				cur := bridge.DocFromCRDT(d)
				if !adopting && !d.Empty() && !c.Modified.After(cur.Modified) {
					return // written by the bridge, or older than what the mesh holds (its deletion included: a stale row must not resurrect it)
				}
				if c.Deleted {
					if d.Exists() {
						ops = []crdt.Op{{Kind: crdt.OpDelete}}
					}
					return
				}
				ops = d.Diff(c.Desired(cur.View))
			}); err != nil {
				return nil, err
			}
			if len(ops) == 0 {
				continue
			}
			dot, err := r.Propose(replica.Proposal{Doctype: dt, Name: c.Name, Ops: ops})
			if err != nil {
				b.n.log.Warn("bridge: a local change could not enter the mesh", "doctype", dt, "name", c.Name, "by", c.ModifiedBy, "err", err)
				b.n.met.events.WithLabelValues("capture_refused").Inc()
				continue
			}
			edits = append(edits, replica.Edit{Doctype: dt, Dot: dot})
			proposed++
			_ = r.Read(dt, c.Name, func(d *crdt.Doc) { b.captured[dt+"\x00"+c.Name] = bridge.DocFromCRDT(d).Modified })
		}
		return edits, nil
	})
	return proposed, err
}

// adopt makes a doctype's existing rows part of the mesh, page by page,
// reporting progress.
func (b *siteBridge) adopt(ctx context.Context, dt string, progress func(done, total, proposed int)) (int, error) {
	if !b.master[dt] {
		return 0, fmt.Errorf("%s is not among the bridge's doctypes; add it to [bridge] doctypes in config.toml and restart the node, then adopt it", dt)
	}
	total, err := b.app.Count(ctx, dt)
	if err != nil {
		return 0, err
	}
	done, proposed, after := 0, 0, ""
	progress(0, total, 0)
	for {
		page, err := b.app.AdoptPage(ctx, dt, after, 500)
		if err != nil {
			return proposed, err
		}
		if len(page) == 0 {
			break
		}
		p, err := b.propose(ctx, dt, page, true)
		if err != nil {
			return proposed, err
		}
		proposed += p
		done += len(page)
		after = page[len(page)-1].Name
		progress(done, max(total, done), proposed)
	}
	b.n.log.Info("bridge: adopted", "doctype", dt, "rows", done, "documents_changed", proposed)
	return proposed, nil
}

// versionPrint summarises the authority's versions of the bridged masters.
func (b *siteBridge) versionPrint() string {
	if b.n.auth == nil {
		return ""
	}
	var sb strings.Builder
	b.n.auth.view(func(st *crdt.AuthorityState) {
		for _, dt := range sortedSet(b.master) {
			for _, v := range st.Versions(dt) {
				fmt.Fprintf(&sb, "%s/%d/%s/%d;", dt, v.Version, v.Schema, v.Status)
			}
		}
	})
	return sb.String()
}

// versionsChanged is called on the loop when the authority's records
// change: a new master version makes the bridge re-read its definitions.
func (b *siteBridge) versionsChanged() {
	if p := b.versionPrint(); p != b.versions {
		b.versions = p
		select {
		case b.reload <- struct{}{}:
		default:
		}
	}
}

// reloadSchemas re-reads the masters' definitions (the site migrated to a
// new version, or its DocType file was replaced), adds what the tables
// lack, and writes every document again so the new columns are filled.
func (b *siteBridge) reloadSchemas(ctx context.Context) error {
	var defs []*bridge.DocType
	seen := map[string]bool{}
	var load func(name string) error
	load = func(name string) error {
		if seen[name] {
			return nil
		}
		seen[name] = true
		dt, err := b.definition(ctx, b.cfg.Schemas, name)
		if err != nil {
			return err
		}
		defs = append(defs, dt)
		for _, f := range dt.TableFields() {
			if err := load(f.Options); err != nil {
				return err
			}
		}
		return nil
	}
	for dt := range b.master {
		if err := load(b.app.SiteDoctype(dt)); err != nil {
			return err
		}
	}
	changed := false
	for _, dt := range defs {
		rep, err := bridge.EnsureTable(ctx, b.site.DB, dt)
		if err != nil {
			return err
		}
		for _, c := range rep.Changes {
			changed = true
			b.n.log.Info("bridge: schema change for a new master version", "doctype", dt.Name, "change", fmt.Sprint(c))
		}
	}
	if err := b.app.Reload(defs...); err != nil {
		return err
	}
	if !changed {
		return nil
	}
	n, err := b.resync(ctx, "", "")
	b.n.log.Info("bridge: documents written again after a schema change", "documents", n)
	return err
}

// permanentBridgeError: a configuration or definition the node cannot use
// (fix it and restart), as opposed to a database that does not answer yet.
func permanentBridgeError(err error) bool {
	for _, e := range []error{bridge.ErrConfig, bridge.ErrInvalidDocType, bridge.ErrInvalidName, bridge.ErrNoTable,
		bridge.ErrUnsupportedDialect, bridge.ErrNotFound, bridge.ErrInvalidValue} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
