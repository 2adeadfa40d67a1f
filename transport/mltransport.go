package transport

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// memberlist wants every node to have an IP address and port. Nodes are
// routed by name (peer ID) instead, so each node advertises a synthetic
// address derived from its peer ID: fd (an IPv6 unique-local prefix, which
// memberlist treats as private) followed by 15 bytes of SHA-256(peer ID), and
// a fixed port. The address is stable across restarts, so memberlist never
// sees a restarted site as an address conflict, and the rare memberlist path
// that has only an address (no node name) is mapped back through
// mlTransport.byAddr.
const (
	memberPort = 7946
	// maxPacketSize caps one memberlist packet; SWIM packets are at most
	// Memberlist.UDPBufferSize (1400 B by default).
	maxPacketSize = 64 << 10
	// packetSendTimeout bounds opening a stream for one packet, including a
	// dial if the peer is not connected. Packets are best-effort, like UDP.
	packetSendTimeout = 5 * time.Second
	// maxPacketsInFlight bounds concurrent packet sends; beyond it packets
	// are dropped, as a full UDP socket buffer would.
	maxPacketsInFlight = 64
)

// memberIP is the synthetic memberlist IP of id.
func memberIP(id peer.ID) net.IP {
	sum := sha256.Sum256([]byte(id))
	ip := make(net.IP, net.IPv6len)
	ip[0] = 0xfd
	copy(ip[1:], sum[:net.IPv6len-1])
	return ip
}

// memberAddr is the synthetic memberlist address of id, "[fd…]:7946".
func memberAddr(id peer.ID) string {
	return net.JoinHostPort(memberIP(id).String(), strconv.Itoa(memberPort))
}

// peerAddr is the net.Addr of a member: its peer ID and synthetic address.
type peerAddr struct{ id peer.ID }

func (a peerAddr) Network() string { return "libp2p" }
func (a peerAddr) String() string  { return memberAddr(a.id) }

// streamConn presents a libp2p stream as the net.Conn memberlist expects.
type streamConn struct {
	network.Stream
	local, remote peerAddr
}

func (c *streamConn) LocalAddr() net.Addr  { return c.local }
func (c *streamConn) RemoteAddr() net.Addr { return c.remote }

// mlTransport carries memberlist over libp2p: packets on
// MemberlistPacketProtocol (one frame per short stream) and streams on
// MemberlistStreamProtocol. It opens no socket of its own.
type mlTransport struct {
	h        *Host
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	done     chan struct{}
	stopOnce sync.Once
	inFlight chan struct{} // semaphore of packet sends

	mu     sync.RWMutex
	byAddr map[string]peer.ID // synthetic address → peer
}

var _ memberlist.NodeAwareTransport = (*mlTransport)(nil)

func newMLTransport(h *Host) *mlTransport {
	t := &mlTransport{
		h:        h,
		packetCh: make(chan *memberlist.Packet, 256),
		streamCh: make(chan net.Conn, 16),
		done:     make(chan struct{}),
		inFlight: make(chan struct{}, maxPacketsInFlight),
		byAddr:   make(map[string]peer.ID),
	}
	t.learn(h.ID())
	return t
}

// learn records id's synthetic address for name-less lookups.
func (t *mlTransport) learn(id peer.ID) {
	a := memberAddr(id)
	t.mu.RLock()
	_, ok := t.byAddr[a]
	t.mu.RUnlock()
	if ok {
		return
	}
	t.mu.Lock()
	t.byAddr[a] = id
	t.mu.Unlock()
}

// resolve finds the peer a memberlist address points to: by node name, which
// memberlist sets on almost every path, else by synthetic address.
func (t *mlTransport) resolve(a memberlist.Address) (peer.ID, error) {
	if a.Name != "" {
		id, err := peer.Decode(a.Name)
		if err != nil {
			return "", fmt.Errorf("transport: memberlist node name %q is not a peer ID: %w", a.Name, err)
		}
		t.learn(id)
		return id, nil
	}
	t.mu.RLock()
	id, ok := t.byAddr[a.Addr]
	t.mu.RUnlock()
	if !ok {
		return "", fmt.Errorf("transport: memberlist address %s has no node name and belongs to no known peer", a.Addr)
	}
	return id, nil
}

// FinalAdvertiseAddr ignores memberlist's bind settings: the node is reached
// through libp2p, and its address only names it.
func (t *mlTransport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return memberIP(t.h.ID()), memberPort, nil
}

func (t *mlTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress sends b in the background and returns at once, like a UDP
// send: a packet to an unreachable or slow peer is lost, never waited for.
func (t *mlTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	id, err := t.resolve(a)
	if err != nil {
		return time.Time{}, err
	}
	now := time.Now()
	select {
	case <-t.done:
		return now, ErrClosed
	case t.inFlight <- struct{}{}:
	default:
		t.h.log.Debug("transport: memberlist packet dropped: too many in flight", "peer", id)
		return now, nil
	}
	pkt := append([]byte(nil), b...)
	if !t.h.spawn(func() {
		defer func() { <-t.inFlight }()
		t.sendPacket(id, pkt)
	}) {
		<-t.inFlight
		return now, ErrClosed
	}
	return now, nil
}

func (t *mlTransport) sendPacket(id peer.ID, b []byte) {
	ctx, cancel := context.WithTimeout(t.h.ctx, packetSendTimeout)
	defer cancel()
	s, err := t.h.h.NewStream(ctx, id, MemberlistPacketProtocol)
	if err != nil {
		t.h.log.Debug("transport: memberlist packet not sent", "peer", id, "err", err)
		return
	}
	_ = s.SetWriteDeadline(time.Now().Add(packetSendTimeout))
	if err := WriteFrame(s, b, maxPacketSize); err != nil {
		t.h.log.Debug("transport: memberlist packet not sent", "peer", id, "err", err)
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

func (t *mlTransport) handlePacketStream(s network.Stream) {
	from := s.Conn().RemotePeer()
	_ = s.SetReadDeadline(time.Now().Add(packetSendTimeout))
	buf, err := ReadFrame(s, maxPacketSize)
	if err != nil {
		if errors.Is(err, ErrFrameTooLarge) || errors.Is(err, ErrFrameTruncated) {
			t.h.protocolViolation(s, err)
			return
		}
		_ = s.Reset()
		return
	}
	_ = s.Close()
	now := time.Now()
	if len(buf) == 0 {
		return
	}
	t.learn(from)
	select {
	case t.packetCh <- &memberlist.Packet{Buf: buf, From: peerAddr{from}, Timestamp: now}:
	case <-t.done:
	}
}

func (t *mlTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

func (t *mlTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *mlTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	id, err := t.resolve(a)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(t.h.ctx, timeout)
	defer cancel()
	s, err := t.h.h.NewStream(ctx, id, MemberlistStreamProtocol)
	if err != nil {
		return nil, fmt.Errorf("transport: memberlist stream to %s: %w", id, err)
	}
	return &streamConn{Stream: s, local: peerAddr{t.h.ID()}, remote: peerAddr{id}}, nil
}

func (t *mlTransport) handleStream(s network.Stream) {
	from := s.Conn().RemotePeer()
	t.learn(from)
	c := &streamConn{Stream: s, local: peerAddr{t.h.ID()}, remote: peerAddr{from}}
	select {
	case t.streamCh <- c:
	case <-t.done:
		_ = s.Reset()
	}
}

func (t *mlTransport) StreamCh() <-chan net.Conn { return t.streamCh }

// Shutdown stops handing packets and streams to memberlist. The stream
// handlers are removed by Host.Close.
func (t *mlTransport) Shutdown() error {
	t.stopOnce.Do(func() { close(t.done) })
	return nil
}
