package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	"meridian/crdt"
)

// handleBundleExport answers the bundle's bytes.
func (n *Node) handleBundleExport(w http.ResponseWriter, r *http.Request) {
	var req struct {
		For   string        `json:"for"`
		Since *BundleHeader `json:"since"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<20)).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		writeErr(w, http.StatusBadRequest, errors.New(`body must be {"for": "SITE" or "", "since": {…} (optional)}`))
		return
	}
	if req.For != "" {
		if _, err := crdt.PeerIDPublicKey(req.For); err != nil {
			writeErr(w, http.StatusBadRequest, errors.New("for: not a site ID (the peer ID `meridian id` prints)"))
			return
		}
	}
	var buf bytes.Buffer
	count, err := n.ExportBundle(r.Context(), &buf, req.For, req.Since, nil)
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Meridian-Documents", strconv.Itoa(count))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

// BundleProgress is one line of POST /api/bundle/import's NDJSON answer.
type BundleProgress struct {
	Done     int          `json:"done"`
	Total    int          `json:"total"`
	Finished bool         `json:"finished,omitempty"`
	From     string       `json:"from,omitempty"`
	Stats    *ImportStats `json:"stats,omitempty"`
	Error    string       `json:"error,omitempty"`
}

// handleBundleImport verifies a bundle whole, then applies it, streaming
// progress.
func (n *Node) handleBundleImport(w http.ResponseWriter, r *http.Request) {
	mesh := ""
	if n.auth != nil {
		mesh = n.auth.mesh
	}
	h, msgs, err := ReadBundle(r.Body, mesh)
	if err != nil {
		writeErr(w, http.StatusBadRequest, errors.New("bundle refused, nothing applied: "+err.Error()))
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	emit := func(p BundleProgress) {
		_ = enc.Encode(p)
		if flusher != nil {
			flusher.Flush()
		}
	}
	st, err := n.ImportBundle(r.Context(), h, msgs, func(done, total int) { emit(BundleProgress{Done: done, Total: total}) })
	last := BundleProgress{Done: len(msgs), Total: len(msgs), Finished: true, From: h.From, Stats: &st}
	if err != nil {
		last.Error = err.Error()
	}
	emit(last)
}
