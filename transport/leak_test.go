package transport

import (
	"github.com/libp2p/go-libp2p/core/peer"
	"runtime"
	"strings"
	"testing"
)

// Close must stop every goroutine the host started: none of this package's
// functions may remain on any goroutine's stack.
func TestCloseStopsThePackagesGoroutines(t *testing.T) {
	a, b := newTestHost(t, nil), newTestHost(t, nil)
	a.SetHandler(func(from peer.ID, p []byte) {})
	connectHosts(t, a.Host, b.Host)
	eventually(t, "a and b to be members", func() bool { return len(a.Members()) == 1 && len(b.Members()) == 1 })
	if !a.Send(b.ID(), []byte("x")) || !b.Send(a.ID(), []byte("y")) {
		t.Fatal("Send refused")
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	var stacks string
	eventually(t, "the hosts' goroutines to end", func() bool {
		buf := make([]byte, 1<<20)
		stacks = string(buf[:runtime.Stack(buf, true)])
		for _, g := range strings.Split(stacks, "\n\n") {
			if strings.Contains(g, "meridian/transport.") && !strings.Contains(g, "meridian/transport.TestCloseStops") && !strings.Contains(g, "testing.tRunner") {
				return false
			}
		}
		return true
	})
}
