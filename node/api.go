package node

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"strconv"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"meridian/crdt"
	"meridian/replica"
)

// The admin API, on loopback only, for the CLI and local tools. Every
// /api/ path needs "Authorization: Bearer <token>" with the token from the
// data directory's api.token. Documents use the shape of Frappe's
// /api/resource/DOCTYPE/NAME.

// maxBody bounds request bodies.
const maxBody = 8 << 20

func (n *Node) startAPI() error {
	token, err := ReadToken(n.cfg.DataDir)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	auth := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			got := r.Header.Get("Authorization")
			if subtle.ConstantTimeCompare([]byte(got), []byte("Bearer "+token)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="meridian"`)
				writeErr(w, http.StatusUnauthorized, errors.New("missing or wrong bearer token: send Authorization: Bearer <the token in api.token of the data directory>"))
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("GET /api/status", auth(n.handleStatus))
	mux.HandleFunc("GET /api/peers", auth(n.handlePeers))
	mux.HandleFunc("POST /api/peers", auth(n.handleAddPeer))
	mux.HandleFunc("DELETE /api/peers/{id}", auth(n.handleRemovePeer))
	mux.HandleFunc("GET /api/resource/{doctype}", auth(n.handleList))
	mux.HandleFunc("POST /api/resource/{doctype}", auth(n.handleCreate))
	mux.HandleFunc("GET /api/resource/{doctype}/{name}", auth(n.handleGet))
	mux.HandleFunc("PUT /api/resource/{doctype}/{name}", auth(n.handlePut))
	mux.HandleFunc("DELETE /api/resource/{doctype}/{name}", auth(n.handleDelete))
	mux.HandleFunc("GET /api/conflicts", auth(n.handleConflicts))
	mux.HandleFunc("GET /api/meridian/records", auth(n.handleRecords))
	mux.HandleFunc("POST /api/meridian/records", auth(n.handleImport))
	mux.HandleFunc("POST /api/meridian/subscribe", auth(n.handleSubscribe))
	mux.HandleFunc("GET /api/meridian/versions/{doctype}", auth(n.handleVersions))
	mux.HandleFunc("GET /api/meridian/consumers", auth(n.handleConsumers))
	mux.HandleFunc("POST /api/verify", auth(n.handleVerify))
	mux.HandleFunc("GET /api/history/{doctype}/{name}", auth(n.handleHistory))
	mux.HandleFunc("POST /api/bundle/export", auth(n.handleBundleExport))
	mux.HandleFunc("POST /api/bundle/import", auth(n.handleBundleImport))
	mux.HandleFunc("POST /api/conflicts/resolve", auth(n.handleResolve))
	mux.HandleFunc("GET /api/bridge/status", auth(n.handleBridgeStatus))
	mux.HandleFunc("GET /api/bridge/synclog", auth(n.handleSyncLog))
	mux.HandleFunc("POST /api/bridge/resync", auth(n.handleResync))
	mux.HandleFunc("POST /api/bridge/adopt", auth(n.handleAdopt))
	mux.HandleFunc("POST /api/network/pause", auth(func(w http.ResponseWriter, r *http.Request) {
		n.Pause()
		writeJSON(w, http.StatusOK, map[string]string{"message": "network paused"})
	}))
	mux.HandleFunc("POST /api/network/resume", auth(func(w http.ResponseWriter, r *http.Request) {
		n.Resume(r.Context())
		writeJSON(w, http.StatusOK, map[string]string{"message": "network resumed"})
	}))
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.met.reg, promhttp.HandlerOpts{}))
	// Go profiles, for operators chasing a slow node (token required).
	mux.HandleFunc("GET /debug/pprof/", auth(pprof.Index))
	mux.HandleFunc("GET /debug/pprof/profile", auth(pprof.Profile))
	mux.HandleFunc("GET /debug/pprof/trace", auth(pprof.Trace))
	ln, err := net.Listen("tcp", n.cfg.API)
	if err != nil {
		return fmt.Errorf("node: admin API on %s: %w", n.cfg.API, err)
	}
	n.apiLn = ln
	n.api = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := n.api.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.fail(fmt.Errorf("node: admin API: %w", err))
		}
	}()
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeErr(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

// Status is what GET /api/status returns.
type Status struct {
	Site     string           `json:"site"`
	Addrs    []string         `json:"addrs"`
	Peers    []PeerStatus     `json:"peers"`
	Members  int              `json:"members"`
	Doctypes []DoctypeStatus  `json:"doctypes"`
	Waiting  int              `json:"waiting_batches"`
	Store    int64            `json:"store_bytes"`
	Paused   bool             `json:"network_paused"`
	Counters map[string]int64 `json:"counters"`
	// Authority is the mesh's authority as this site sees it (absent
	// without one).
	Authority *AuthorityStatus `json:"authority,omitempty"`
	// Verify is the latest comparison of each doctype with a peer.
	Verify []VerifyResult `json:"verify"`
}

// PeerStatus is one peer-book entry.
type PeerStatus struct {
	ID        string   `json:"id"`
	Addrs     []string `json:"addrs"`
	Connected bool     `json:"connected"`
	Source    string   `json:"source"`
	LastSeen  string   `json:"last_seen,omitempty"`
}

// DoctypeStatus is one doctype's replication state.
type DoctypeStatus struct {
	Doctype   string `json:"doctype"`
	Documents int    `json:"documents"`
	Digest    string `json:"digest"`
	VV        string `json:"version_vector"`
}

func (n *Node) peerStatus() []PeerStatus {
	out := []PeerStatus{}
	for _, p := range n.host.Peers() {
		ps := PeerStatus{ID: p.ID.String(), Connected: p.Connected, Source: fmt.Sprint(p.Source)}
		for _, a := range p.Addrs {
			ps.Addrs = append(ps.Addrs, a.String())
		}
		if !p.LastSeen.IsZero() {
			ps.LastSeen = p.LastSeen.UTC().Format(time.RFC3339)
		}
		out = append(out, ps)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (n *Node) handleStatus(w http.ResponseWriter, r *http.Request) {
	st := Status{Site: string(n.site), Addrs: n.addrStrings(), Peers: n.peerStatus(), Members: len(n.host.Members()),
		Store: n.store.Size(), Paused: n.paused.Load(), Counters: map[string]int64{}, Doctypes: []DoctypeStatus{}}
	err := n.do(r.Context(), func(rp *replica.Replica) error {
		st.Waiting = rp.Waiting()
		for _, dt := range rp.Doctypes() {
			names, err := rp.Names(dt, "", 0)
			if err != nil {
				return err
			}
			g, err := rp.StateDigest(dt)
			if err != nil {
				return err
			}
			st.Doctypes = append(st.Doctypes, DoctypeStatus{Doctype: dt, Documents: len(names), Digest: hex.EncodeToString(g[:8]), VV: rp.VersionVector(dt).String()})
		}
		return nil
	})
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err)
		return
	}
	var dts []string
	for _, d := range st.Doctypes {
		dts = append(dts, d.Doctype)
	}
	st.Authority = n.authorityStatus(dts)
	n.verifyMu.Lock()
	st.Verify = []VerifyResult{}
	for _, v := range n.lastVerify {
		st.Verify = append(st.Verify, v)
	}
	n.verifyMu.Unlock()
	sort.Slice(st.Verify, func(i, j int) bool { return st.Verify[i].Doctype < st.Verify[j].Doctype })
	for _, s := range n.host.Stats() {
		st.Counters["frames_in"] += int64(s.FramesIn)
		st.Counters["frames_out"] += int64(s.FramesOut)
		st.Counters["bytes_in"] += int64(s.BytesIn)
		st.Counters["bytes_out"] += int64(s.BytesOut)
	}
	writeJSON(w, http.StatusOK, st)
}

func (n *Node) handlePeers(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"data": n.peerStatus()})
}

func (n *Node) handleAddPeer(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Addr string `json:"addr"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, maxBody)).Decode(&req); err != nil || req.Addr == "" {
		writeErr(w, http.StatusBadRequest, errors.New(`body must be {"addr": "/ip4/…/tcp/…/p2p/12D3KooW…"}`))
		return
	}
	id, err := n.host.AddPeer(req.Addr)
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": id.String(), "message": "added; dialling"})
}

func (n *Node) handleRemovePeer(w http.ResponseWriter, r *http.Request) {
	id, err := peer.Decode(r.PathValue("id"))
	if err != nil {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("%q is not a peer ID (12D3KooW…): %v", r.PathValue("id"), err))
		return
	}
	if err := n.host.RemovePeer(id); err != nil {
		writeErr(w, http.StatusNotFound, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"message": "removed"})
}

func (n *Node) handleList(w http.ResponseWriter, r *http.Request) {
	dt := r.PathValue("doctype")
	if err := crdt.ValidateName("doctype", dt); err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	after := r.URL.Query().Get("after")
	var names []string
	err := n.do(r.Context(), func(rp *replica.Replica) error {
		all, err := rp.Names(dt, after, 0)
		if err != nil {
			return err
		}
		for _, name := range all { // only documents that exist (not deleted)
			d, err := rp.Doc(dt, name)
			if err != nil {
				return err
			}
			if d.Exists() {
				names = append(names, name)
				if limit > 0 && len(names) >= limit {
					break
				}
			}
		}
		return nil
	})
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err)
		return
	}
	data := make([]map[string]string, len(names))
	for i, nm := range names {
		data[i] = map[string]string{"name": nm}
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data})
}

func (n *Node) handleGet(w http.ResponseWriter, r *http.Request) {
	dt, name := r.PathValue("doctype"), r.PathValue("name")
	var v *crdt.View
	err := n.do(r.Context(), func(rp *replica.Replica) error {
		d, err := rp.Doc(dt, name)
		if err != nil {
			return err
		}
		v = d.View()
		return nil
	})
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	if !v.Exists {
		writeErr(w, http.StatusNotFound, fmt.Errorf("%s %s not found", dt, name))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": v})
}

func newRowName() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// write proposes the changes that turn a document into the body's
// version and waits until they are durable. create: the document must
// not exist yet.
func (n *Node) write(w http.ResponseWriter, r *http.Request, dt, name string, create bool) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("body unreadable or over %d bytes", maxBody))
		return
	}
	if dt == crdt.RecordsDoctype {
		writeErr(w, http.StatusForbidden, fmt.Errorf("%s holds the authority's signed records; import records with `meridian records import FILE` instead", dt))
		return
	}
	des, err := crdt.ParseDesired(body, newRowName)
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	var view *crdt.View
	status := http.StatusOK
	err = n.propose(r.Context(), func(rp *replica.Replica) ([]replica.Edit, error) {
		var ops []crdt.Op
		var exists bool
		if err := rp.Read(dt, name, func(d *crdt.Doc) {
			exists = d.Exists()
			ops = d.Diff(des)
			view = d.View()
		}); err != nil {
			return nil, err
		}
		if create && exists {
			status = http.StatusConflict
			return nil, fmt.Errorf("%s %s already exists", dt, name)
		}
		if len(ops) == 0 {
			return nil, nil
		}
		dot, err := rp.Propose(replica.Proposal{Doctype: dt, Name: name, Ops: ops})
		if err != nil {
			return nil, err
		}
		_ = rp.Read(dt, name, func(d *crdt.Doc) { view = d.View() })
		return []replica.Edit{{Doctype: dt, Dot: dot}}, nil
	})
	if err != nil {
		status = editStatus(err, status)
		if status == http.StatusForbidden {
			err = fmt.Errorf("this site may not write %s: %v (the authority grants it with `meridian authority grant %s %s --write`)", dt, err, n.site, dt)
		}
		writeErr(w, status, err)
		return
	}
	writeJSON(w, status, map[string]any{"data": view})
}

func (n *Node) handlePut(w http.ResponseWriter, r *http.Request) {
	n.write(w, r, r.PathValue("doctype"), r.PathValue("name"), false)
}

func (n *Node) handleCreate(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	var head struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(body, &head); err != nil || head.Name == "" {
		writeErr(w, http.StatusBadRequest, errors.New(`POST needs a JSON object with a "name"`))
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	n.write(w, r, r.PathValue("doctype"), head.Name, true)
}

func (n *Node) handleDelete(w http.ResponseWriter, r *http.Request) {
	dt, name := r.PathValue("doctype"), r.PathValue("name")
	status := http.StatusOK
	if dt == crdt.RecordsDoctype {
		writeErr(w, http.StatusForbidden, fmt.Errorf("%s holds the authority's signed records; they are never deleted (a later record overrides one)", dt))
		return
	}
	err := n.propose(r.Context(), func(rp *replica.Replica) ([]replica.Edit, error) {
		d, err := rp.Doc(dt, name)
		if err != nil {
			return nil, err
		}
		if !d.Exists() {
			status = http.StatusNotFound
			return nil, fmt.Errorf("%s %s not found", dt, name)
		}
		dot, err := rp.Propose(replica.Proposal{Doctype: dt, Name: name, Ops: []crdt.Op{{Kind: crdt.OpDelete}}})
		if err != nil {
			return nil, err
		}
		return []replica.Edit{{Doctype: dt, Dot: dot}}, nil
	})
	if err != nil {
		writeErr(w, editStatus(err, status), err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"message": "ok"})
}

// editStatus is the HTTP status for an edit the node refused: the grants
// (403), its size (413), or what the handler found (status), else 400.
func editStatus(err error, status int) int {
	switch {
	case denied(err):
		return http.StatusForbidden
	case errors.Is(err, replica.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case status != http.StatusOK:
		return status
	}
	return http.StatusBadRequest
}

// ConflictJSON is one conflict in API responses.
type ConflictJSON struct {
	Doctype string            `json:"doctype"`
	Name    string            `json:"name"`
	Table   string            `json:"table,omitempty"`
	Row     string            `json:"row,omitempty"`
	Field   string            `json:"field"`
	Values  []ConflictValJSON `json:"values"`
}

// ConflictValJSON is one concurrent value of a conflict.
type ConflictValJSON struct {
	Value  any    `json:"value"`
	Site   string `json:"site"`
	Time   string `json:"time"`
	Winner bool   `json:"shown"`
}

func (n *Node) handleConflicts(w http.ResponseWriter, r *http.Request) {
	only := r.URL.Query().Get("doctype")
	out := []ConflictJSON{}
	err := n.do(r.Context(), func(rp *replica.Replica) error {
		for _, dt := range rp.Doctypes() {
			if only != "" && dt != only {
				continue
			}
			names, err := rp.Names(dt, "", 0)
			if err != nil {
				return err
			}
			for _, name := range names {
				d, err := rp.Doc(dt, name)
				if err != nil {
					return err
				}
				for _, c := range d.Conflicts() {
					cj := ConflictJSON{Doctype: dt, Name: name, Table: c.Table, Row: c.Row, Field: c.Field}
					for i, v := range c.Values {
						cj.Values = append(cj.Values, ConflictValJSON{Value: jsonValue(v.Value), Site: string(v.Dot.Site),
							Time: time.UnixMilli(v.HLC.Physical()).UTC().Format(time.RFC3339Nano), Winner: i == c.Winner})
					}
					out = append(out, cj)
				}
			}
		}
		return nil
	})
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": out})
}

func jsonValue(v crdt.Value) any {
	switch v.Kind {
	case crdt.KindStr:
		return v.Str
	case crdt.KindInt:
		return v.Int
	case crdt.KindDec:
		return json.Number(v.Str)
	case crdt.KindRemoved:
		return "(row removed)"
	}
	return nil
}

// handleVerify compares doctypes with one peer, or with every connected peer.
func (n *Node) handleVerify(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Peer     string   `json:"peer"`
		Doctypes []string `json:"doctypes"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		writeErr(w, http.StatusBadRequest, errors.New(`body must be {"peer": "12D3Koo…", "doctypes": ["Item"]} (both optional)`))
		return
	}
	peers := []string{req.Peer}
	if req.Peer == "" {
		peers = nil
		for _, p := range n.host.ConnectedPeers() {
			peers = append(peers, p.String())
		}
		if len(peers) == 0 {
			writeErr(w, http.StatusConflict, errors.New("no peer is connected to compare with"))
			return
		}
	}
	out := []VerifyResult{}
	for _, p := range peers {
		rs, err := n.Verify(r.Context(), p, req.Doctypes)
		if err != nil {
			writeErr(w, http.StatusBadRequest, err)
			return
		}
		out = append(out, rs...)
	}
	writeJSON(w, http.StatusOK, out)
}

// handleResolve writes a value that dominates every concurrent write of a
// field: the conflict is gone on every site once the write reaches it.
func (n *Node) handleResolve(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Doctype string          `json:"doctype"`
		Name    string          `json:"name"`
		Field   string          `json:"field"`
		Table   string          `json:"table"`
		Row     string          `json:"row"`
		Value   json.RawMessage `json:"value"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil || req.Doctype == "" || req.Name == "" || req.Field == "" || len(req.Value) == 0 {
		writeErr(w, http.StatusBadRequest, errors.New(`body must be {"doctype", "name", "field", "value"} (and "table", "row" for a child-table field)`))
		return
	}
	var x any
	vd := json.NewDecoder(bytes.NewReader(req.Value))
	vd.UseNumber()
	if err := vd.Decode(&x); err != nil {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("value: %v", err))
		return
	}
	val, err := crdt.ValueFromJSON(x)
	if err != nil {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("value: %v", err))
		return
	}
	status := http.StatusOK
	err = n.propose(r.Context(), func(rp *replica.Replica) ([]replica.Edit, error) {
		d, err := rp.Doc(req.Doctype, req.Name)
		if err != nil {
			return nil, err
		}
		key := req.Field
		if req.Table != "" {
			key = crdt.RowKey(req.Table, req.Row, req.Field)
		}
		if !d.Exists() {
			status = http.StatusNotFound
			return nil, fmt.Errorf("%s %s not found", req.Doctype, req.Name)
		}
		if len(d.Register(key)) < 2 {
			status = http.StatusConflict
			return nil, fmt.Errorf("%s %s has no conflict on %s (see `meridian conflicts`)", req.Doctype, req.Name, key)
		}
		dot, err := rp.Propose(replica.Proposal{Doctype: req.Doctype, Name: req.Name,
			Ops: []crdt.Op{{Kind: crdt.OpSet, Table: req.Table, Row: req.Row, Field: req.Field, Value: val}}})
		if err != nil {
			return nil, err
		}
		return []replica.Edit{{Doctype: req.Doctype, Dot: dot}}, nil
	})
	if err != nil {
		writeErr(w, editStatus(err, status), err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"message": "resolved; the value dominates every concurrent write and reaches every site"})
}

// HistoryJSON is one write of a document's history.
type HistoryJSON struct {
	Time  string `json:"time"`
	Site  string `json:"site"`
	Seq   uint64 `json:"seq"`
	Table string `json:"table,omitempty"`
	Row   string `json:"row,omitempty"`
	Field string `json:"field"` // "(created)"/"(deleted)", "(docstatus)", "(row added)"/"(row removed)" for the reserved registers
	Value any    `json:"value"`
}

func (n *Node) handleHistory(w http.ResponseWriter, r *http.Request) {
	dt, name := r.PathValue("doctype"), r.PathValue("name")
	var hs []replica.HistoryEntry
	err := n.do(r.Context(), func(rp *replica.Replica) error {
		var err error
		hs, err = rp.History(dt, name)
		return err
	})
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err)
		return
	}
	out := []HistoryJSON{}
	for _, h := range hs {
		j := HistoryJSON{Time: time.UnixMilli(crdt.HLC(h.HLC).Physical()).UTC().Format(time.RFC3339Nano), Site: h.Site, Seq: h.Seq, Value: jsonValue(h.Value())}
		switch {
		case h.Key == crdt.LifeKey:
			j.Field, j.Value = "(created)", nil
			if h.Value().Int%2 == 0 {
				j.Field = "(deleted)"
			}
		case h.Key == crdt.StatusKey:
			j.Field = "(docstatus)"
		default:
			table, row, field, _ := crdt.SplitKey(h.Key)
			j.Table, j.Row, j.Field = table, row, field
			if table != "" && field == "" {
				j.Field, j.Value = "(row added)", nil
				if h.Value().Kind == crdt.KindRemoved {
					j.Field = "(row removed)"
				}
			}
		}
		out = append(out, j)
	}
	if len(out) == 0 {
		writeErr(w, http.StatusNotFound, fmt.Errorf("%s %s has no history here", dt, name))
		return
	}
	writeJSON(w, http.StatusOK, out)
}
