package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// leaveTimeout bounds how long Close waits for the mesh to hear that this
// node leaves.
const leaveTimeout = 2 * time.Second

// Host is a node's network endpoint: a libp2p host, framed messaging,
// memberlist membership and the peer book. It is safe for concurrent use.
type Host struct {
	cfg   Config
	log   *slog.Logger
	h     host.Host
	cm    *connmgr.BasicConnMgr
	gater *gater
	book  *peerBook
	ml    *memberlist.Memberlist
	mlt   *mlTransport

	handler atomic.Pointer[Handler]
	stats   *statsTable

	sendMu  sync.Mutex
	senders map[peer.ID]*sender

	memMu   sync.RWMutex
	members map[peer.ID][]ma.Multiaddr
	events  *queue[hostEvent]

	connMu sync.Mutex
	conns  map[peer.ID]struct{} // peers reported connected to OnPeerEvent

	dial *dialState

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	spawnMu   sync.Mutex
	stopping  bool
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// New starts a host: it loads or creates the identity, starts libp2p (TCP and
// QUIC, Noise, yamux, connection and resource managers, the gater), serves
// cfg.Protocol and memberlist's protocols, starts memberlist, and starts
// dialling the peer book and joining the mesh through it in the background.
// ctx bounds New itself; the host runs until Close.
func New(ctx context.Context, cfg Config) (*Host, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key := cfg.Identity
	if key == nil {
		var err error
		if key, err = LoadOrCreateIdentity(cfg.DataDir); err != nil {
			return nil, err
		}
	}
	if _, err := Ed25519PrivateKey(key); err != nil {
		return nil, err
	}
	book, err := loadPeerBook(filepath.Join(cfg.DataDir, PeerBookFileName))
	if err != nil {
		return nil, err
	}

	lh, cm, g, err := newLibp2pHost(cfg, key)
	if err != nil {
		return nil, err
	}
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h := &Host{
		cfg:     cfg,
		log:     cfg.Logger.With("self", lh.ID()),
		h:       lh,
		cm:      cm,
		gater:   g,
		book:    book,
		stats:   newStatsTable(),
		senders: make(map[peer.ID]*sender),
		members: make(map[peer.ID][]ma.Multiaddr),
		events:  newQueue[hostEvent](),
		conns:   make(map[peer.ID]struct{}),
		dial:    newDialState(),
		ctx:     hctx,
		cancel:  cancel,
	}
	lh.Network().Notify(&network.NotifyBundle{
		ConnectedF:    h.onConnected,
		DisconnectedF: h.onDisconnected,
	})
	if cfg.Handler != nil {
		h.SetHandler(cfg.Handler)
	}
	h.serveVersioned(cfg.Protocol, h.handleMessageStream)
	h.mlt = newMLTransport(h)
	h.serveVersioned(MemberlistPacketProtocol, h.mlt.handlePacketStream)
	h.serveVersioned(MemberlistStreamProtocol, h.mlt.handleStream)
	if err := h.startMemberlist(); err != nil {
		cancel()
		_ = lh.Close()
		return nil, err
	}
	for _, e := range book.list() {
		cm.Protect(e.id, protectTag)
	}
	addrSub, err := lh.EventBus().Subscribe(new(event.EvtLocalAddressesUpdated))
	if err != nil {
		_ = h.Close()
		return nil, fmt.Errorf("transport: subscribe to address changes: %w", err)
	}
	h.spawn(h.runEvents)
	h.spawn(h.maintain)
	h.spawn(func() { h.watchAddrs(addrSub) })
	h.log.Info("transport: host started", "addrs", h.Addrs(), "peer_book", len(book.list()))
	return h, nil
}

func newLibp2pHost(cfg Config, key crypto.PrivKey) (host.Host, *connmgr.BasicConnMgr, *gater, error) {
	rm, err := newResourceManager(cfg)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("transport: resource manager: %w", err)
	}
	cm, err := newConnManager(cfg)
	if err != nil {
		_ = rm.Close()
		return nil, nil, nil, fmt.Errorf("transport: connection manager: %w", err)
	}
	g := newGater(cfg.Gater)
	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.ListenAddrStrings(cfg.ListenAddrs...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ConnectionManager(cm),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionGater(g),
		// Relays and hole punching are a later goal (DESIGN §6); they slot in
		// here as options without changing the API.
		libp2p.DisableRelay(),
		libp2p.UserAgent("meridian"),
	}
	if cfg.PrometheusRegisterer != nil {
		opts = append(opts, libp2p.PrometheusRegisterer(cfg.PrometheusRegisterer))
	} else {
		opts = append(opts, libp2p.DisableMetrics())
	}
	lh, err := libp2p.New(opts...)
	if err != nil {
		_ = cm.Close()
		_ = rm.Close()
		return nil, nil, nil, fmt.Errorf("transport: start libp2p (listen addresses %v): %w", cfg.ListenAddrs, err)
	}
	return lh, cm, g, nil
}

// spawn runs fn in a goroutine that Close waits for. It reports false, and
// does not run fn, once Close has begun.
func (h *Host) spawn(fn func()) bool {
	h.spawnMu.Lock()
	defer h.spawnMu.Unlock()
	if h.stopping {
		return false
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		fn()
	}()
	return true
}

func (h *Host) closing() bool {
	h.spawnMu.Lock()
	defer h.spawnMu.Unlock()
	return h.stopping
}

// ID is the node's peer ID, which is also its site ID.
func (h *Host) ID() peer.ID { return h.h.ID() }

// LibP2P exposes the underlying libp2p host, for protocols this package
// does not wrap. Closing it is Close's job.
func (h *Host) LibP2P() host.Host { return h.h }

// Addrs returns the node's dialable addresses as full multiaddrs ending in
// /p2p/<id>: listen addresses on 0.0.0.0 are resolved to each interface
// (loopback included), and addresses observed by peers are added.
func (h *Host) Addrs() []ma.Multiaddr {
	out, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: h.ID(), Addrs: h.h.Addrs()})
	if err != nil {
		return nil
	}
	return out
}

// ParsePeerAddr parses a peer multiaddr of the form
// /ip4/1.2.3.4/tcp/4001/p2p/12D3KooW…. Its errors wrap ErrInvalidMultiaddr
// or ErrMissingPeerID and say what is wrong.
func ParsePeerAddr(s string) (peer.AddrInfo, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return peer.AddrInfo{}, fmt.Errorf("%w: the address is empty; expected a form like %s", ErrInvalidMultiaddr, multiaddrExample)
	}
	m, err := ma.NewMultiaddr(s)
	if err != nil {
		// err quotes s and names the faulty part ("must begin with /",
		// `invalid value "999.0.0.1" for protocol ip4`).
		return peer.AddrInfo{}, fmt.Errorf("%w: %v; expected a form like %s", ErrInvalidMultiaddr, err, multiaddrExample)
	}
	tpt, id := peer.SplitAddr(m)
	if id == "" {
		return peer.AddrInfo{}, fmt.Errorf("%w: %q: without the peer's ID the connection cannot be authenticated; append /p2p/<peer-id>, as in %s",
			ErrMissingPeerID, s, multiaddrExample)
	}
	if tpt == nil {
		return peer.AddrInfo{}, fmt.Errorf("%w: %q names only a peer ID; put a network address before it, as in %s", ErrInvalidMultiaddr, s, multiaddrExample)
	}
	return peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{tpt}}, nil
}

// Connect dials the peer at maddr (/ip4/…/tcp/…/p2p/<id>) and, once
// connected, joins the mesh through it in the background. It does not add
// the peer to the peer book; AddPeer does.
func (h *Host) Connect(ctx context.Context, maddr string) error {
	info, err := ParsePeerAddr(maddr)
	if err != nil {
		return err
	}
	return h.connect(ctx, info)
}

func (h *Host) connect(ctx context.Context, info peer.AddrInfo) error {
	if h.closing() {
		return ErrClosed
	}
	if info.ID == h.ID() {
		return fmt.Errorf("%w: %s is this node's own peer ID", ErrInvalidMultiaddr, info.ID)
	}
	if h.gater.backingOff(info.ID) {
		return fmt.Errorf("transport: connect to %s: the peer was disconnected recently and is in back-off for up to %s", info.ID, h.cfg.DisconnectBackoff)
	}
	if h.cfg.Gater != nil && !h.cfg.Gater(info.ID) {
		return fmt.Errorf("transport: connect to %s: refused by the gater (the peer is not admitted)", info.ID)
	}
	if err := h.dialDirect(ctx, info); err != nil {
		return fmt.Errorf("transport: connect to %s at %v: %w", info.ID, info.Addrs, err)
	}
	h.spawn(func() { h.join(info.ID) })
	return nil
}

// Disconnect closes every connection to p and refuses to dial or accept it
// for Config.DisconnectBackoff. The reason is logged with the peer.
func (h *Host) Disconnect(p peer.ID, reason string) {
	h.log.Info("transport: disconnecting peer", "peer", p, "reason", reason, "backoff", h.cfg.DisconnectBackoff)
	h.gater.block(p, h.cfg.DisconnectBackoff)
	h.stopSender(p)
	_ = h.h.Network().ClosePeer(p)
}

// DisconnectFor is Disconnect with a back-off of d instead of
// Config.DisconnectBackoff (the node cuts off a site the authority has not
// admitted only briefly, so it can come back once approved).
func (h *Host) DisconnectFor(p peer.ID, reason string, d time.Duration) {
	h.log.Info("transport: disconnecting peer", "peer", p, "reason", reason, "backoff", d)
	h.gater.block(p, d)
	h.stopSender(p)
	_ = h.h.Network().ClosePeer(p)
}

// Reconnect lifts p's back-off and dials it at the addresses libp2p knows
// for it (the peer book's, or those of a recent connection).
func (h *Host) Reconnect(ctx context.Context, p peer.ID) error {
	h.gater.unblock(p)
	info := h.h.Peerstore().PeerInfo(p)
	for _, e := range h.book.list() {
		if e.id == p {
			info.Addrs = append(info.Addrs, e.addrs()...)
		}
	}
	if len(info.Addrs) == 0 {
		return fmt.Errorf("transport: no known address of %s", p)
	}
	return h.dialDirect(ctx, info)
}

func (h *Host) connected(p peer.ID) bool {
	return h.h.Network().Connectedness(p) == network.Connected
}

// PeerEvent reports that the first connection to a peer opened
// (Connected) or that the last one closed.
type PeerEvent struct {
	Peer      peer.ID
	Connected bool
}

// ConnectedPeers lists the peers with an open connection.
func (h *Host) ConnectedPeers() []peer.ID {
	var out []peer.ID
	for _, p := range h.h.Network().Peers() {
		if h.connected(p) {
			out = append(out, p)
		}
	}
	return out
}

func (h *Host) onConnected(_ network.Network, c network.Conn) {
	p := c.RemotePeer()
	h.book.touch(p)
	h.dial.reset(p)
	h.connMu.Lock()
	_, known := h.conns[p]
	h.conns[p] = struct{}{}
	h.connMu.Unlock()
	if !known {
		h.events.push(hostEvent{conn: &PeerEvent{Peer: p, Connected: true}})
	}
}

func (h *Host) onDisconnected(n network.Network, c network.Conn) {
	p := c.RemotePeer()
	if n.Connectedness(p) == network.Connected {
		return // another connection to p remains
	}
	h.stopSender(p)
	h.book.touch(p)
	h.connMu.Lock()
	_, known := h.conns[p]
	delete(h.conns, p)
	h.connMu.Unlock()
	if known {
		h.events.push(hostEvent{conn: &PeerEvent{Peer: p}})
	}
}

// watchAddrs re-advertises the node's addresses to the mesh when they change.
func (h *Host) watchAddrs(sub event.Subscription) {
	defer sub.Close()
	for {
		select {
		case <-h.ctx.Done():
			return
		case _, ok := <-sub.Out():
			if !ok {
				return
			}
			if err := h.ml.UpdateNode(h.cfg.Memberlist.TCPTimeout); err != nil {
				h.log.Debug("transport: re-advertising addresses", "err", err)
			}
		}
	}
}

// serveVersioned serves proto, and closes streams for any other version of
// the same protocol (same ID up to the last '/') with a logged reason.
func (h *Host) serveVersioned(proto protocol.ID, handler network.StreamHandler) {
	h.h.SetStreamHandler(proto, func(s network.Stream) {
		if f := h.cfg.Serves; f != nil && !f(s.Conn().RemotePeer(), proto) {
			h.log.Debug("transport: refusing a stream the peer may not use", "peer", s.Conn().RemotePeer(), "protocol", proto)
			_ = s.Reset()
			return
		}
		handler(s)
	})
	family := protocolFamily(proto)
	h.h.SetStreamHandlerMatch(protocol.ID(family+"*"),
		func(p protocol.ID) bool { return strings.HasPrefix(string(p), family) && p != proto },
		func(s network.Stream) {
			p := s.Conn().RemotePeer()
			h.stats.peer(p).protocolErrors.Add(1)
			h.log.Warn("transport: closing stream for an unsupported protocol version",
				"peer", p, "protocol", s.Protocol(),
				"reason", fmt.Sprintf("this node speaks %s, not %s", proto, s.Protocol()))
			_ = s.Reset()
		})
}

// Close leaves the mesh (telling the other members), stops every goroutine
// of the host, saves the peer book and closes the libp2p host. It is safe to
// call more than once.
func (h *Host) Close() error {
	h.closeOnce.Do(func() {
		var errs []error
		if h.ml != nil {
			if err := h.ml.Leave(leaveTimeout); err != nil {
				h.log.Debug("transport: leaving the mesh", "err", err)
			}
			if err := h.ml.Shutdown(); err != nil {
				errs = append(errs, fmt.Errorf("transport: stop memberlist: %w", err))
			}
		}
		h.spawnMu.Lock()
		h.stopping = true
		h.spawnMu.Unlock()
		h.cancel()
		h.sendMu.Lock()
		for p, s := range h.senders {
			s.stopOnce.Do(func() { close(s.stop) })
			delete(h.senders, p)
		}
		h.sendMu.Unlock()
		// Closing libp2p first unblocks goroutines waiting on streams.
		if err := h.h.Close(); err != nil {
			errs = append(errs, fmt.Errorf("transport: close libp2p host: %w", err))
		}
		h.wg.Wait()
		if err := h.book.flush(); err != nil {
			errs = append(errs, err)
		}
		h.closeErr = errors.Join(errs...)
	})
	return h.closeErr
}
