package node

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"meridian/crdt"
	"meridian/replica"
)

// AuthorityKeyFile is where `meridian authority init` keeps the authority's
// key in a data directory (0600), unless --key names another file.
const AuthorityKeyFile = "authority.key"

// AuthorityKey is the authority's signing key and the mesh it governs.
type AuthorityKey struct {
	Mesh string
	Key  ed25519.PrivateKey
}

// Public returns the authority's public key in the form config files pin
// (a libp2p-style peer ID).
func (k *AuthorityKey) Public() string {
	return string(crdt.PeerIDFromPublicKey(k.Key.Public().(ed25519.PublicKey)))
}

type authorityKeyFile struct {
	Mesh string `json:"mesh"`
	Seed string `json:"seed"` // base64 of the 32-byte ed25519 seed
}

// CreateAuthorityKey writes a new authority key for a mesh to path (0600).
// It refuses to overwrite a key.
func CreateAuthorityKey(path, mesh string) (*AuthorityKey, error) {
	if mesh == "" || strings.ContainsAny(mesh, " \t\n") {
		return nil, fmt.Errorf("node: mesh ID %q: use a name without spaces, like acme-masters", mesh)
	}
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	data, _ := json.Marshal(authorityKeyFile{Mesh: mesh, Seed: base64.StdEncoding.EncodeToString(priv.Seed())})
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("node: %s already exists; an authority key is never overwritten (use --key to write another file)", path)
		}
		return nil, err
	}
	defer f.Close()
	if _, err := f.Write(append(data, '\n')); err != nil {
		return nil, err
	}
	return &AuthorityKey{Mesh: mesh, Key: priv}, f.Sync()
}

// LoadAuthorityKey reads an authority key file.
func LoadAuthorityKey(path string) (*AuthorityKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("node: no authority key at %s: run `meridian authority init` there, or give the key's file with --key", path)
		}
		return nil, err
	}
	var f authorityKeyFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("node: %s is not an authority key file: %w", path, err)
	}
	seed, err := base64.StdEncoding.DecodeString(f.Seed)
	if err != nil || len(seed) != ed25519.SeedSize || f.Mesh == "" {
		return nil, fmt.Errorf("node: %s is not an authority key file (mesh and a 32-byte seed expected)", path)
	}
	return &AuthorityKey{Mesh: f.Mesh, Key: ed25519.NewKeyFromSeed(seed)}, nil
}

// EncodeRecordText is a record's form in files and in the admin API:
// base64 of its canonical CBOR.
func EncodeRecordText(r *crdt.Record) string {
	return base64.StdEncoding.EncodeToString(crdt.EncodeRecord(r))
}

// DecodeRecordText parses EncodeRecordText's form.
func DecodeRecordText(s string) (*crdt.Record, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("a record must be base64 text: %w", err)
	}
	return crdt.DecodeRecord(raw)
}

// Errors the authority's enforcement reports.
var (
	ErrNoGrant        = errors.New("no grant")
	ErrRetired        = errors.New("written under a retired version")
	ErrReadOnly       = errors.New("the origin may only read")
	ErrNotAdmitted    = errors.New("site not admitted by the authority")
	errRecordInvalid  = errors.New("invalid record")
	errVersionUnknown = errors.New("version not known yet")
)

// authority enforces the mesh's signed records: who may connect, read and
// write, under which master versions, and which rows a site sees. The
// replica's hooks run on the loop; the transport asks about admissions
// from its own goroutines, hence the lock.
type authority struct {
	mesh string
	pub  ed25519.PublicKey
	self crdt.SiteID
	pins map[string]uint64 // config [versions]
	skew int64

	mu    sync.RWMutex
	st    *crdt.AuthorityState
	progs map[string]cel.Program  // compiled row conditions
	best  map[string]*crdt.Record // key → the signed record that decides it
	env   *cel.Env
}

func newAuthority(cfg Config, self crdt.SiteID) (*authority, error) {
	if cfg.Authority == "" {
		return nil, nil
	}
	pub, err := crdt.PeerIDPublicKey(cfg.Authority)
	if err != nil {
		return nil, fmt.Errorf("node: authority %q is not an authority public key (as `meridian authority init` prints it): %w", cfg.Authority, err)
	}
	env, err := rowEnv()
	if err != nil {
		return nil, err
	}
	return &authority{mesh: cfg.Mesh, pub: pub, self: self, pins: cfg.Versions, skew: time.Duration(cfg.MaxClockSkew).Milliseconds(),
		st: crdt.NewAuthorityState(), progs: map[string]cel.Program{}, best: map[string]*crdt.Record{}, env: env}, nil
}

// rowEnv is the CEL environment of grant conditions: one variable, doc,
// the document as Frappe's API shows it (fields at the top, child tables
// as lists of row maps).
func rowEnv() (*cel.Env, error) {
	return cel.NewEnv(cel.Variable("doc", cel.MapType(cel.StringType, cel.DynType)), cel.CrossTypeNumericComparisons(true))
}

// CompileCondition checks a grant's row condition, as `authority grant
// --where` does before signing it.
func CompileCondition(expr string) error {
	env, err := rowEnv()
	if err != nil {
		return err
	}
	_, err = compileIn(env, expr)
	return err
}

func compileIn(env *cel.Env, expr string) (cel.Program, error) {
	ast, iss := env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		return nil, fmt.Errorf("row condition %q: %w", expr, iss.Err())
	}
	if t := ast.OutputType(); t != cel.BoolType && t != cel.DynType {
		return nil, fmt.Errorf("row condition %q is a %s; it must be true or false for a document", expr, t)
	}
	return env.Program(ast)
}

// check verifies a record for this mesh.
func (a *authority) check(r *crdt.Record) error {
	return crdt.CheckRecord(r, a.mesh, a.pub, time.Now().UnixMilli(), a.skew)
}

// add joins a checked record; it reports whether the state changed.
func (a *authority) add(r *crdt.Record) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if b := a.best[r.Key()]; b == nil || betterRecord(r, b) {
		a.best[r.Key()] = r
	}
	return a.st.Add(r)
}

// betterRecord reports whether a signed record decides its key better than
// b: a version's higher status (then the earlier one), else the later one.
// A records document that holds a worse record is repaired with the better.
func betterRecord(a, b *crdt.Record) bool {
	if a.Kind == crdt.RecordVersion {
		if a.Status != b.Status {
			return a.Status > b.Status
		}
		if a.Issued != b.Issued {
			return a.Issued < b.Issued
		}
		return string(a.Sig) < string(b.Sig)
	}
	return crdt.JoinRecords(a, b) == a && a != b
}

// bestOf returns the signed record that decides a key.
func (a *authority) bestOf(key string) *crdt.Record {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.best[key]
}

// records lists the deciding records that pick returns true for.
func (a *authority) records(pick func(r *crdt.Record) bool) []*crdt.Record {
	a.mu.RLock()
	defer a.mu.RUnlock()
	var out []*crdt.Record
	for _, k := range sortedKeys(a.best) {
		if r := a.best[k]; pick == nil || pick(r) {
			out = append(out, r)
		}
	}
	return out
}

func (a *authority) supersedes(r *crdt.Record) bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.st.Supersedes(r)
}

func (a *authority) current(r *crdt.Record) *crdt.Record {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.st.Current(r)
}

// view runs f with the state under the read lock.
func (a *authority) view(f func(st *crdt.AuthorityState)) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	f(a.st)
}

// admitted: this site always trusts itself; others need the authority's
// admission (an admit record or any grant).
func (a *authority) admitted(p crdt.SiteID) bool {
	if p == a.self {
		return true
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.st.Admitted(p)
}

// officially reports whether the records admit a site (this one included).
func (a *authority) officially(p crdt.SiteID) bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.st.Admitted(p)
}

// canRead: the records travel to every admitted site; a master only to
// sites with a read (or write) grant.
func (a *authority) canRead(p crdt.SiteID, dt string) bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if !a.st.Admitted(p) {
		return false
	}
	if dt == crdt.RecordsDoctype {
		return true
	}
	read, _, _ := a.st.Grant(p, dt)
	return read
}

// accept judges the writes an origin made to a doctype under a version.
func (a *authority) accept(origin crdt.SiteID, dt string, version uint64) error {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if dt == crdt.RecordsDoctype {
		// Records prove themselves; any admitted site may carry them.
		if origin == a.self || a.st.Admitted(origin) {
			return nil
		}
		return fmt.Errorf("%w: %s is not admitted yet: %w", replica.ErrWait, origin, ErrNotAdmitted)
	}
	switch d, why := a.st.Decide(origin, dt, version); d {
	case crdt.Wait:
		err := ErrNoGrant
		if a.st.GrantRecord(origin, dt) != nil {
			err = errVersionUnknown
		}
		return fmt.Errorf("%w: %s: %w", replica.ErrWait, why, err)
	case crdt.Reject:
		switch g := a.st.GrantRecord(origin, dt); {
		case !g.Read && !g.Write:
			return fmt.Errorf("%s: %w", why, ErrNoGrant)
		case !g.Write:
			return fmt.Errorf("%s: %w", why, ErrReadOnly)
		}
		return fmt.Errorf("%s: %w", why, ErrRetired)
	case crdt.Flag:
		return fmt.Errorf("%w: %s", replica.ErrFlag, why)
	}
	return nil
}

// versionOf is the version this site writes a doctype under: the pinned
// one, else the latest active one.
func (a *authority) versionOf(dt string) uint64 {
	if v, ok := a.pins[dt]; ok {
		return v
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.st.LatestActive(dt)
}

// filter returns the row condition of a site's grant on a doctype, nil for
// none (the whole doctype).
func (a *authority) filter(p crdt.SiteID, dt string) func(*crdt.Doc) bool {
	if dt == crdt.RecordsDoctype {
		return nil
	}
	a.mu.RLock()
	_, _, where := a.st.Grant(p, dt)
	prg, ok := a.progs[where]
	a.mu.RUnlock()
	if where == "" {
		return nil
	}
	if !ok {
		var err error
		prg, err = compileIn(a.env, where)
		if err != nil {
			prg = nil // a condition that does not compile shows nothing
		}
		a.mu.Lock()
		a.progs[where] = prg
		a.mu.Unlock()
	}
	return func(d *crdt.Doc) bool {
		if prg == nil {
			return false
		}
		out, _, err := prg.Eval(map[string]any{"doc": celDoc(d)})
		if err != nil {
			return false // a missing field or a type mismatch: not visible
		}
		b, ok := out.Value().(bool)
		return ok && b
	}
}

// celDoc is a document as a grant condition sees it.
func celDoc(d *crdt.Doc) map[string]any {
	v := d.View()
	m := map[string]any{"name": v.Name, "doctype": v.Doctype, "docstatus": v.DocStatus}
	for k, val := range v.Fields {
		m[k] = celValue(val)
	}
	for t, rows := range v.Tables {
		list := make([]any, len(rows))
		for i, row := range rows {
			rm := map[string]any{"name": row.Name, "idx": row.Idx}
			for k, val := range row.Fields {
				rm[k] = celValue(val)
			}
			list[i] = rm
		}
		m[t] = list
	}
	return m
}

func celValue(v crdt.Value) any {
	switch v.Kind {
	case crdt.KindStr:
		return v.Str
	case crdt.KindInt:
		return v.Int
	case crdt.KindDec:
		var f float64
		fmt.Sscan(v.Str, &f)
		return f
	}
	return nil
}

// recordDocName is the document a record's lattice slot lives in.
func recordDocName(r *crdt.Record) string { return r.Key() }

// recordsIn decodes every value a records document holds (concurrent
// writes included) and returns the valid ones.
func (a *authority) recordsIn(d *crdt.Doc) ([]*crdt.Record, error) {
	var out []*crdt.Record
	var errs []error
	for _, s := range d.Register(crdt.RecordField) {
		if s.Value.Kind != crdt.KindStr {
			continue
		}
		r, err := DecodeRecordText(s.Value.Str)
		if err == nil {
			err = a.check(r)
		}
		if err == nil && recordDocName(r) != d.Name {
			err = fmt.Errorf("record %s stored in document %q", r.Key(), d.Name)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}

// Consumer is one line of `meridian consumers`.
type Consumer struct {
	Site     string `json:"site"`
	Doctype  string `json:"doctype"`
	Status   string `json:"status"` // requested, read, write, read (where …), revoked, admitted
	Where    string `json:"where,omitempty"`
	Version  uint64 `json:"version,omitempty"`
	LastSync int64  `json:"last_sync_ms,omitempty"`
	Behind   int64  `json:"behind"` // edits this site holds that the consumer's last report lacks
	Failures int64  `json:"failures"`
	LastSeen int64  `json:"last_seen_ms,omitempty"`
}

// consumers lists every site and doctype the records mention.
func (a *authority) consumers(seen map[string]crdt.VersionVector) []Consumer {
	var out []Consumer
	a.view(func(st *crdt.AuthorityState) {
		for _, site := range st.Sites() {
			rep := st.Report(site)
			dts := map[string]bool{}
			for _, dt := range st.Doctypes() {
				if st.GrantRecord(site, dt) != nil || st.Subscription(site, dt) != nil {
					dts[dt] = true
				}
			}
			if rep != nil {
				for dt := range rep.Report.Versions {
					dts[dt] = true
				}
			}
			if len(dts) == 0 {
				status := "admitted"
				if !st.Admitted(site) {
					status = "expelled"
				}
				c := Consumer{Site: string(site), Status: status}
				fillReport(&c, rep, "", seen)
				out = append(out, c)
				continue
			}
			for _, dt := range sortedKeys(dts) {
				c := Consumer{Site: string(site), Doctype: dt}
				g := st.GrantRecord(site, dt)
				switch {
				case g != nil && g.Write:
					c.Status = "write"
				case g != nil && g.Read:
					c.Status = "read"
				case g != nil:
					c.Status = "revoked"
				case st.Subscription(site, dt) != nil:
					c.Status = "requested"
				default:
					c.Status = "none"
				}
				if g != nil {
					c.Where = g.Where
				}
				fillReport(&c, rep, dt, seen)
				out = append(out, c)
			}
		}
	})
	return out
}

func fillReport(c *Consumer, rep *crdt.Record, dt string, seen map[string]crdt.VersionVector) {
	if rep == nil {
		return
	}
	c.LastSeen = rep.Issued
	for _, t := range rep.Report.LastSync {
		c.LastSync = max(c.LastSync, t)
	}
	for _, n := range rep.Report.Failures {
		c.Failures += n
	}
	if dt == "" {
		return
	}
	c.Version = rep.Report.Versions[dt]
	mine, ok := seen[dt]
	if !ok {
		return
	}
	theirs := rep.Report.VV[dt]
	var behind uint64
	for site, s := range mine {
		top := s.Top()
		if t := theirs[string(site)]; top > t {
			behind += top - t // edits of this origin the consumer has not confirmed
		}
	}
	c.Behind = int64(behind)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
