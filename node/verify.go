package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"meridian/crdt"
	"meridian/replica"
)

// VerifyProtocol lets a site compare what it holds with a peer: digests
// computed afresh from every document's content, per doctype, then per
// bucket, then per document.
const VerifyProtocol protocol.ID = "/meridian/verify/1.0.0"

// verifyReq is [1, doctype, bucket]: bucket -1 asks for the summary.
type verifyReq struct {
	_       struct{} `cbor:",toarray"`
	Version uint64
	Doctype string
	Bucket  int
}

// verifyResp answers a summary (VV digest, the 256 bucket digests) or a
// bucket (its documents' names and digests).
type verifyResp struct {
	_       struct{} `cbor:",toarray"`
	Error   string
	VV      []byte
	Buckets [][]byte
	Names   []string
	Digests [][]byte
}

var verifyDec = mustDecMode(cbor.DecOptions{MaxArrayElements: 1 << 20, MaxNestedLevels: 4})
var verifyEnc, _ = cbor.CoreDetEncOptions().EncMode()

// DivergentDoc is a document two sites hold differently.
type DivergentDoc struct {
	Name   string `json:"name"`
	Local  string `json:"local"`  // digest here, or "missing"
	Remote string `json:"remote"` // digest at the peer, or "missing"
}

// VerifyResult is one doctype compared with one peer.
type VerifyResult struct {
	Doctype   string         `json:"doctype"`
	Peer      string         `json:"peer"`
	Settled   bool           `json:"settled"` // both have delivered the same writes
	Equal     bool           `json:"equal"`
	Divergent []DivergentDoc `json:"divergent"`
	Error     string         `json:"error,omitempty"`
	At        string         `json:"at"`
}

// contentBuckets digests every document of a doctype afresh (on the loop,
// a thousand at a time) into bucket digests; with bucket ≥ 0 it returns
// that bucket's documents too.
func (n *Node) contentBuckets(ctx context.Context, dt string, bucket int) ([crdt.Buckets]crdt.Digest, []replica.NameDigest, error) {
	var buckets [crdt.Buckets]crdt.Digest
	var docs []replica.NameDigest
	after := ""
	for {
		var page []replica.NameDigest
		if err := n.do(ctx, func(r *replica.Replica) error {
			var err error
			page, err = r.ContentDigests(dt, after, 1000, bucket)
			return err
		}); err != nil {
			return buckets, nil, err
		}
		for _, d := range page {
			b := crdt.BucketOf(d.Name)
			if bucket >= 0 && b != bucket {
				continue
			}
			buckets[b].Xor(crdt.DocTerm(d.Name, d.Digest))
			if bucket >= 0 && d.Digest != (crdt.Digest{}) {
				docs = append(docs, d)
			}
		}
		if len(page) < 1000 {
			return buckets, docs, nil
		}
		after = page[len(page)-1].Name
	}
}

func (n *Node) vvDigestOf(ctx context.Context, dt string) ([]byte, error) {
	var vv crdt.VersionVector
	if err := n.do(ctx, func(r *replica.Replica) error { vv = r.DurableVersionVector(dt); return nil }); err != nil {
		return nil, err
	}
	return []byte(vv.String()), nil
}

// serveVerify answers a peer's verification request (transport goroutine).
func (n *Node) serveVerify(ctx context.Context, from peer.ID, raw []byte) ([]byte, error) {
	var req verifyReq
	resp := verifyResp{}
	if err := verifyDec.Unmarshal(raw, &req); err != nil || req.Version != 1 || req.Bucket < -1 || req.Bucket >= crdt.Buckets {
		resp.Error = "malformed verify request"
		return verifyEnc.Marshal(resp)
	}
	if n.auth != nil && !n.auth.canRead(crdt.SiteID(from.String()), req.Doctype) {
		resp.Error = "this site may not read " + req.Doctype
		return verifyEnc.Marshal(resp)
	}
	buckets, docs, err := n.contentBuckets(ctx, req.Doctype, req.Bucket)
	if err != nil {
		return nil, err
	}
	if req.Bucket < 0 {
		if resp.VV, err = n.vvDigestOf(ctx, req.Doctype); err != nil {
			return nil, err
		}
		for i := range buckets {
			resp.Buckets = append(resp.Buckets, append([]byte(nil), buckets[i][:]...))
		}
	} else {
		for _, d := range docs {
			resp.Names = append(resp.Names, d.Name)
			resp.Digests = append(resp.Digests, append([]byte(nil), d.Digest[:]...))
		}
	}
	return verifyEnc.Marshal(resp)
}

func (n *Node) askVerify(ctx context.Context, p peer.ID, dt string, bucket int) (*verifyResp, error) {
	raw, _ := verifyEnc.Marshal(verifyReq{Version: 1, Doctype: dt, Bucket: bucket})
	out, err := n.host.Request(ctx, p, VerifyProtocol, raw)
	if err != nil {
		return nil, err
	}
	var resp verifyResp
	if err := verifyDec.Unmarshal(out, &resp); err != nil {
		return nil, fmt.Errorf("the peer's verify answer is malformed: %w", err)
	}
	if resp.Error != "" {
		return nil, errors.New(resp.Error)
	}
	return &resp, nil
}

// Verify compares the given doctypes (all this site holds when empty) with
// a peer and names the documents that differ.
func (n *Node) Verify(ctx context.Context, peerID string, doctypes []string) ([]VerifyResult, error) {
	p, err := peer.Decode(peerID)
	if err != nil {
		return nil, fmt.Errorf("peer %q is not a peer ID: %w", peerID, err)
	}
	if len(doctypes) == 0 {
		if err := n.do(ctx, func(r *replica.Replica) error {
			for _, dt := range r.Doctypes() {
				if dt != crdt.RecordsDoctype {
					doctypes = append(doctypes, dt)
				}
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	var out []VerifyResult
	for _, dt := range doctypes {
		res := VerifyResult{Doctype: dt, Peer: peerID, Divergent: []DivergentDoc{}, At: time.Now().UTC().Format(time.RFC3339)}
		if err := n.verifyOne(ctx, p, dt, &res); err != nil {
			res.Error = err.Error()
		}
		out = append(out, res)
	}
	n.noteVerify(out)
	return out, nil
}

func (n *Node) verifyOne(ctx context.Context, p peer.ID, dt string, res *VerifyResult) error {
	remote, err := n.askVerify(ctx, p, dt, -1)
	if err != nil {
		return err
	}
	if len(remote.Buckets) != crdt.Buckets {
		return fmt.Errorf("the peer sent %d bucket digests, not %d", len(remote.Buckets), crdt.Buckets)
	}
	local, _, err := n.contentBuckets(ctx, dt, -1)
	if err != nil {
		return err
	}
	vv, err := n.vvDigestOf(ctx, dt)
	if err != nil {
		return err
	}
	res.Settled = string(vv) == string(remote.VV)
	res.Equal = true
	for b := range local {
		if string(local[b][:]) == string(remote.Buckets[b]) {
			continue
		}
		res.Equal = false
		theirs, err := n.askVerify(ctx, p, dt, b)
		if err != nil {
			return err
		}
		_, mine, err := n.contentBuckets(ctx, dt, b)
		if err != nil {
			return err
		}
		rm := map[string]string{}
		for i, name := range theirs.Names {
			if i < len(theirs.Digests) {
				rm[name] = hex.EncodeToString(theirs.Digests[i])
			}
		}
		lm := map[string]string{}
		for _, d := range mine {
			lm[d.Name] = hex.EncodeToString(d.Digest[:])
		}
		for name, l := range lm {
			if r, ok := rm[name]; !ok {
				res.Divergent = append(res.Divergent, DivergentDoc{Name: name, Local: l[:16], Remote: "missing"})
			} else if r != l {
				res.Divergent = append(res.Divergent, DivergentDoc{Name: name, Local: l[:16], Remote: r[:16]})
			}
		}
		for name, r := range rm {
			if _, ok := lm[name]; !ok {
				res.Divergent = append(res.Divergent, DivergentDoc{Name: name, Local: "missing", Remote: r[:min(16, len(r))]})
			}
		}
	}
	sort.Slice(res.Divergent, func(i, j int) bool { return res.Divergent[i].Name < res.Divergent[j].Name })
	if len(res.Divergent) > 0 && res.Settled {
		n.log.Error("verify: a peer that delivered the same writes holds these documents differently",
			"doctype", dt, "peer", shortID(res.Peer), "documents", len(res.Divergent), "first", res.Divergent[0].Name)
	}
	return nil
}

// noteVerify keeps the latest results for status and metrics.
func (n *Node) noteVerify(rs []VerifyResult) {
	n.verifyMu.Lock()
	defer n.verifyMu.Unlock()
	if n.lastVerify == nil {
		n.lastVerify = map[string]VerifyResult{}
	}
	for _, r := range rs {
		n.lastVerify[r.Doctype] = r
		count := 0
		if r.Settled {
			count = len(r.Divergent)
		}
		n.met.divergent.WithLabelValues(r.Doctype).Set(float64(count))
	}
}

// verifier runs Verify against a random connected peer now and then.
func (n *Node) verifier() {
	every := time.Duration(n.cfg.VerifyInterval)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-n.stopped:
			return
		case <-t.C:
		}
		peers := n.host.ConnectedPeers()
		if len(peers) == 0 {
			continue
		}
		p := peers[rand.IntN(len(peers))]
		ctx, cancel := context.WithTimeout(context.Background(), every)
		if _, err := n.Verify(ctx, p.String(), nil); err != nil {
			n.log.Debug("periodic verify failed", "peer", shortID(p.String()), "err", err)
		}
		cancel()
	}
}
