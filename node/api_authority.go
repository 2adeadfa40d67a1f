package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"time"

	"meridian/crdt"
	"meridian/replica"
)

// denied reports whether an edit was refused by the authority's records.
func denied(err error) bool {
	return errors.Is(err, replica.ErrWait) || errors.Is(err, ErrNoGrant) || errors.Is(err, ErrReadOnly) || errors.Is(err, ErrRetired)
}

var errNoAuthority = errors.New("this node has no authority configured (set authority and mesh in config.toml, or `meridian init --authority KEY`)")

// RecordJSON is a record as the admin API lists it.
type RecordJSON struct {
	Key     string   `json:"key"`
	Kind    string   `json:"kind"`
	Site    string   `json:"site,omitempty"`
	Doctype string   `json:"doctype,omitempty"`
	Version uint64   `json:"version,omitempty"`
	Status  string   `json:"status,omitempty"`
	Schema  string   `json:"schema,omitempty"`
	Parents []uint64 `json:"parents,omitempty"`
	Read    bool     `json:"read,omitempty"`
	Write   bool     `json:"write,omitempty"`
	Where   string   `json:"where,omitempty"`
	Admit   bool     `json:"admit,omitempty"`
	Signer  string   `json:"signer"`
	Issued  string   `json:"issued"`
	Record  string   `json:"record"` // base64 of the signed record
}

func recordJSON(r *crdt.Record) RecordJSON {
	j := RecordJSON{Key: r.Key(), Kind: r.Kind.String(), Site: string(r.Site), Doctype: r.Doctype, Version: r.Version,
		Schema: r.Schema, Parents: r.Parents, Read: r.Read, Write: r.Write, Where: r.Where, Admit: r.Admit,
		Signer: string(r.Signer), Issued: time.UnixMilli(r.Issued).UTC().Format(time.RFC3339Nano), Record: EncodeRecordText(r)}
	if r.Kind == crdt.RecordVersion {
		j.Status = r.Status.String()
	}
	return j
}

// handleRecords lists the records that decide the authority state (to
// export, or to read).
func (n *Node) handleRecords(w http.ResponseWriter, r *http.Request) {
	if n.auth == nil {
		writeErr(w, http.StatusConflict, errNoAuthority)
		return
	}
	out := []RecordJSON{}
	for _, rec := range n.auth.records(nil) {
		out = append(out, recordJSON(rec))
	}
	writeJSON(w, http.StatusOK, out)
}

// handleImport takes {"records": ["base64", …]}: records signed elsewhere
// (offline by the authority, or by a site) joining this node's state and
// gossiping from here.
func (n *Node) handleImport(w http.ResponseWriter, r *http.Request) {
	if n.auth == nil {
		writeErr(w, http.StatusConflict, errNoAuthority)
		return
	}
	var req struct {
		Records []string `json:"records"`
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err == nil && len(body) > maxBody {
		err = fmt.Errorf("over %d bytes", maxBody)
	}
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("body must be {\"records\": [\"base64\", …]}: %v", err))
		return
	}
	var recs []*crdt.Record
	for i, s := range req.Records {
		rec, err := DecodeRecordText(s)
		if err != nil {
			writeErr(w, http.StatusBadRequest, fmt.Errorf("record %d: %v; nothing was imported", i+1, err))
			return
		}
		recs = append(recs, rec)
	}
	var res []ImportResult
	err = n.propose(r.Context(), func(*replica.Replica) ([]replica.Edit, error) {
		var edits []replica.Edit
		res, edits = n.importRecords(recs)
		return edits, nil
	})
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// handleSubscribe signs this site's request for a doctype and sends it
// toward the authority (gossip if admitted, else the next handshakes).
func (n *Node) handleSubscribe(w http.ResponseWriter, r *http.Request) {
	if n.auth == nil {
		writeErr(w, http.StatusConflict, errNoAuthority)
		return
	}
	var req struct {
		Doctype string `json:"doctype"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil || crdt.ValidateName("doctype", req.Doctype) != nil {
		writeErr(w, http.StatusBadRequest, errors.New(`body must be {"doctype": "Customer"}`))
		return
	}
	rec := &crdt.Record{Kind: crdt.RecordSubscribe, Mesh: n.auth.mesh, Site: n.site, Doctype: req.Doctype, Issued: time.Now().UnixMilli()}
	rec.Sign(n.key)
	var res []ImportResult
	err := n.propose(r.Context(), func(*replica.Replica) ([]replica.Edit, error) {
		var edits []replica.Edit
		res, edits = n.importRecords([]*crdt.Record{rec})
		return edits, nil
	})
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err)
		return
	}
	if !n.auth.officially(n.site) {
		// Not admitted: the request travels in handshakes; start some now.
		for _, p := range n.host.Peers() {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_ = n.host.Reconnect(ctx, p.ID)
			}()
		}
	}
	writeJSON(w, http.StatusOK, res)
}

// VersionJSON is one master version with the sites that report using it.
type VersionJSON struct {
	Version uint64   `json:"version"`
	Status  string   `json:"status"`
	Schema  string   `json:"schema"`
	Parents []uint64 `json:"parents,omitempty"`
	Issued  string   `json:"issued"`
	Sites   []string `json:"sites"`
	Current bool     `json:"current"` // the version this site writes under
}

func (n *Node) handleVersions(w http.ResponseWriter, r *http.Request) {
	if n.auth == nil {
		writeErr(w, http.StatusConflict, errNoAuthority)
		return
	}
	dt := r.PathValue("doctype")
	mine := n.auth.versionOf(dt)
	out := []VersionJSON{}
	n.auth.view(func(st *crdt.AuthorityState) {
		users := map[uint64][]string{}
		for _, site := range st.Sites() {
			if rep := st.Report(site); rep != nil {
				if v, ok := rep.Report.Versions[dt]; ok {
					users[v] = append(users[v], string(site))
				}
			}
		}
		for _, v := range st.Versions(dt) {
			sites := users[v.Version]
			sort.Strings(sites)
			if sites == nil {
				sites = []string{}
			}
			out = append(out, VersionJSON{Version: v.Version, Status: v.Status.String(), Schema: v.Schema, Parents: v.Parents,
				Issued: time.UnixMilli(v.Issued).UTC().Format(time.RFC3339), Sites: sites, Current: v.Version == mine})
		}
	})
	writeJSON(w, http.StatusOK, out)
}

func (n *Node) handleConsumers(w http.ResponseWriter, r *http.Request) {
	if n.auth == nil {
		writeErr(w, http.StatusConflict, errNoAuthority)
		return
	}
	seen := map[string]crdt.VersionVector{}
	err := n.do(r.Context(), func(rp *replica.Replica) error {
		for _, dt := range rp.Doctypes() {
			seen[dt] = rp.VersionVector(dt)
		}
		return nil
	})
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err)
		return
	}
	out := n.auth.consumers(seen)
	if out == nil {
		out = []Consumer{}
	}
	writeJSON(w, http.StatusOK, out)
}

// seenCount is how many edits a version vector has delivered.
func seenCount(vv crdt.VersionVector) uint64 {
	var sum uint64
	for _, s := range vv {
		sum += s.Max
		for _, iv := range s.Extra {
			sum += iv.Hi - iv.Lo + 1
		}
	}
	return sum
}

// AuthorityStatus is the authority part of GET /api/status.
type AuthorityStatus struct {
	Key      string            `json:"key"`
	Mesh     string            `json:"mesh"`
	Admitted bool              `json:"admitted"`
	Grants   []RecordJSON      `json:"grants"`
	Versions map[string]uint64 `json:"versions"` // doctype → version written under
	Records  int               `json:"records"`
}

func (n *Node) authorityStatus(doctypes []string) *AuthorityStatus {
	if n.auth == nil {
		return nil
	}
	st := &AuthorityStatus{Key: n.cfg.Authority, Mesh: n.auth.mesh, Admitted: n.auth.officially(n.site), Grants: []RecordJSON{}, Versions: map[string]uint64{}}
	recs := n.auth.records(nil)
	st.Records = len(recs)
	for _, r := range recs {
		if r.Kind == crdt.RecordGrant && r.Site == n.site {
			st.Grants = append(st.Grants, recordJSON(r))
		}
	}
	for _, dt := range doctypes {
		if v := n.auth.versionOf(dt); v != 0 {
			st.Versions[dt] = v
		}
	}
	return st
}
