package transport

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

const (
	// maintainInterval is how often the host looks for peer-book peers to
	// dial or join; each peer's own back-off decides whether it is due.
	maintainInterval = 250 * time.Millisecond
	// dialTimeout bounds one dial of a peer-book peer.
	dialTimeout = 10 * time.Second
)

// dialState holds the redial and rejoin back-off of peer-book peers.
type dialState struct {
	mu    sync.Mutex
	peers map[peer.ID]*redial
}

type redial struct {
	attempts, joins int
	next, joinNext  time.Time
	inFlight        bool
}

func newDialState() *dialState { return &dialState{peers: make(map[peer.ID]*redial)} }

func (d *dialState) get(p peer.ID) *redial {
	r, ok := d.peers[p]
	if !ok {
		r = new(redial)
		d.peers[p] = r
	}
	return r
}

// reset makes p due for a dial and a join now (a new peer, a new member, a
// fresh connection).
func (d *dialState) reset(p peer.ID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.get(p)
	r.attempts, r.joins = 0, 0
	r.next, r.joinNext = time.Time{}, time.Time{}
}

func (d *dialState) forget(p peer.ID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.peers, p)
}

// claimDial reports whether p is due for a dial and, if so, marks it in
// flight.
func (d *dialState) claimDial(p peer.ID, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.get(p)
	if r.inFlight || now.Before(r.next) {
		return false
	}
	r.inFlight = true
	return true
}

func (d *dialState) dialDone(p peer.ID, ok bool, now time.Time, lo, hi time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.get(p)
	r.inFlight = false
	if ok {
		r.attempts = 0
		r.next = time.Time{}
		return
	}
	r.next = now.Add(backoff(r.attempts, lo, hi))
	r.attempts++
}

// claimJoin reports whether a memberlist join through p is due, and if so
// schedules the next one.
func (d *dialState) claimJoin(p peer.ID, now time.Time, lo, hi time.Duration) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.get(p)
	if now.Before(r.joinNext) {
		return false
	}
	r.joinNext = now.Add(backoff(r.joins, lo, hi))
	r.joins++
	return true
}

// backoff is lo·2^attempts, capped at hi.
func backoff(attempts int, lo, hi time.Duration) time.Duration {
	d := lo
	for range attempts {
		if d >= hi/2 {
			return hi
		}
		d *= 2
	}
	return min(d, hi)
}

// maintain keeps the peer book connected: it dials unreachable peers with
// back-off, joins the mesh through connected peers that are not members yet,
// and saves the book when it changed.
func (h *Host) maintain() {
	t := time.NewTicker(maintainInterval)
	defer t.Stop()
	for {
		h.maintainOnce()
		select {
		case <-h.ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (h *Host) maintainOnce() {
	now := time.Now()
	for _, e := range h.book.list() {
		p := e.id
		if h.connected(p) {
			if !h.isMember(p) && h.dial.claimJoin(p, now, h.cfg.RedialMin, h.cfg.RedialMax) {
				h.spawn(func() { h.join(p) })
			}
			continue
		}
		if !h.gater.permitted(p) || !h.dial.claimDial(p, now) {
			continue
		}
		info := peer.AddrInfo{ID: p, Addrs: e.addrs()}
		if !h.spawn(func() { h.redial(info) }) {
			return
		}
	}
	if err := h.book.flush(); err != nil {
		h.log.Warn("transport: could not save the peer book", "err", err)
	}
}

func (h *Host) redial(info peer.AddrInfo) {
	ctx, cancel := context.WithTimeout(h.ctx, dialTimeout)
	defer cancel()
	err := h.dialDirect(ctx, info)
	h.dial.dialDone(info.ID, err == nil, time.Now(), h.cfg.RedialMin, h.cfg.RedialMax)
	if err != nil {
		h.log.Debug("transport: peer-book peer unreachable; will retry", "peer", info.ID, "err", err)
		return
	}
	h.log.Info("transport: connected to peer-book peer", "peer", info.ID)
	h.join(info.ID)
}

// dialDirect connects to info unless already connected. It bypasses
// libp2p's own dial back-off (5 s growing to 5 min per failed address): the
// peer book applies Config.RedialMin/RedialMax instead, and an operator's
// Connect should try now.
func (h *Host) dialDirect(ctx context.Context, info peer.AddrInfo) error {
	if h.connected(info.ID) {
		return nil
	}
	return h.h.Connect(network.WithForceDirectDial(ctx, "meridian peer dial"), info)
}
