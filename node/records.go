package node

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"meridian/crdt"
	"meridian/replica"
)

// HandshakeProtocol is the one protocol a site the authority has not
// admitted may use: each side sends the records the other needs (its own
// admission and subscription requests, the versions, the grants of both)
// and, if the other is not admitted, closes the connection after it.
const HandshakeProtocol protocol.ID = "/meridian/handshake/1.0.0"

// handshakeVersion is the first element of a handshake frame.
const handshakeVersion = 1

// maxHandshakeRecords bounds the records one handshake carries.
const maxHandshakeRecords = 4096

// handshake is the CBOR array [version, mesh, [record, …]] each side sends.
type handshake struct {
	_       struct{} `cbor:",toarray"`
	Version uint64
	Mesh    string
	Records [][]byte
}

var handshakeDec = mustDecMode(cbor.DecOptions{MaxArrayElements: maxHandshakeRecords + 8, MaxNestedLevels: 4, DupMapKey: cbor.DupMapKeyEnforcedAPF})

func mustDecMode(o cbor.DecOptions) cbor.DecMode {
	dm, err := o.DecMode()
	if err != nil {
		panic("node: CBOR decoder options: " + err.Error())
	}
	return dm
}

var handshakeEnc, _ = cbor.CoreDetEncOptions().EncMode()

// DecodeHandshake parses a handshake frame.
func DecodeHandshake(data []byte) (*handshake, error) {
	var h handshake
	if err := handshakeDec.Unmarshal(data, &h); err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	if h.Version != handshakeVersion {
		return nil, fmt.Errorf("handshake version %d, this node speaks %d", h.Version, handshakeVersion)
	}
	if len(h.Records) > maxHandshakeRecords {
		return nil, fmt.Errorf("handshake carries %d records, more than %d", len(h.Records), maxHandshakeRecords)
	}
	return &h, nil
}

// handshakeFor builds what this site tells peer p.
func (n *Node) handshakeFor(p crdt.SiteID) []byte {
	recs := n.auth.records(func(r *crdt.Record) bool {
		switch r.Kind {
		case crdt.RecordVersion:
			return true
		case crdt.RecordReport:
			return false
		}
		return r.Site == n.site || r.Site == p
	})
	h := handshake{Version: handshakeVersion, Mesh: n.auth.mesh}
	for _, r := range recs {
		h.Records = append(h.Records, crdt.EncodeRecord(r))
	}
	raw, _ := handshakeEnc.Marshal(h)
	return raw
}

// ImportResult says what became of one imported record.
type ImportResult struct {
	Key    string `json:"key"`
	Kind   string `json:"kind"`
	Result string `json:"result"` // imported, known, rejected
	Error  string `json:"error,omitempty"`
}

// importRecords checks records and writes the ones that change the
// authority state into the records doctype (loop goroutine). It returns
// the edits to await.
func (n *Node) importRecords(recs []*crdt.Record) ([]ImportResult, []replica.Edit) {
	var out []ImportResult
	var edits []replica.Edit
	changed := false
	for _, rec := range recs {
		res := ImportResult{Key: rec.Key(), Kind: rec.Kind.String()}
		if err := n.auth.check(rec); err != nil {
			res.Result, res.Error = "rejected", err.Error()
			out = append(out, res)
			continue
		}
		if !n.auth.supersedes(rec) {
			res.Result = "known"
			out = append(out, res)
			continue
		}
		n.auth.add(rec)
		changed = true
		e, err := n.writeRecord(rec)
		if err != nil {
			res.Result, res.Error = "rejected", err.Error()
		} else {
			res.Result = "imported"
			edits = append(edits, e)
		}
		out = append(out, res)
	}
	if changed {
		n.authChanged()
	}
	return out, edits
}

// writeRecord stores a record in its document of the records doctype.
func (n *Node) writeRecord(rec *crdt.Record) (replica.Edit, error) {
	name := recordDocName(rec)
	doc, err := n.r.Doc(crdt.RecordsDoctype, name)
	if err != nil {
		return replica.Edit{}, err
	}
	var ops []crdt.Op
	if !doc.Exists() {
		ops = append(ops, crdt.Op{Kind: crdt.OpCreate})
	}
	ops = append(ops, crdt.Op{Kind: crdt.OpSet, Field: crdt.RecordField, Value: crdt.Str(EncodeRecordText(rec))})
	dot, err := n.r.Propose(replica.Proposal{Doctype: crdt.RecordsDoctype, Name: name, Ops: ops})
	if err != nil {
		return replica.Edit{}, err
	}
	return replica.Edit{Doctype: crdt.RecordsDoctype, Dot: dot}, nil
}

// loadRecords rebuilds the authority state from the records doctype at start.
func (n *Node) loadRecords() error {
	after := ""
	for {
		names, err := n.r.Names(crdt.RecordsDoctype, after, 1000)
		if err != nil {
			return err
		}
		for _, name := range names {
			n.readRecordDoc(name, false)
		}
		if len(names) < 1000 {
			return nil
		}
		after = names[len(names)-1]
	}
}

// readRecordDoc joins the records a records document holds into the state
// and, with repair, rewrites the document if it holds a worse record than
// this site knows (an importer that had not seen a later record, or a
// site writing garbage): records documents converge to the join.
func (n *Node) readRecordDoc(name string, repair bool) bool {
	var recs []*crdt.Record
	var bad error
	var visible string
	_ = n.r.Read(crdt.RecordsDoctype, name, func(d *crdt.Doc) {
		recs, bad = n.auth.recordsIn(d)
		if v, ok := d.View().Fields[crdt.RecordField]; ok {
			visible = v.Str
		}
	})
	if bad != nil {
		n.met.events.WithLabelValues("bad_record").Inc()
		n.log.Warn("a records document holds an invalid record; ignoring it", "doc", name, "reason", bad.Error())
	}
	changed := false
	for _, r := range recs {
		if n.auth.add(r) {
			changed = true
		}
	}
	if repair {
		if best := n.auth.bestOf(name); best != nil && EncodeRecordText(best) != visible {
			if _, err := n.writeRecord(best); err != nil && !errors.Is(err, crdt.ErrNoChange) {
				n.log.Warn("could not repair a records document", "doc", name, "err", err)
			}
		}
	}
	return changed
}

// authChanged re-examines everything records decide (loop goroutine):
// held batches, which connected peers sync, who is cut off.
func (n *Node) authChanged() {
	n.r.Recheck()
	if b := n.br(); b != nil {
		b.versionsChanged()
	}
	if n.host == nil {
		return // starting: no network yet
	}
	for _, p := range n.host.ConnectedPeers() {
		id := crdt.SiteID(p.String())
		if n.auth.admitted(id) {
			if n.handshaken[id] {
				n.r.AddPeer(id)
			}
		} else if n.syncing(id) {
			// Like any site not admitted: it reconnects shortly and
			// learns from the handshake why (its last grant revoked, or
			// expelled), and is dialled back if admitted again.
			n.r.RemovePeer(id)
			n.cutOff(p, "the authority no longer admits this site")
		}
	}
	for id := range n.refused {
		if n.auth.admitted(id) {
			delete(n.refused, id)
			p, err := peer.Decode(string(id))
			if err != nil {
				continue
			}
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := n.host.Reconnect(ctx, p); err != nil {
					n.log.Info("could not reach a newly admitted site; it will reconnect itself", "peer", shortID(string(id)), "err", err)
				}
			}()
		}
	}
}

func (n *Node) syncing(id crdt.SiteID) bool {
	for _, p := range n.r.Peers() {
		if p == id {
			return true
		}
	}
	return false
}

// serveHandshake answers a peer's handshake (transport goroutine).
func (n *Node) serveHandshake(ctx context.Context, from peer.ID, req []byte) ([]byte, error) {
	id := crdt.SiteID(from.String())
	h, err := DecodeHandshake(req)
	if err != nil {
		n.log.Warn("disconnecting a peer that sent a bad handshake", "peer", shortID(string(id)), "reason", err.Error())
		n.host.Disconnect(from, "bad handshake: "+err.Error())
		return nil, err
	}
	if err := n.takeHandshake(ctx, id, h); err != nil {
		return nil, err
	}
	var resp []byte
	admitted := false
	if err := n.do(ctx, func(*replica.Replica) error {
		resp = n.handshakeFor(id)
		admitted = n.auth.admitted(id)
		return nil
	}); err != nil {
		return nil, err
	}
	if !admitted {
		n.refuse(from)
	}
	return resp, nil
}

// takeHandshake imports the records a handshake carries: the peer's own
// requests always (they are how a new site asks to join), the rest as any
// record.
func (n *Node) takeHandshake(ctx context.Context, id crdt.SiteID, h *handshake) error {
	if h.Mesh != n.auth.mesh {
		return fmt.Errorf("peer %s belongs to mesh %q, not %q", id, h.Mesh, n.auth.mesh)
	}
	var recs []*crdt.Record
	for _, raw := range h.Records {
		r, err := crdt.DecodeRecord(raw)
		if err != nil {
			return fmt.Errorf("handshake record: %w", err)
		}
		recs = append(recs, r)
	}
	return n.propose(ctx, func(*replica.Replica) ([]replica.Edit, error) {
		res, edits := n.importRecords(recs)
		for _, r := range res {
			if r.Result == "rejected" {
				n.log.Info("a handshake record was refused", "peer", shortID(string(id)), "record", r.Key, "reason", r.Error)
			}
		}
		return edits, nil
	})
}

// refuse cuts off a site the authority has not admitted, after its
// handshake, for a short while (it comes back on its own, or is dialled
// when the authority admits it).
func (n *Node) refuse(p peer.ID) {
	_ = n.do(context.Background(), func(*replica.Replica) error {
		n.cutOff(p, "not admitted by the authority (subscription requests taken)")
		return nil
	})
	n.log.Info("site not admitted by the authority: handshake only", "peer", p.String())
}

// refuseFor is how long a site the authority does not admit is refused
// after each handshake (docs/protocol.md §11.3).
const refuseFor = 5 * time.Second

// cutOff (loop goroutine) closes the connection of a site the authority
// does not admit about 0.5 s later, when its handshake has been answered,
// refuses it for refuseFor, and remembers it, to dial it back once admitted.
func (n *Node) cutOff(p peer.ID, reason string) {
	id := crdt.SiteID(p.String())
	n.refused[id] = true
	time.AfterFunc(500*time.Millisecond, func() {
		if !n.auth.admitted(id) {
			n.host.DisconnectFor(p, reason, refuseFor)
		}
	})
}

// greet runs the handshake with a newly connected peer, then lets the
// replica sync with it if both are admitted (its own goroutine).
func (n *Node) greet(p peer.ID) {
	id := crdt.SiteID(p.String())
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var req []byte
	if err := n.do(ctx, func(*replica.Replica) error { req = n.handshakeFor(id); return nil }); err != nil {
		return
	}
	resp, err := n.host.Request(ctx, p, HandshakeProtocol, req)
	if err != nil {
		n.log.Debug("handshake failed", "peer", shortID(string(id)), "err", err)
		return
	}
	h, err := DecodeHandshake(resp)
	if err != nil {
		n.log.Warn("disconnecting a peer that sent a bad handshake", "peer", shortID(string(id)), "reason", err.Error())
		n.host.Disconnect(p, "bad handshake: "+err.Error())
		return
	}
	if err := n.takeHandshake(ctx, id, h); err != nil {
		n.log.Warn("handshake refused", "peer", shortID(string(id)), "reason", err.Error())
		n.host.Disconnect(p, err.Error())
		return
	}
	_ = n.do(ctx, func(r *replica.Replica) error {
		n.handshaken[id] = true
		switch {
		case !n.auth.officially(n.site):
			n.log.Warn("this site is not admitted by the authority yet: only its subscription requests were sent",
				"peer", shortID(string(id)), "hint", "ask the authority to run `meridian authority approve "+string(n.site)+" DOCTYPE`")
		case n.auth.admitted(id):
			r.AddPeer(id)
		default:
			n.refused[id] = true
		}
		return nil
	})
}

// report signs and imports this site's report (loop goroutine).
func (n *Node) report() {
	if !n.auth.officially(n.site) {
		return // a report from a site not admitted would not travel
	}
	rep := &crdt.SiteReport{Versions: map[string]uint64{}, Seen: map[string]uint64{}, LastSync: map[string]int64{}, Failures: map[string]int64{},
		VV: map[string]map[string]uint64{}}
	for _, dt := range n.r.Doctypes() {
		if dt == crdt.RecordsDoctype {
			continue
		}
		if v := n.auth.versionOf(dt); v != 0 {
			rep.Versions[dt] = v
		}
		vv := n.r.VersionVector(dt)
		rep.Seen[dt] = seenCount(vv)
		tops := map[string]uint64{}
		for site, seen := range vv {
			tops[string(site)] = seen.Max
		}
		rep.VV[dt] = tops
	}
	for p, t := range n.lastHeard {
		rep.LastSync[string(p)] = t
	}
	for k, v := range n.failures {
		rep.Failures[k] = v
	}
	if b := n.br(); b != nil {
		rep.Lag = b.lag().Milliseconds()
		if f := b.failing(); f > 0 {
			rep.Failures["bridge"] = int64(f)
		}
	}
	rec := &crdt.Record{Kind: crdt.RecordReport, Mesh: n.auth.mesh, Site: n.site, Issued: time.Now().UnixMilli(), Report: rep}
	rec.Sign(n.key)
	n.importRecords([]*crdt.Record{rec})
}

// startAuthority rebuilds the authority state from the store and, on the
// head office whose data directory holds the authority key, admits this
// site itself.
func (n *Node) startAuthority() error {
	if err := n.loadRecords(); err != nil {
		return fmt.Errorf("node: reading the authority's records: %w", err)
	}
	key, err := LoadAuthorityKey(filepath.Join(n.cfg.DataDir, AuthorityKeyFile))
	if err != nil {
		return nil // the key lives elsewhere (or offline)
	}
	if key.Public() != n.cfg.Authority || key.Mesh != n.auth.mesh {
		n.log.Warn("the authority key in the data directory is not this node's authority; not using it", "key", key.Public())
		return nil
	}
	if n.auth.officially(n.site) {
		return nil
	}
	rec := &crdt.Record{Kind: crdt.RecordAdmit, Mesh: key.Mesh, Site: n.site, Admit: true, Issued: time.Now().UnixMilli()}
	rec.Sign(key.Key)
	res, _ := n.importRecords([]*crdt.Record{rec})
	n.log.Info("the authority admitted its own site", "result", res[0].Result)
	return nil
}
