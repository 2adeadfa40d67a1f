package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Handler receives the payload of each frame a peer sends on
// Config.Protocol. It is called from one goroutine per inbound stream, so
// calls for one peer arrive in order and calls for different peers run
// concurrently. While it runs, that peer's stream is not read: a slow
// handler pushes back on the sender (whose frames are then dropped, see
// Send). The payload is the handler's to keep.
type Handler func(from peer.ID, payload []byte)

// SetHandler installs the inbound frame handler; nil removes it. Frames
// received without a handler are counted (DroppedNoHandler) and discarded.
func (h *Host) SetHandler(fn Handler) {
	if fn == nil {
		h.handler.Store(nil)
		return
	}
	h.handler.Store(&fn)
}

// sender owns the long-lived outbound stream to one peer.
type sender struct {
	peer     peer.ID
	queue    chan []byte
	stop     chan struct{}
	stopOnce sync.Once
}

// Send queues payload for to and returns at once. It returns false, without
// blocking, when to is not connected or its queue (Config.SendQueueSize) is
// full; the caller relies on anti-entropy to repair the loss. A true result
// means queued, not delivered: a frame may still be lost if the stream fails
// (counted as DroppedUnsent). The caller must not modify payload after a
// true result.
func (h *Host) Send(to peer.ID, payload []byte) bool {
	c := h.stats.peer(to)
	if len(payload) > h.cfg.MaxFrameSize {
		h.log.Warn("transport: Send called with a payload above MaxFrameSize; dropped",
			"peer", to, "size", len(payload), "limit", h.cfg.MaxFrameSize)
		c.droppedUnsent.Add(1)
		return false
	}
	if to == h.ID() || !h.connected(to) {
		c.droppedNotConnected.Add(1)
		return false
	}
	s := h.sender(to)
	if s == nil {
		c.droppedNotConnected.Add(1)
		return false
	}
	select {
	case s.queue <- payload:
		return true
	default:
		c.droppedQueueFull.Add(1)
		return false
	}
}

// sender returns the running sender for p, starting one if needed; nil once
// the host is closing.
func (h *Host) sender(p peer.ID) *sender {
	h.sendMu.Lock()
	defer h.sendMu.Unlock()
	if s, ok := h.senders[p]; ok {
		return s
	}
	s := &sender{peer: p, queue: make(chan []byte, h.cfg.SendQueueSize), stop: make(chan struct{})}
	if !h.spawn(func() { h.runSender(s) }) {
		return nil
	}
	h.senders[p] = s
	return s
}

// stopSender ends p's sender; frames still queued are counted as unsent.
func (h *Host) stopSender(p peer.ID) {
	h.sendMu.Lock()
	s, ok := h.senders[p]
	delete(h.senders, p)
	h.sendMu.Unlock()
	if ok {
		s.stopOnce.Do(func() { close(s.stop) })
	}
}

// runSender writes s's queue to one stream, opened on first use and reopened
// after a failure. It runs until the peer disconnects or the host closes.
func (h *Host) runSender(s *sender) {
	c := h.stats.peer(s.peer)
	var st network.Stream
	defer func() {
		if st != nil {
			_ = st.Close()
		}
		for {
			select {
			case <-s.queue:
				c.droppedUnsent.Add(1)
			default:
				return
			}
		}
	}()
	for {
		var payload []byte
		select {
		case <-s.stop:
			return
		case payload = <-s.queue:
		}
		if st == nil {
			var err error
			if st, err = h.openStream(s.peer); err != nil {
				h.log.Debug("transport: cannot open stream; frame dropped", "peer", s.peer, "err", err)
				c.droppedUnsent.Add(1)
				continue
			}
		}
		_ = st.SetWriteDeadline(time.Now().Add(h.cfg.WriteTimeout))
		if err := WriteFrame(st, payload, h.cfg.MaxFrameSize); err != nil {
			h.log.Debug("transport: stream write failed; frame dropped", "peer", s.peer, "err", err)
			c.droppedUnsent.Add(1)
			_ = st.Reset()
			st = nil
			continue
		}
		c.out(len(payload))
	}
}

func (h *Host) openStream(p peer.ID) (network.Stream, error) {
	ctx, cancel := context.WithTimeout(h.ctx, h.cfg.WriteTimeout)
	defer cancel()
	// Send only uses existing connections; dialling is the peer book's job.
	return h.h.NewStream(network.WithNoDial(ctx, "send"), p, h.cfg.Protocol)
}

// handleMessageStream reads frames from one inbound stream until it ends.
func (h *Host) handleMessageStream(s network.Stream) {
	p := s.Conn().RemotePeer()
	c := h.stats.peer(p)
	for {
		payload, err := ReadFrame(s, h.cfg.MaxFrameSize)
		if err != nil {
			h.inboundFailed(s, err)
			return
		}
		c.in(len(payload))
		if fn := h.handler.Load(); fn != nil {
			(*fn)(p, payload)
		} else {
			c.droppedNoHandler.Add(1)
		}
	}
}

// inboundFailed ends an inbound stream after ReadFrame failed.
func (h *Host) inboundFailed(s network.Stream, err error) {
	switch {
	case errors.Is(err, io.EOF):
		_ = s.Close()
	case errors.Is(err, ErrFrameTooLarge), errors.Is(err, ErrFrameTruncated):
		h.protocolViolation(s, err)
	default:
		h.log.Debug("transport: inbound stream ended", "peer", s.Conn().RemotePeer(), "protocol", s.Protocol(), "err", err)
		_ = s.Reset()
	}
}

// protocolViolation resets s and logs why. An oversized frame also
// disconnects the peer: it is either hostile or speaks another protocol, and
// the stream cannot be resynchronised. A truncated frame (the peer closed its
// side mid-frame) only loses that stream.
func (h *Host) protocolViolation(s network.Stream, err error) {
	p := s.Conn().RemotePeer()
	h.stats.peer(p).protocolErrors.Add(1)
	_ = s.Reset()
	if errors.Is(err, ErrFrameTooLarge) {
		h.log.Warn("transport: protocol violation; disconnecting peer", "peer", p, "protocol", s.Protocol(), "reason", err.Error())
		h.Disconnect(p, fmt.Sprintf("protocol violation on %s: %v", s.Protocol(), err))
		return
	}
	h.log.Warn("transport: protocol violation; stream closed", "peer", p, "protocol", s.Protocol(), "reason", err.Error())
}

// RequestHandler answers one request; the returned bytes are sent back as
// the response. An error resets the stream (the requester gets an error) and
// is logged; to report application errors, encode them in the response.
type RequestHandler func(ctx context.Context, from peer.ID, request []byte) ([]byte, error)

// HandleRequests serves proto with fn, one stream per request: one request
// frame in, one response frame out. nil stops serving proto. proto must end
// in a version; other versions of it are refused with a logged reason.
func (h *Host) HandleRequests(proto protocol.ID, fn RequestHandler) error {
	if err := checkVersioned(proto); err != nil {
		return err
	}
	if fn == nil {
		h.h.RemoveStreamHandler(proto)
		h.h.RemoveStreamHandler(protocol.ID(protocolFamily(proto) + "*"))
		return nil
	}
	h.serveVersioned(proto, func(s network.Stream) { h.serveRequest(s, fn) })
	return nil
}

func (h *Host) serveRequest(s network.Stream, fn RequestHandler) {
	p := s.Conn().RemotePeer()
	c := h.stats.peer(p)
	ctx, cancel := context.WithTimeout(h.ctx, h.cfg.RequestTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	_ = s.SetDeadline(deadline)
	req, err := ReadFrame(s, h.cfg.MaxFrameSize)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: stream closed before the request frame", ErrFrameTruncated)
		}
		h.inboundFailed(s, err)
		return
	}
	c.in(len(req))
	resp, err := fn(ctx, p, req)
	if err != nil {
		h.log.Debug("transport: request handler failed; stream reset", "peer", p, "protocol", s.Protocol(), "err", err)
		_ = s.Reset()
		return
	}
	if err := WriteFrame(s, resp, h.cfg.MaxFrameSize); err != nil {
		h.log.Debug("transport: writing response failed", "peer", p, "protocol", s.Protocol(), "err", err)
		_ = s.Reset()
		return
	}
	c.out(len(resp))
	_ = s.Close()
}

// Request sends payload to p on proto on a new stream and returns the
// response frame. It dials p if needed. Without a deadline in ctx it gives
// up after Config.RequestTimeout.
func (h *Host) Request(ctx context.Context, p peer.ID, proto protocol.ID, payload []byte) ([]byte, error) {
	if h.closing() {
		return nil, ErrClosed
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.cfg.RequestTimeout)
		defer cancel()
	}
	s, err := h.h.NewStream(ctx, p, proto)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("transport: request to %s on %s: %w", p, proto, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	deadline, _ := ctx.Deadline()
	_ = s.SetDeadline(deadline)
	c := h.stats.peer(p)
	if err := WriteFrame(s, payload, h.cfg.MaxFrameSize); err != nil {
		_ = s.Reset()
		return nil, fmt.Errorf("transport: request to %s on %s: %w", p, proto, err)
	}
	c.out(len(payload))
	_ = s.CloseWrite()
	resp, err := ReadFrame(s, h.cfg.MaxFrameSize)
	if err != nil {
		_ = s.Reset()
		if ctx.Err() != nil {
			err = ctx.Err()
		} else if errors.Is(err, io.EOF) {
			err = fmt.Errorf("the peer closed the stream without a response: %w", io.ErrUnexpectedEOF)
		}
		return nil, fmt.Errorf("transport: request to %s on %s: %w", p, proto, err)
	}
	c.in(len(resp))
	_ = s.Close()
	return resp, nil
}
