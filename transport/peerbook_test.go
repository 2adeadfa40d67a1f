package transport

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestPeerBookSurvivesRestartAndTheHostRedials(t *testing.T) {
	b := newTestHost(t, nil)
	dir := t.TempDir()
	a := startTestHost(t, dir, nil)
	id, err := a.AddPeer(tcpAddr(t, b.Host))
	if err != nil {
		t.Fatal(err)
	}
	if id != b.ID() {
		t.Fatalf("AddPeer returned %s, want %s", id, b.ID())
	}
	eventually(t, "a to dial its new peer", func() bool { return a.connected(b.ID()) })
	eventually(t, "b to see a as a member", func() bool { return slices.Contains(memberIDs(b.Host), a.ID()) })

	var f peerBookFile
	data, err := os.ReadFile(filepath.Join(dir, PeerBookFileName))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Peers) != 1 || f.Peers[0].ID != b.ID().String() || f.Peers[0].Source != SourceOperator || len(f.Peers[0].Addrs) != 1 {
		t.Fatalf("peers.json = %s", data)
	}

	oldID := a.ID()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b to see a gone", func() bool { return !b.connected(oldID) })

	a2 := startTestHost(t, dir, nil)
	if a2.ID() != oldID {
		t.Fatalf("restarted host has ID %s, want %s", a2.ID(), oldID)
	}
	peers := a2.Peers()
	if len(peers) != 1 || peers[0].ID != b.ID() || peers[0].Source != SourceOperator || peers[0].LastSeen.IsZero() {
		t.Fatalf("restarted host's peer book = %+v", peers)
	}
	eventually(t, "the restarted host to redial b", func() bool { return a2.connected(b.ID()) })
	eventually(t, "the restarted host to rejoin the mesh", func() bool {
		return slices.Contains(memberIDs(b.Host), oldID) && slices.Contains(memberIDs(a2.Host), b.ID())
	})
	if p := a2.Peers()[0]; !p.Connected {
		t.Fatalf("Peers() says %s is not connected", p.ID)
	}
}

func TestUnreachablePeerIsRetriedUntilItAnswers(t *testing.T) {
	bDir := t.TempDir()
	b := startTestHost(t, bDir, nil)
	bAddr := tcpAddr(t, b.Host)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	a := newTestHost(t, func(c *Config) { c.RedialMin, c.RedialMax = 50*time.Millisecond, 200*time.Millisecond })
	if _, err := a.AddPeer(bAddr); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a failed dial to be scheduled for retry", func() bool {
		a.dial.mu.Lock()
		defer a.dial.mu.Unlock()
		r := a.dial.peers[b.ID()]
		return r != nil && r.attempts >= 2
	})
	// b comes back on the same address and identity.
	tpt, _ := peer.SplitAddr(mustMultiaddr(t, bAddr))
	b2 := startTestHost(t, bDir, func(c *Config) { c.ListenAddrs = []string{tpt.String()} })
	eventually(t, "a to reach b once it is back", func() bool { return a.connected(b2.ID()) })
}

func TestRemovePeerForgetsIt(t *testing.T) {
	a := newTestHost(t, nil)
	p := testPeerID(t)
	if _, err := a.AddPeer("/ip4/127.0.0.1/tcp/9/p2p/" + p.String()); err != nil {
		t.Fatal(err)
	}
	if len(a.Peers()) != 1 {
		t.Fatalf("Peers() = %v", a.Peers())
	}
	if err := a.RemovePeer(p); err != nil {
		t.Fatal(err)
	}
	if len(a.Peers()) != 0 {
		t.Fatalf("Peers() after RemovePeer = %v", a.Peers())
	}
	data, _ := os.ReadFile(filepath.Join(a.dir, PeerBookFileName))
	if strings.Contains(string(data), p.String()) {
		t.Fatalf("peers.json still names the removed peer: %s", data)
	}
	if err := a.RemovePeer(p); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("removing an unknown peer = %v, want ErrUnknownPeer", err)
	}
}

func TestMalformedPeerBookIsRefusedNotOverwritten(t *testing.T) {
	for name, content := range map[string]string{
		"not json":    "{peers: [",
		"bad version": `{"version": 7, "peers": []}`,
		"bad id":      `{"version": 1, "peers": [{"id": "nope", "source": "operator"}]}`,
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, PeerBookFileName)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := New(t.Context(), Config{DataDir: dir, ListenAddrs: loopback})
		if !errors.Is(err, ErrMalformedPeerBook) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: New = %v, want ErrMalformedPeerBook naming the file", name, err)
		}
		if got, _ := os.ReadFile(path); string(got) != content {
			t.Errorf("%s: peers.json was rewritten", name)
		}
	}
}

func TestBackoffDoublesUpToTheCap(t *testing.T) {
	var got []time.Duration
	for i := range 6 {
		got = append(got, backoff(i, time.Second, 10*time.Second))
	}
	want := []time.Duration{1, 2, 4, 8, 10, 10}
	for i := range want {
		want[i] *= time.Second
	}
	if !slices.Equal(got, want) {
		t.Fatalf("backoff = %v, want %v", got, want)
	}
}
