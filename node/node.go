package node

import (
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"meridian/crdt"
	"meridian/replica"
	"meridian/transport"
)

// Node is one running site: the replica driven by its loop, the Badger
// store, the libp2p host and the admin API. It is the only part of
// Meridian with goroutines, timers, sockets and disk handles.
type Node struct {
	cfg   Config
	log   *slog.Logger
	host  *transport.Host
	store *replica.BadgerStore
	r     *replica.Replica // owned by the loop goroutine
	site  crdt.SiteID
	met   *metrics

	inbox   chan inbound
	peerEv  chan transport.PeerEvent
	calls   chan func()
	persist chan *replica.Ready
	done    chan persistResult
	quit    chan struct{}
	stopped chan struct{}

	waiters    map[replica.Edit][]chan error // loop only
	persisting bool                          // loop only: a Ready is being persisted
	flushed    []chan struct{}               // loop only: waiting for everything to be durable
	cut        []chan struct{}               // loop only: waiting for the backlog to go into a Ready

	auth       *authority                 // nil without an authority in the config
	bridgeP    atomic.Pointer[siteBridge] // nil without a site database (or until it answers)
	key        ed25519.PrivateKey
	handshaken map[crdt.SiteID]bool // loop only: peers whose handshake completed
	refused    map[crdt.SiteID]bool // loop only: peers cut off as not admitted
	lastHeard  map[crdt.SiteID]int64
	failures   map[string]int64

	acks       *bundleAcks
	verifyMu   sync.Mutex
	lastVerify map[string]VerifyResult // doctype → the latest comparison
	paused     atomic.Bool
	api        *http.Server
	apiLn      net.Listener
	fatal      chan error
	closeMu    sync.Once
}

type inbound struct {
	from crdt.SiteID
	msg  *replica.Message
	size int
}

type persistResult struct {
	rd  *replica.Ready
	err error
}

// Start opens the data directory, the store and the network and starts
// the loop and the admin API.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	key, err := transport.LoadOrCreateIdentity(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	raw, err := transport.Ed25519PrivateKey(key)
	if err != nil {
		return nil, err
	}
	id, err := transport.SiteID(key)
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg: cfg, log: log.With("site", shortID(id)), site: crdt.SiteID(id),
		inbox: make(chan inbound, 8192), peerEv: make(chan transport.PeerEvent, 1024),
		calls: make(chan func(), 256), persist: make(chan *replica.Ready, 1), done: make(chan persistResult, 1),
		quit: make(chan struct{}), stopped: make(chan struct{}), waiters: map[replica.Edit][]chan error{},
		fatal: make(chan error, 1), key: raw, acks: newBundleAcks(cfg.DataDir),
		handshaken: map[crdt.SiteID]bool{}, refused: map[crdt.SiteID]bool{}, lastHeard: map[crdt.SiteID]int64{}, failures: map[string]int64{},
	}
	if n.auth, err = newAuthority(cfg, n.site); err != nil {
		return nil, err
	}
	n.met = newMetrics(n)
	n.store, err = replica.OpenBadger(filepath.Join(cfg.DataDir, StoreDir), replica.BadgerOptions{Logger: n.log})
	if err != nil {
		return nil, err
	}
	var seed [16]byte
	if _, err := crand.Read(seed[:]); err != nil {
		return nil, err
	}
	rcfg := replica.Config{
		Site:           n.site,
		Signer:         crdt.Ed25519Signer{ID: n.site, Key: raw},
		Verifier:       crdt.PeerIDVerifier{},
		Rand:           rand.New(rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:]))),
		MaxClockSkewMs: time.Duration(cfg.MaxClockSkew).Milliseconds(),
		SyncIntervalMs: time.Duration(cfg.SyncInterval).Milliseconds(),
		History:        historyPerDocument,
		Parallel:       parallel,
	}
	if a := n.auth; a != nil {
		rcfg.CanRead, rcfg.Accept, rcfg.VersionOf, rcfg.Filter = a.canRead, a.accept, a.versionOf, a.filter
		if cfg.UnsafeForgeWrites {
			n.log.Warn("--unsafe-forge-writes: this node writes without grants, like a compromised site; every other site must refuse its writes")
			rcfg.Accept = func(origin crdt.SiteID, dt string, v uint64) error {
				if origin == n.site {
					return nil
				}
				return a.accept(origin, dt, v)
			}
		}
	}
	n.r, err = replica.New(rcfg, n.store)
	if err != nil {
		n.store.Close()
		return nil, err
	}
	n.r.Tick(time.Now().UnixMilli())
	if n.auth != nil {
		if err := n.startAuthority(); err != nil {
			n.store.Close()
			return nil, err
		}
	}
	n.host, err = transport.New(ctx, transport.Config{
		DataDir: cfg.DataDir, Identity: key, ListenAddrs: cfg.Listen, Logger: n.log,
		Gater: func(peer.ID) bool { return !n.paused.Load() },
		Serves: func(p peer.ID, proto protocol.ID) bool {
			return n.auth == nil || proto == HandshakeProtocol || n.auth.admitted(crdt.SiteID(p.String()))
		},
		Handler:     n.onFrame,
		OnPeerEvent: func(ev transport.PeerEvent) { n.peerEv <- ev },
	})
	if err != nil {
		n.store.Close()
		return nil, err
	}
	if err := n.host.HandleRequests(VerifyProtocol, n.serveVerify); err != nil {
		n.host.Close()
		n.store.Close()
		return nil, err
	}
	if n.auth != nil {
		if err := n.host.HandleRequests(HandshakeProtocol, n.serveHandshake); err != nil {
			n.host.Close()
			n.store.Close()
			return nil, err
		}
	}
	for _, p := range cfg.Peers {
		if _, err := n.host.AddPeer(p); err != nil {
			n.log.Warn("ignoring configured peer", "addr", p, "err", err)
		}
	}
	if err := n.startAPI(); err != nil {
		n.host.Close()
		n.store.Close()
		return nil, err
	}
	if err := n.writeAddrs(); err != nil {
		n.log.Warn("could not write the address files", "err", err)
	}
	retryBridge := false
	if cfg.Bridge.Enabled() {
		bctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		b, err := openBridge(bctx, n, cfg.Bridge)
		cancel()
		switch {
		case err == nil:
			n.bridgeP.Store(b)
		case permanentBridgeError(err):
			n.api.Close()
			n.host.Close()
			n.store.Close()
			return nil, err
		default: // the site's database is not answering: replicate anyway, connect when it does
			n.log.Warn("bridge: the site's database is not reachable; the node runs and retries every 5 s", "err", err)
			retryBridge = true
		}
	}
	go n.persister()
	go n.loop()
	go n.compactor()
	go n.verifier()
	if b := n.br(); b != nil {
		go b.run()
	}
	if retryBridge {
		go n.bridgeRetry(cfg.Bridge)
	}
	n.log.Info("node started", "peer_id", id, "api", n.apiLn.Addr().String(), "addrs", strings.Join(n.addrStrings(), " "))
	return n, nil
}

// Site returns the node's site ID (its peer ID).
func (n *Node) Site() crdt.SiteID { return n.site }

// APIAddr returns the admin API's address.
func (n *Node) APIAddr() string { return n.apiLn.Addr().String() }

// Wait blocks until the node stops on its own (a fatal error) or ctx ends,
// then shuts it down gracefully.
func (n *Node) Wait(ctx context.Context) error {
	var err error
	select {
	case <-ctx.Done():
	case err = <-n.fatal:
		n.log.Error("stopping after a fatal error", "err", err)
	}
	if cerr := n.Close(); err == nil {
		err = cerr
	}
	return err
}

// Close stops the node: the API, then the loop (the Ready being persisted
// completes first), then the network and the store.
func (n *Node) Close() error {
	var err error
	n.closeMu.Do(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.api.Shutdown(sctx)
		close(n.quit)
		<-n.stopped
		close(n.persist)
		if b := n.br(); b != nil {
			b.close()
		}
		err = errors.Join(n.host.Close(), n.store.Close())
		os.Remove(filepath.Join(n.cfg.DataDir, APIAddrFile))
		n.log.Info("node stopped")
	})
	return err
}

func (n *Node) addrStrings() []string {
	var out []string
	for _, a := range n.host.Addrs() {
		out = append(out, a.String())
	}
	return out
}

func (n *Node) writeAddrs() error {
	if err := writeFileAtomic(filepath.Join(n.cfg.DataDir, AddrsFile), []byte(strings.Join(n.addrStrings(), "\n")+"\n")); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(n.cfg.DataDir, APIAddrFile), []byte(n.apiLn.Addr().String()+"\n"))
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[len(id)-8:]
	}
	return id
}

// onFrame runs on the transport's goroutines: decoding happens here, in
// parallel; a peer that sends something undecodable is disconnected.
func (n *Node) onFrame(from peer.ID, payload []byte) {
	m, err := replica.DecodeMessage(payload)
	if err != nil {
		n.met.badMessages.Inc()
		n.log.Warn("disconnecting a peer that sent a bad message", "peer", from.String(), "reason", err.Error())
		n.host.Disconnect(from, "bad message: "+err.Error())
		return
	}
	select {
	case n.inbox <- inbound{from: crdt.SiteID(from.String()), msg: m, size: len(payload)}:
	default:
		n.met.inboxDrops.Inc() // the loop is behind: anti-entropy repairs it
	}
}

// loop is the driving loop of the replica: every event is handled here,
// then one Ready at a time is persisted (while new events keep coming) and
// its messages sent before the replica advances.
func (n *Node) loop() {
	defer close(n.stopped)
	tick := time.NewTicker(time.Duration(n.cfg.Tick))
	defer tick.Stop()
	n.persisting = false
	lastSize := time.Time{}
	lastReport := time.Now().Add(-time.Duration(n.cfg.ReportInterval) + 2*time.Second) // first report soon after start
	for {
		// While many documents wait for the next Ready, take no more
		// messages: one Ready must fit in one Badger transaction.
		inbox := n.inbox
		if n.r.Backlog() > maxBacklog {
			inbox = nil
		}
		select {
		case <-n.quit:
			if n.persisting {
				res := <-n.done
				n.advance(res)
			}
			return
		case in := <-inbox:
			n.step(in)
		case ev := <-n.peerEv:
			n.peerEvent(ev)
		case f := <-n.calls:
			n.r.Tick(time.Now().UnixMilli())
			f()
		case res := <-n.done:
			n.advance(res)
			n.persisting = false
		case <-tick.C:
			n.r.Tick(time.Now().UnixMilli())
			n.met.waiting.Set(float64(n.r.Waiting()))
			if n.auth != nil && time.Since(lastReport) >= time.Duration(n.cfg.ReportInterval) {
				lastReport = time.Now()
				n.report()
			}
			if time.Since(lastSize) > 10*time.Second {
				lastSize = time.Now()
				n.met.storeBytes.Set(float64(n.store.Size()))
			}
		}
	drain: // take what else is queued, so one Ready covers it all
		for i := 0; i < 1024 && n.r.Backlog() <= maxBacklog; i++ {
			select {
			case in := <-n.inbox:
				n.step(in)
			case f := <-n.calls:
				f()
			case ev := <-n.peerEv:
				n.peerEvent(ev)
			default:
				break drain
			}
		}
		if !n.persisting && n.r.HasReady() {
			rd, err := n.r.Ready()
			if err != nil {
				n.fail(fmt.Errorf("node: replica: %w", err))
				return
			}
			n.persisting = true
			n.persist <- &rd
		}
		n.releaseFlushed()
		if len(n.cut) > 0 && n.r.Backlog() == 0 {
			for _, ch := range n.cut {
				close(ch)
			}
			n.cut = nil
		}
	}
}

// drained returns once the changes made so far are in a Ready (being
// persisted, maybe not yet durable): a bulk writer paces itself on it and
// keeps persisting and its own work overlapping.
func (n *Node) drained(ctx context.Context) error {
	ch := make(chan struct{})
	if err := n.do(ctx, func(*replica.Replica) error {
		n.cut = append(n.cut, ch)
		return nil
	}); err != nil {
		return err
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (n *Node) fail(err error) {
	select {
	case n.fatal <- err:
	default:
	}
}

func (n *Node) step(in inbound) {
	n.r.Tick(time.Now().UnixMilli())
	m := in.msg
	m.From = in.from
	n.lastHeard[in.from] = time.Now().UnixMilli()
	n.met.countIn(m, in.size)
	if m.Type == replica.MsgPush {
		now := time.Now().UnixMilli()
		for _, b := range m.Batches {
			n.met.lag.WithLabelValues(shortID(string(b.Origin))).Observe(float64(now-b.HLC.Physical()) / 1000)
		}
	}
	if err := n.r.Step(*m); err != nil {
		n.log.Debug("message not applied", "peer", shortID(string(in.from)), "type", m.Type.String(), "err", err)
	}
}

func (n *Node) peerEvent(ev transport.PeerEvent) {
	id := crdt.SiteID(ev.Peer.String())
	if ev.Connected {
		n.log.Info("peer connected", "peer", ev.Peer.String())
		if n.auth != nil {
			go n.greet(ev.Peer) // the handshake decides whether to sync
		} else {
			n.r.AddPeer(id)
		}
	} else {
		delete(n.handshaken, id)
		n.r.RemovePeer(id)
		n.log.Info("peer disconnected", "peer", ev.Peer.String())
	}
	n.met.peers.Set(float64(len(n.r.Peers())))
}

// persister writes each Ready to the store, then sends its messages.
func (n *Node) persister() {
	for rd := range n.persist {
		err := n.store.Apply(rd.Writes)
		if err == nil {
			n.send(rd.Messages)
		}
		n.done <- persistResult{rd, err}
	}
}

func (n *Node) send(msgs []replica.Message) {
	encoded := map[*crdt.Batch][]byte{} // a push goes to every peer with the same bytes
	for i := range msgs {
		m := &msgs[i]
		var raw []byte
		if m.Type == replica.MsgPush && len(m.Batches) == 1 {
			raw = encoded[m.Batches[0]]
		}
		if raw == nil {
			var err error
			if raw, err = replica.EncodeMessage(m); err != nil {
				n.log.Error("encoding a message", "err", err)
				continue
			}
			if m.Type == replica.MsgPush && len(m.Batches) == 1 {
				encoded[m.Batches[0]] = raw
			}
		}
		to, err := peer.Decode(string(m.To))
		if err != nil {
			continue
		}
		if len(raw) > transport.DefaultMaxFrameSize {
			n.log.Error("not sending a message larger than a frame may be", "type", m.Type.String(), "bytes", len(raw), "peer", shortID(string(m.To)))
			n.met.sendDrops.Inc()
			continue
		}
		if n.host.Send(to, raw) {
			n.met.countOut(m, len(raw))
		} else {
			n.met.sendDrops.Inc()
		}
	}
}

// advance completes a persisted Ready: acknowledgements, events, Advance.
func (n *Node) advance(res persistResult) {
	if res.err != nil {
		n.fail(fmt.Errorf("node: persisting to the store failed: %w", res.err))
		for _, e := range res.rd.Acked {
			n.release(e, res.err)
		}
		return
	}
	for _, e := range res.rd.Acked {
		n.release(e, nil)
	}
	for _, ev := range res.rd.Events {
		n.met.events.WithLabelValues(ev.Kind.String()).Inc()
		switch ev.Kind {
		case replica.EventRejected, replica.EventHeld, replica.EventFlagged, replica.EventDivergence:
			n.failures[ev.Kind.String()]++
		}
		attrs := []any{"kind", ev.Kind.String(), "doctype", ev.Doctype, "peer", shortID(string(ev.Peer)), "origin", shortID(string(ev.Origin))}
		if ev.Err != nil {
			attrs = append(attrs, "reason", ev.Err.Error())
		}
		switch ev.Kind {
		case replica.EventRejected, replica.EventDivergence, replica.EventHeld, replica.EventFlagged:
			n.log.Warn("replication event", attrs...)
		default:
			n.log.Debug("replication event", attrs...)
		}
	}
	n.met.changes.Add(float64(len(res.rd.Changes)))
	n.r.Advance(*res.rd)
	if b := n.br(); b != nil && len(res.rd.Changes) > 0 {
		b.noteChanges(res.rd.Changes)
	}
	if n.auth != nil {
		changed := false
		for _, c := range res.rd.Changes {
			if c.Doctype == crdt.RecordsDoctype && n.readRecordDoc(c.Name, true) {
				changed = true
			}
		}
		if changed {
			n.authChanged()
		}
	}
}

func (n *Node) release(e replica.Edit, err error) {
	for _, ch := range n.waiters[e] {
		ch <- err
	}
	delete(n.waiters, e)
}

// do runs f on the loop goroutine (the only one that touches the replica).
func (n *Node) do(ctx context.Context, f func(r *replica.Replica) error) error {
	errc := make(chan error, 1)
	select {
	case n.calls <- func() { errc <- f(n.r) }:
	case <-ctx.Done():
		return ctx.Err()
	case <-n.stopped:
		return errors.New("node: stopping")
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// propose runs f on the loop; the edits it returns are awaited until
// durable (persisted in the store) before propose returns.
func (n *Node) propose(ctx context.Context, f func(r *replica.Replica) ([]replica.Edit, error)) error {
	wait := make(chan error, 8)
	count := 0
	err := n.do(ctx, func(r *replica.Replica) error {
		edits, err := f(r)
		for _, e := range edits {
			n.waiters[e] = append(n.waiters[e], wait)
			count++
		}
		return err
	})
	if err != nil {
		return err
	}
	for i := 0; i < count; i++ {
		select {
		case err := <-wait:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// compactor reclaims store space now and then.
func (n *Node) compactor() {
	t := time.NewTicker(time.Duration(n.cfg.CompactInterval))
	defer t.Stop()
	for {
		select {
		case <-n.stopped:
			return
		case <-t.C:
			if err := n.store.Compact(); err != nil {
				n.log.Warn("store compaction", "err", err)
			}
			n.met.storeBytes.Set(float64(n.store.Size()))
		}
	}
}

// Pause cuts the node off the network (every connection closed, none
// accepted or dialled) until Resume; writes go on locally.
func (n *Node) Pause() {
	n.paused.Store(true)
	for _, p := range n.host.ConnectedPeers() {
		_ = n.host.LibP2P().Network().ClosePeer(p)
	}
	n.log.Info("network paused")
}

// Resume reconnects to the peer book after Pause.
func (n *Node) Resume(ctx context.Context) {
	n.paused.Store(false)
	for _, p := range n.host.Peers() {
		for _, a := range p.Addrs {
			full := a.String()
			if !strings.Contains(full, "/p2p/") {
				full += "/p2p/" + p.ID.String()
			}
			if err := n.host.Connect(ctx, full); err == nil {
				break
			}
		}
	}
	n.log.Info("network resumed")
}

// historyPerDocument is how many past writes of each document the node
// keeps for `meridian doc history`.
const historyPerDocument = 256

// maxBacklog bounds the documents one Ready may change (plus one message's
// worth): about what a Badger transaction holds with the default options.
const maxBacklog = 1500

// releaseFlushed wakes the callers of durable once nothing is pending.
func (n *Node) releaseFlushed() {
	if len(n.flushed) == 0 || n.persisting || n.r.HasReady() {
		return
	}
	for _, ch := range n.flushed {
		close(ch)
	}
	n.flushed = nil
}

// durable returns once everything the replica holds now is persisted.
func (n *Node) durable(ctx context.Context) error {
	ch := make(chan struct{})
	if err := n.do(ctx, func(*replica.Replica) error {
		n.flushed = append(n.flushed, ch)
		return nil
	}); err != nil {
		return err
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// br returns the bridge, nil until the site's database has answered.
func (n *Node) br() *siteBridge { return n.bridgeP.Load() }

// bridgeRetry connects the bridge once the site's database answers; the
// bridge then catches up from the vector the database holds.
func (n *Node) bridgeRetry(cfg *BridgeConfig) {
	for {
		select {
		case <-n.quit:
			return
		case <-time.After(5 * time.Second):
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		b, err := openBridge(ctx, n, cfg)
		cancel()
		if err != nil {
			n.log.Debug("bridge: the site's database is still not reachable", "err", err)
			continue
		}
		select {
		case <-n.quit:
			b.close()
			return
		default:
		}
		n.bridgeP.Store(b)
		go b.run()
		n.log.Info("bridge: the site's database answers; catching up")
		return
	}
}
