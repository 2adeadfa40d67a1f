package transport

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/fxamacker/cbor/v2"
	"github.com/hashicorp/memberlist"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// MemberEventKind says what happened to a member.
type MemberEventKind int

const (
	// MemberJoin: a node joined the mesh (or came back after being dead).
	MemberJoin MemberEventKind = iota + 1
	// MemberLeave: a node left gracefully or was declared dead by SWIM.
	MemberLeave
	// MemberUpdate: a node's addresses changed.
	MemberUpdate
)

func (k MemberEventKind) String() string {
	switch k {
	case MemberJoin:
		return "join"
	case MemberLeave:
		return "leave"
	case MemberUpdate:
		return "update"
	}
	return fmt.Sprintf("MemberEventKind(%d)", int(k))
}

// MemberEvent reports a change of another node's membership.
type MemberEvent struct {
	Kind  MemberEventKind
	Peer  peer.ID
	Addrs []ma.Multiaddr // the member's advertised addresses, without /p2p/
}

// Member is another node that memberlist currently considers alive (or
// suspect: not yet declared dead).
type Member struct {
	ID    peer.ID
	Addrs []ma.Multiaddr // advertised addresses, without /p2p/
}

// Members returns the other nodes of the mesh, sorted by peer ID. The local
// node is not included.
func (h *Host) Members() []Member {
	h.memMu.RLock()
	out := make([]Member, 0, len(h.members))
	for id, addrs := range h.members {
		out = append(out, Member{ID: id, Addrs: slices.Clone(addrs)})
	}
	h.memMu.RUnlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return out
}

func (h *Host) isMember(id peer.ID) bool {
	h.memMu.RLock()
	defer h.memMu.RUnlock()
	_, ok := h.members[id]
	return ok
}

// startMemberlist creates the memberlist instance on top of mlTransport.
func (h *Host) startMemberlist() error {
	c := *h.cfg.Memberlist
	c.Name = h.ID().String()
	c.Transport = h.mlt
	c.Delegate = mlDelegate{h}
	c.Events = mlEvents{h}
	c.Alive = mlAlive{h}
	c.LogOutput = nil
	c.Logger = log.New(mlLogWriter{h.log}, "", 0)
	c.BindAddr = memberIP(h.ID()).String()
	c.BindPort = memberPort
	c.AdvertiseAddr = ""
	c.AdvertisePort = memberPort
	ml, err := memberlist.Create(&c)
	if err != nil {
		return fmt.Errorf("transport: start memberlist: %w", err)
	}
	h.ml = ml
	return nil
}

// join asks memberlist to join the mesh through id (a push/pull exchange of
// the full membership), unless id is already a member.
func (h *Host) join(id peer.ID) {
	if h.isMember(id) || id == h.ID() {
		return
	}
	if _, err := h.ml.Join([]string{id.String() + "/" + memberAddr(id)}); err != nil {
		h.log.Debug("transport: memberlist join failed", "peer", id, "err", err)
		return
	}
	h.log.Debug("transport: joined the mesh", "through", id)
}

// memberChanged runs inside memberlist's callbacks, with memberlist's lock
// held: it must not call memberlist, so the rest of the work is queued.
func (h *Host) memberChanged(kind MemberEventKind, n *memberlist.Node) {
	if n.Name == h.ID().String() {
		return
	}
	id, err := peer.Decode(n.Name)
	if err != nil {
		h.log.Warn("transport: ignoring memberlist node whose name is not a peer ID", "name", n.Name, "err", err)
		return
	}
	addrs, err := decodeMeta(id, n.Meta)
	if err != nil {
		h.log.Warn("transport: member sent unreadable address metadata", "peer", id, "err", err)
	}
	h.mlt.learn(id)
	h.memMu.Lock()
	if kind == MemberLeave {
		delete(h.members, id)
	} else {
		h.members[id] = addrs
	}
	h.memMu.Unlock()
	if kind != MemberLeave && len(addrs) > 0 {
		// Recorded before memberlist sends its first packet to the new
		// member. Addresses it no longer advertises fade out within an hour.
		ps := h.h.Peerstore()
		ps.UpdateAddrs(id, peerstore.PermanentAddrTTL, peerstore.AddressTTL)
		ps.AddAddrs(id, addrs, peerstore.PermanentAddrTTL)
	}
	h.events.push(hostEvent{member: &MemberEvent{Kind: kind, Peer: id, Addrs: addrs}})
}

// hostEvent is a member event or a connection event, queued for runEvents.
type hostEvent struct {
	member *MemberEvent
	conn   *PeerEvent
}

// runEvents handles member and connection events one at a time, in order,
// outside memberlist's and libp2p's locks.
func (h *Host) runEvents() {
	for {
		evs, ok := h.events.wait(h.ctx)
		if !ok {
			return
		}
		for _, ev := range evs {
			switch {
			case ev.member != nil:
				h.handleMemberEvent(*ev.member)
			case ev.conn != nil && h.cfg.OnPeerEvent != nil:
				h.cfg.OnPeerEvent(*ev.conn)
			}
		}
	}
}

func (h *Host) handleMemberEvent(ev MemberEvent) {
	if ev.Kind != MemberLeave {
		if err := h.learnPeer(ev.Peer, ev.Addrs); err != nil {
			h.log.Warn("transport: could not record member in the peer book", "peer", ev.Peer, "err", err)
		}
	}
	h.log.Info("transport: member "+ev.Kind.String(), "peer", ev.Peer, "addrs", ev.Addrs)
	if h.cfg.OnMemberEvent != nil {
		h.cfg.OnMemberEvent(ev)
	}
}

// queue is an unbounded FIFO: memberlist's and libp2p's callbacks must
// never block, and the events it carries are rare.
type queue[T any] struct {
	mu     sync.Mutex
	items  []T
	signal chan struct{}
}

func newQueue[T any]() *queue[T] { return &queue[T]{signal: make(chan struct{}, 1)} }

func (q *queue[T]) push(item T) {
	q.mu.Lock()
	q.items = append(q.items, item)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// wait returns every queued item, waiting for one if there is none; false
// once ctx is done.
func (q *queue[T]) wait(ctx context.Context) ([]T, bool) {
	for {
		q.mu.Lock()
		items := q.items
		q.items = nil
		q.mu.Unlock()
		if len(items) > 0 {
			return items, true
		}
		select {
		case <-ctx.Done():
			return nil, false
		case <-q.signal:
		}
	}
}

// mlDelegate gives memberlist the node's addresses as metadata; the other
// Delegate hooks (user messages, local state) are unused.
type mlDelegate struct{ h *Host }

func (d mlDelegate) NodeMeta(limit int) []byte                  { return encodeMeta(d.h.h.Addrs(), limit) }
func (d mlDelegate) NotifyMsg([]byte)                           {}
func (d mlDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d mlDelegate) LocalState(join bool) []byte                { return nil }
func (d mlDelegate) MergeRemoteState(buf []byte, join bool)     {}

// mlAlive keeps out of the member list any node whose name is not a peer
// ID, or that Config.Gater refuses: a site the authority has not admitted is
// neither listed, nor remembered, nor dialled, however it is gossiped.
type mlAlive struct{ h *Host }

func (a mlAlive) NotifyAlive(n *memberlist.Node) error {
	if n.Name == a.h.ID().String() {
		return nil
	}
	id, err := peer.Decode(n.Name)
	if err != nil {
		return fmt.Errorf("node name %q is not a peer ID: %w", n.Name, err)
	}
	if a.h.cfg.Gater != nil && !a.h.cfg.Gater(id) {
		return fmt.Errorf("peer %s is refused by the gater", id)
	}
	return nil
}

type mlEvents struct{ h *Host }

func (e mlEvents) NotifyJoin(n *memberlist.Node)   { e.h.memberChanged(MemberJoin, n) }
func (e mlEvents) NotifyLeave(n *memberlist.Node)  { e.h.memberChanged(MemberLeave, n) }
func (e mlEvents) NotifyUpdate(n *memberlist.Node) { e.h.memberChanged(MemberUpdate, n) }

// Node metadata is the CBOR array [version, [multiaddr bytes…]], without the
// /p2p/ part: the node name is the peer ID.
const metaVersion = 1

type nodeMeta struct {
	_       struct{} `cbor:",toarray"`
	Version uint
	Addrs   [][]byte
}

var (
	metaEnc = mustEncMode()
	metaDec = mustDecMode()
)

func mustEncMode() cbor.EncMode {
	m, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	return m
}

func mustDecMode() cbor.DecMode {
	m, err := cbor.DecOptions{
		MaxNestedLevels:  4,
		MaxArrayElements: memberlist.MetaMaxSize,
		MaxMapPairs:      16,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return m
}

// encodeMeta encodes as many of addrs as fit in limit bytes, those most
// likely reachable by other sites first: public, then private, then loopback.
func encodeMeta(addrs []ma.Multiaddr, limit int) []byte {
	rank := func(a ma.Multiaddr) int {
		switch {
		case manet.IsIPLoopback(a):
			return 2
		case manet.IsPublicAddr(a):
			return 0
		}
		return 1
	}
	sorted := slices.Clone(addrs)
	slices.SortStableFunc(sorted, func(a, b ma.Multiaddr) int { return rank(a) - rank(b) })
	m := nodeMeta{Version: metaVersion}
	out, _ := metaEnc.Marshal(m)
	for _, a := range sorted {
		m.Addrs = append(m.Addrs, a.Bytes())
		b, err := metaEnc.Marshal(m)
		if err != nil || len(b) > limit {
			break
		}
		out = b
	}
	return out
}

// decodeMeta reads the addresses of member id from its metadata. Addresses
// that do not parse, or that name another peer, are skipped.
func decodeMeta(id peer.ID, b []byte) ([]ma.Multiaddr, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var m nodeMeta
	if err := metaDec.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("transport: decode node metadata: %w", err)
	}
	if m.Version != metaVersion {
		return nil, fmt.Errorf("transport: node metadata version %d is not supported (this node reads version %d); upgrade Meridian", m.Version, metaVersion)
	}
	var out []ma.Multiaddr
	var errs []error
	for _, raw := range m.Addrs {
		a, err := ma.NewMultiaddrBytes(raw)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		tpt, pid := peer.SplitAddr(a)
		if tpt == nil || (pid != "" && pid != id) {
			errs = append(errs, fmt.Errorf("address %s is not a transport address of %s", a, id))
			continue
		}
		out = append(out, tpt)
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("transport: node metadata has %d unusable addresses: %w", len(errs), errors.Join(errs...))
	}
	return out, nil
}

// mlLogWriter forwards memberlist's log lines ("[LEVEL] memberlist: …") to
// slog. memberlist logs ordinary network failures (a peer that went away)
// as [ERR]; they are logged as warnings here.
type mlLogWriter struct{ log *slog.Logger }

func (w mlLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	for _, l := range []struct {
		prefix string
		level  slog.Level
	}{{"[DEBUG]", slog.LevelDebug}, {"[INFO]", slog.LevelInfo}, {"[WARN]", slog.LevelWarn}, {"[ERR]", slog.LevelWarn}} {
		if rest, ok := strings.CutPrefix(msg, l.prefix); ok {
			msg, level = strings.TrimSpace(rest), l.level
			break
		}
	}
	w.log.Log(context.Background(), level, msg, "component", "memberlist")
	return len(p), nil
}
