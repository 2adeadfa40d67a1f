package transport

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// waitTimeout bounds every wait in these tests. Conditions normally hold
// within a second on loopback; the margin is for slow, -race CI machines.
const waitTimeout = 20 * time.Second

// eventually polls cond until it holds, failing the test with what after
// waitTimeout. It asserts an outcome, never a duration.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logRecorder is a slog.Handler that keeps every record, so tests can check
// that a reason was logged with the right peer.
type logRecorder struct {
	mu    *sync.Mutex
	recs  *[]logRecord
	attrs []slog.Attr
}

type logRecord struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func (r logRecord) String() string {
	return fmt.Sprintf("%s %s %v", r.level, r.msg, r.attrs)
}

func newLogRecorder() *logRecorder {
	return &logRecorder{mu: new(sync.Mutex), recs: new([]logRecord)}
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{level: r.Level, msg: r.Message, attrs: make(map[string]string)}
	for _, a := range l.attrs {
		rec.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	l.mu.Lock()
	*l.recs = append(*l.recs, rec)
	l.mu.Unlock()
	return nil
}

func (l *logRecorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *l
	c.attrs = append(append([]slog.Attr(nil), l.attrs...), attrs...)
	return &c
}

func (l *logRecorder) WithGroup(string) slog.Handler { return l }

// find returns the first record at level or above whose message contains
// msg and whose attributes contain every key=substring pair of want.
func (l *logRecorder) find(level slog.Level, msg string, want map[string]string) (logRecord, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
next:
	for _, r := range *l.recs {
		if r.level < level || !strings.Contains(r.msg, msg) {
			continue
		}
		for k, v := range want {
			if !strings.Contains(r.attrs[k], v) {
				continue next
			}
		}
		return r, true
	}
	return logRecord{}, false
}

// tail returns the last n records at warn level or above, for failure output.
func (l *logRecorder) tail(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range *l.recs {
		if r.level >= slog.LevelInfo {
			out = append(out, r.String())
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

// loopback listens on 127.0.0.1 only: tests touch no other interface.
var loopback = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}

type testHost struct {
	*Host
	logs *logRecorder
	dir  string
}

// newTestHost starts a Host on loopback in a fresh data directory, closed
// when the test ends. edit adjusts the configuration first.
func newTestHost(t *testing.T, edit func(*Config)) *testHost {
	t.Helper()
	return startTestHost(t, t.TempDir(), edit)
}

func startTestHost(t *testing.T, dir string, edit func(*Config)) *testHost {
	t.Helper()
	logs := newLogRecorder()
	cfg := Config{DataDir: dir, ListenAddrs: loopback, Logger: slog.New(logs)}
	if edit != nil {
		edit(&cfg)
	}
	h, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		_ = h.Close()
		if t.Failed() {
			t.Logf("logs of %s:\n  %s", h.ID(), strings.Join(logs.tail(40), "\n  "))
		}
	})
	return &testHost{Host: h, logs: logs, dir: dir}
}

// tcpAddr is h's loopback TCP multiaddr with /p2p/, as an operator types it.
func tcpAddr(t testing.TB, h *Host) string {
	t.Helper()
	for _, a := range h.Addrs() {
		if _, err := a.ValueForProtocol(ma.P_TCP); err == nil && strings.HasPrefix(a.String(), "/ip4/127.0.0.1/") {
			return a.String()
		}
	}
	t.Fatalf("host %s has no loopback TCP address among %v", h.ID(), h.Addrs())
	return ""
}

func connectHosts(t testing.TB, from, to *Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := from.Connect(ctx, tcpAddr(t, to)); err != nil {
		t.Fatalf("connect %s → %s: %v", from.ID(), to.ID(), err)
	}
}

// rawHost is a bare libp2p host that speaks whatever bytes a test writes:
// it plays the misbehaving peer.
func rawHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ResourceManager(&network.NullResourceManager{}),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		t.Fatalf("raw libp2p host: %v", err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

func rawConnect(t *testing.T, from host.Host, to *Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := from.Connect(ctx, peer.AddrInfo{ID: to.ID(), Addrs: to.LibP2P().Addrs()}); err != nil {
		t.Fatalf("raw connect: %v", err)
	}
}

// inbox collects frames delivered to a handler.
type inbox struct {
	mu     sync.Mutex
	frames map[peer.ID][]string
}

func newInbox() *inbox { return &inbox{frames: make(map[peer.ID][]string)} }

func (b *inbox) handler(from peer.ID, payload []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.frames[from] = append(b.frames[from], string(payload))
}

func (b *inbox) from(p peer.ID) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.frames[p]...)
}

func protocolID(s string) protocol.ID { return protocol.ID(s) }

func mustMultiaddr(t testing.TB, s string) ma.Multiaddr {
	t.Helper()
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
