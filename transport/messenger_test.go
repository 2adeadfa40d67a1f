package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestTwoHostsExchangeFramesInOrder(t *testing.T) {
	a, b := newTestHost(t, nil), newTestHost(t, nil)
	inA, inB := newInbox(), newInbox()
	a.SetHandler(inA.handler)
	b.SetHandler(inB.handler)
	connectHosts(t, a.Host, b.Host)

	const n = 200
	var want []string
	for i := range n {
		msg := fmt.Sprintf("frame %d", i)
		want = append(want, msg)
		if !a.Send(b.ID(), []byte(msg)) {
			t.Fatalf("Send %d refused", i)
		}
	}
	if !b.Send(a.ID(), []byte("reply")) {
		t.Fatal("reply refused")
	}
	eventually(t, "b receives all frames", func() bool { return len(inB.from(a.ID())) == n })
	if got := inB.from(a.ID()); !slices.Equal(got, want) {
		t.Fatalf("frames arrived out of order or altered: %v", got[:10])
	}
	eventually(t, "a receives the reply", func() bool { return slices.Equal(inA.from(b.ID()), []string{"reply"}) })

	var bytesOut uint64
	for _, m := range want {
		bytesOut += uint64(len(m))
	}
	sa, sb := a.Stats()[b.ID()], b.Stats()[a.ID()]
	if sa.FramesOut != n || sa.BytesOut != bytesOut || sb.FramesIn != n || sb.BytesIn != bytesOut {
		t.Fatalf("counters: a→b %+v, b←a %+v; want %d frames, %d bytes", sa, sb, n, bytesOut)
	}
}

func TestThreeHostsExchangeFrames(t *testing.T) {
	hosts := []*testHost{newTestHost(t, nil), newTestHost(t, nil), newTestHost(t, nil)}
	boxes := []*inbox{newInbox(), newInbox(), newInbox()}
	for i, h := range hosts {
		h.SetHandler(boxes[i].handler)
	}
	connectHosts(t, hosts[0].Host, hosts[1].Host)
	connectHosts(t, hosts[1].Host, hosts[2].Host)
	connectHosts(t, hosts[2].Host, hosts[0].Host)
	for i, from := range hosts {
		for j, to := range hosts {
			if i != j && !from.Send(to.ID(), fmt.Appendf(nil, "%d→%d", i, j)) {
				t.Fatalf("Send %d→%d refused", i, j)
			}
		}
	}
	for j := range hosts {
		for i, from := range hosts {
			if i == j {
				continue
			}
			want := fmt.Sprintf("%d→%d", i, j)
			eventually(t, want, func() bool { return slices.Equal(boxes[j].from(from.ID()), []string{want}) })
		}
	}
}

func TestSendRefusesUnconnectedPeerWithoutBlocking(t *testing.T) {
	a := newTestHost(t, nil)
	stranger := testPeerID(t)
	if a.Send(stranger, []byte("x")) {
		t.Fatal("Send to an unconnected peer reported success")
	}
	if a.Send(a.ID(), []byte("x")) {
		t.Fatal("Send to self reported success")
	}
	if got := a.Stats()[stranger].DroppedNotConnected; got != 1 {
		t.Fatalf("DroppedNotConnected = %d, want 1", got)
	}
}

func TestSendReportsFullQueueInsteadOfBlocking(t *testing.T) {
	a := newTestHost(t, func(c *Config) { c.SendQueueSize = 4 })
	b := newTestHost(t, nil)
	release := make(chan struct{})
	b.SetHandler(func(peer.ID, []byte) { <-release }) // a handler that does not keep up
	connectHosts(t, a.Host, b.Host)

	payload := make([]byte, 256<<10)
	sent := 0
	eventually(t, "Send to report a full queue", func() bool {
		if a.Send(b.ID(), payload) {
			sent++
			return false
		}
		return true
	})
	if a.Stats()[b.ID()].DroppedQueueFull == 0 {
		t.Fatal("a full queue was not counted")
	}
	close(release)
	eventually(t, "b drains every accepted frame", func() bool { return b.Stats()[a.ID()].FramesIn == uint64(sent) })
	// The stream survived the stall: a new frame still goes through.
	eventually(t, "Send accepted again", func() bool { return a.Send(b.ID(), []byte("after")) })
}

// violationSetup returns a victim host v, a well-behaved host g exchanging
// frames with v, and a raw libp2p host r connected to v.
func violationSetup(t *testing.T) (v, g *testHost, inV *inbox, r interface {
	ID() peer.ID
}, open func(proto string) (io.ReadWriteCloser, error)) {
	v, g = newTestHost(t, nil), newTestHost(t, nil)
	inV = newInbox()
	v.SetHandler(inV.handler)
	connectHosts(t, g.Host, v.Host)
	raw := rawHost(t)
	rawConnect(t, raw, v.Host)
	open = func(proto string) (io.ReadWriteCloser, error) {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		return raw.NewStream(ctx, v.ID(), protocolID(proto))
	}
	return v, g, inV, raw, open
}

func TestOversizedFrameDisconnectsPeerWhileOthersKeepExchanging(t *testing.T) {
	v, g, inV, r, open := violationSetup(t)
	if !g.Send(v.ID(), []byte("before")) {
		t.Fatal("g's first frame refused")
	}
	s, err := open(string(DefaultProtocol))
	if err != nil {
		t.Fatal(err)
	}
	// Not Meridian: an HTTP request read as a length prefix announces ~1.2 GB.
	if _, err := s.Write([]byte("GET / HTTP/1.1\r\nHost: v\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the violation to be logged with peer and reason", func() bool {
		_, ok := v.logs.find(slog.LevelWarn, "protocol violation", map[string]string{"peer": r.ID().String(), "reason": "frame exceeds the size limit"})
		return ok
	})
	eventually(t, "v to drop the raw peer", func() bool { return !v.connected(r.ID()) })
	if got := v.Stats()[r.ID()].ProtocolErrors; got != 1 {
		t.Fatalf("ProtocolErrors = %d, want 1", got)
	}
	if !g.Send(v.ID(), []byte("after")) {
		t.Fatal("g's frame refused after the other peer's violation")
	}
	eventually(t, "g's frames delivered", func() bool { return slices.Equal(inV.from(g.ID()), []string{"before", "after"}) })
	if n := len(inV.from(r.ID())); n != 0 {
		t.Fatalf("%d frames from the misbehaving peer reached the handler", n)
	}
}

func TestTruncatedFrameClosesTheStreamWithReason(t *testing.T) {
	v, g, inV, r, open := violationSetup(t)
	s, err := open(string(DefaultProtocol))
	if err != nil {
		t.Fatal(err)
	}
	var frame bytes.Buffer
	_ = binary.Write(&frame, binary.BigEndian, uint32(100))
	frame.WriteString("only ten b")
	if _, err := s.Write(frame.Bytes()); err != nil {
		t.Fatal(err)
	}
	_ = s.(interface{ CloseWrite() error }).CloseWrite()
	eventually(t, "the truncation to be logged", func() bool {
		_, ok := v.logs.find(slog.LevelWarn, "stream closed", map[string]string{"peer": r.ID().String(), "reason": "truncated"})
		return ok
	})
	if _, err := s.Read(make([]byte, 1)); err == nil || err == io.EOF {
		t.Fatalf("read on the truncated stream = %v, want a reset", err)
	}
	if n := len(inV.from(r.ID())); n != 0 {
		t.Fatalf("a truncated frame reached the handler")
	}
	if !g.Send(v.ID(), []byte("still here")) {
		t.Fatal("g's frame refused")
	}
	eventually(t, "g's frame delivered", func() bool { return slices.Equal(inV.from(g.ID()), []string{"still here"}) })
}

func TestUnsupportedProtocolVersionIsClosedWithReason(t *testing.T) {
	v, _, _, r, open := violationSetup(t)
	// v accepts the protocol name, then resets the stream; the reset may
	// even overtake the end of the negotiation.
	s, err := open("/meridian/sync/9.0.0")
	if err == nil {
		_ = WriteFrame(s, []byte("from the future"), 1024)
		if _, err := s.Read(make([]byte, 1)); err == nil || err == io.EOF {
			t.Fatalf("read on the refused stream = %v, want a reset", err)
		}
	} else if !strings.Contains(err.Error(), "reset") {
		t.Fatalf("opening the refused stream: %v, want a reset", err)
	}
	eventually(t, "the unsupported version to be logged", func() bool {
		_, ok := v.logs.find(slog.LevelWarn, "unsupported protocol version", map[string]string{
			"peer": r.ID().String(), "protocol": "/meridian/sync/9.0.0", "reason": string(DefaultProtocol)})
		return ok
	})
}

func TestRequestGetsTheHandlersResponse(t *testing.T) {
	const proto = "/meridian/test-echo/1.0.0"
	a, b := newTestHost(t, nil), newTestHost(t, nil)
	if err := b.HandleRequests(proto, func(_ context.Context, from peer.ID, req []byte) ([]byte, error) {
		if string(req) == "fail" {
			return nil, errors.New("refused")
		}
		return []byte(strings.ToUpper(string(req)) + " from " + from.String()[:8]), nil
	}); err != nil {
		t.Fatal(err)
	}
	connectHosts(t, a.Host, b.Host)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	resp, err := a.Request(ctx, b.ID(), proto, []byte("digest"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "DIGEST from " + a.ID().String()[:8]; string(resp) != want {
		t.Fatalf("response %q, want %q", resp, want)
	}
	if _, err := a.Request(ctx, b.ID(), proto, []byte("fail")); err == nil {
		t.Fatal("a failing handler produced no error")
	}
	if _, err := a.Request(ctx, b.ID(), "/meridian/unknown/1.0.0", nil); err == nil {
		t.Fatal("a request on an unserved protocol succeeded")
	}
	if err := b.HandleRequests("echo", nil); err == nil {
		t.Fatal("an unversioned protocol ID was accepted")
	}
	short, cancelShort := context.WithTimeout(ctx, time.Nanosecond)
	defer cancelShort()
	<-short.Done()
	if _, err := a.Request(short, b.ID(), proto, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("expired context: got %v, want context.DeadlineExceeded", err)
	}
}
