package node

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"meridian/bridge"
)

var errNoBridge = errors.New("this node has no site database, or it has not answered yet (start the node with --site PATH/sites/SITE or --db URL, or set [bridge] in config.toml; the node log says why it is not connected)")

func (n *Node) handleBridgeStatus(w http.ResponseWriter, r *http.Request) {
	if n.br() == nil {
		writeErr(w, http.StatusConflict, errNoBridge)
		return
	}
	st, err := n.br().status(r.Context())
	if err != nil {
		writeErr(w, http.StatusBadGateway, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (n *Node) handleSyncLog(w http.ResponseWriter, r *http.Request) {
	if n.br() == nil {
		writeErr(w, http.StatusConflict, errNoBridge)
		return
	}
	fs, err := n.br().app.Failures(r.Context(), false)
	if err != nil {
		writeErr(w, http.StatusBadGateway, err)
		return
	}
	if fs == nil {
		fs = []bridge.Failure{}
	}
	writeJSON(w, http.StatusOK, fs)
}

func (n *Node) handleResync(w http.ResponseWriter, r *http.Request) {
	if n.br() == nil {
		writeErr(w, http.StatusConflict, errNoBridge)
		return
	}
	var req struct {
		Doctype string `json:"doctype"`
		Name    string `json:"name"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		writeErr(w, http.StatusBadRequest, errors.New(`body must be {"doctype": "Item", "name": "ITEM-1"} (both optional)`))
		return
	}
	if req.Name != "" && req.Doctype == "" {
		writeErr(w, http.StatusBadRequest, errors.New("a name needs its doctype"))
		return
	}
	count, err := n.br().resync(r.Context(), req.Doctype, req.Name)
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"documents": count})
}

// AdoptProgress is one line of POST /api/bridge/adopt's NDJSON answer.
type AdoptProgress struct {
	Done     int    `json:"done"`
	Total    int    `json:"total"`
	Proposed int    `json:"proposed"`
	Finished bool   `json:"finished,omitempty"`
	Error    string `json:"error,omitempty"`
}

// handleAdopt streams progress lines while a doctype's rows are adopted.
func (n *Node) handleAdopt(w http.ResponseWriter, r *http.Request) {
	if n.br() == nil {
		writeErr(w, http.StatusConflict, errNoBridge)
		return
	}
	var req struct {
		Doctype string `json:"doctype"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil || req.Doctype == "" {
		writeErr(w, http.StatusBadRequest, errors.New(`body must be {"doctype": "Item"}`))
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	emit := func(p AdoptProgress) {
		_ = enc.Encode(p)
		if flusher != nil {
			flusher.Flush()
		}
	}
	var last AdoptProgress
	proposed, err := n.br().adopt(r.Context(), req.Doctype, func(done, total, proposed int) {
		last = AdoptProgress{Done: done, Total: total, Proposed: proposed}
		emit(last)
	})
	last.Proposed, last.Finished = proposed, true
	if err != nil {
		last.Error = err.Error()
	}
	emit(last)
}
