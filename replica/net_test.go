package replica

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	"meridian/crdt"
)

// testNet is an in-process network of replicas for tests: messages queue
// until delivered, links can be cut, sites can crash and restart from
// their stores.
type testNet struct {
	t     fataler
	nodes map[crdt.SiteID]*testNode
	order []crdt.SiteID
	keys  crdt.KeyRing
	queue []Message
	cut   map[[2]crdt.SiteID]bool // directed: from → to dropped
	now   int64
	open  func(site crdt.SiteID) DurableStore // opens a site's store (again)
	log   []string
	cfg   func(*Config)
	// maxMsg is the largest encoded message sent so far.
	maxMsg int
}

type testNode struct {
	id    crdt.SiteID
	r     *Replica
	store DurableStore
	mem   *MemStore
	priv  ed25519.PrivateKey
	down  bool
}

// fataler is what the harness needs of *testing.T and *rapid.T.
type fataler interface {
	Fatalf(string, ...any)
	Fatal(...any)
}

func newTestNet(t fataler) *testNet {
	return &testNet{t: t, nodes: map[crdt.SiteID]*testNode{}, keys: crdt.KeyRing{}, cut: map[[2]crdt.SiteID]bool{}, now: 1_700_000_000_000}
}

func keyFor(site crdt.SiteID) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("meridian-test-key/" + site))
	return ed25519.NewKeyFromSeed(seed[:])
}

func (n *testNet) add(id crdt.SiteID) *testNode {
	priv := keyFor(id)
	n.keys[id] = priv.Public().(ed25519.PublicKey)
	nd := &testNode{id: id, priv: priv}
	if n.open != nil {
		nd.store = n.open(id)
	} else {
		nd.mem = NewMemStore()
		nd.store = nd.mem
	}
	n.nodes[id] = nd
	n.order = append(n.order, id)
	n.start(nd)
	return nd
}

func (n *testNet) start(nd *testNode) {
	cfg := Config{Site: nd.id, Signer: crdt.Ed25519Signer{ID: nd.id, Key: nd.priv}, Verifier: n.keys, SyncIntervalMs: 1000}
	if n.cfg != nil {
		n.cfg(&cfg)
	}
	r, err := New(cfg, nd.store)
	if err != nil {
		n.t.Fatalf("start %s: %v", nd.id, err)
	}
	r.Tick(n.now)
	nd.r = r
	nd.down = false
}

// crash discards a site's in-memory state; its store keeps what was applied.
func (n *testNet) crash(id crdt.SiteID) {
	nd := n.nodes[id]
	nd.down = true
	nd.r = nil
	var kept []Message
	for _, m := range n.queue {
		if m.To != id && m.From != id {
			kept = append(kept, m)
		}
	}
	n.queue = kept
	for _, o := range n.nodes {
		if o.r != nil {
			o.r.RemovePeer(id)
		}
	}
}

func (n *testNet) restart(id crdt.SiteID) {
	nd := n.nodes[id]
	if nd.mem != nil {
		nd.mem = nd.mem.Reopen()
		nd.store = nd.mem
	} else {
		if err := nd.store.Close(); err != nil {
			n.t.Fatalf("close %s: %v", id, err)
		}
		nd.store = n.open(id)
	}
	n.start(nd)
}

func (n *testNet) connect(a, b crdt.SiteID) {
	n.nodes[a].r.AddPeer(b)
	n.nodes[b].r.AddPeer(a)
}

func (n *testNet) disconnect(a, b crdt.SiteID) {
	n.nodes[a].r.RemovePeer(b)
	n.nodes[b].r.RemovePeer(a)
}

// process runs one Ready/persist/send/Advance cycle of a site.
func (n *testNet) process(id crdt.SiteID) (Ready, bool) {
	nd := n.nodes[id]
	if nd.down || !nd.r.HasReady() {
		return Ready{}, false
	}
	rd, err := nd.r.Ready()
	if err != nil {
		n.t.Fatalf("%s ready: %v", id, err)
	}
	if err := nd.store.Apply(rd.Writes); err != nil {
		n.t.Fatalf("%s apply: %v", id, err)
	}
	for _, m := range rd.Messages {
		m.From = id
		// Round-trip every message through the wire encoding.
		raw, err := EncodeMessage(&m)
		if err != nil {
			n.t.Fatalf("encode: %v", err)
		}
		n.maxMsg = max(n.maxMsg, len(raw))
		dec, err := DecodeMessage(raw)
		if err != nil {
			n.t.Fatalf("decode %v: %v", m.Type, err)
		}
		dec.From, dec.To = m.From, m.To
		n.queue = append(n.queue, *dec)
	}
	for _, e := range rd.Events {
		line := fmt.Sprintf("%s: %s %s from %s (origin %s)", id, e.Kind, e.Doctype, e.Peer, e.Origin)
		if e.Err != nil {
			line += ": " + e.Err.Error()
		}
		n.log = append(n.log, line)
	}
	nd.r.Advance(rd)
	return rd, true
}

// deliver hands queued messages to their receivers (dropping those on cut
// links or to crashed sites); filter picks which.
func (n *testNet) deliver(filter func(Message) bool) int {
	var now, later []Message
	for _, m := range n.queue {
		if filter == nil || filter(m) {
			now = append(now, m)
		} else {
			later = append(later, m)
		}
	}
	n.queue = later
	count := 0
	for _, m := range now {
		to := n.nodes[m.To]
		if to == nil || to.down || n.cut[[2]crdt.SiteID{m.From, m.To}] {
			continue
		}
		if err := to.r.Step(m); err != nil && os.Getenv("STEPDEBUG") != "" {
			fmt.Println("step", m.From, "->", m.To, m.Type, err)
		}
		count++
	}
	return count
}

// stabilize processes and delivers until nothing moves.
func (n *testNet) stabilize() {
	for i := 0; i < 1000; i++ {
		moved := false
		for _, id := range n.order {
			if _, ok := n.process(id); ok {
				moved = true
			}
		}
		if n.deliver(nil) > 0 {
			moved = true
		}
		if !moved {
			return
		}
	}
	n.t.Fatalf("network did not stabilize")
}

func (n *testNet) tick(ms int64) {
	n.now += ms
	for _, id := range n.order {
		if nd := n.nodes[id]; !nd.down {
			nd.r.Tick(n.now)
		}
	}
}

// put writes fields (name=value) of a document on a site, creating it.
func (n *testNet) put(id crdt.SiteID, dt, name string, kv ...string) crdt.Dot {
	r := n.nodes[id].r
	doc, err := r.Doc(dt, name)
	if err != nil {
		n.t.Fatal(err)
	}
	var ops []crdt.Op
	if !doc.Exists() {
		ops = append(ops, crdt.Op{Kind: crdt.OpCreate})
	}
	for _, s := range kv {
		k, v, _ := strings.Cut(s, "=")
		ops = append(ops, crdt.Op{Kind: crdt.OpSet, Field: k, Value: crdt.Str(v)})
	}
	dot, err := r.Propose(Proposal{Doctype: dt, Name: name, Ops: ops})
	if err != nil {
		n.t.Fatalf("put on %s: %v", id, err)
	}
	return dot
}

func (n *testNet) digests(dt string) map[crdt.SiteID]string {
	out := map[crdt.SiteID]string{}
	for _, id := range n.order {
		nd := n.nodes[id]
		if nd.down {
			continue
		}
		g, err := nd.r.StateDigest(dt)
		if err != nil {
			n.t.Fatal(err)
		}
		out[id] = fmt.Sprintf("%x", g[:6])
	}
	return out
}

func (n *testNet) converged(dt string) bool {
	var first string
	for _, g := range n.digests(dt) {
		if first == "" {
			first = g
		} else if g != first {
			return false
		}
	}
	return true
}

func sortedSites(m map[crdt.SiteID]string) []crdt.SiteID {
	var out []crdt.SiteID
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func TestTwoReplicasExchangeEdits(t *testing.T) {
	n := newTestNet(t)
	n.add("A")
	n.add("B")
	n.connect("A", "B")
	n.put("A", "Item", "ITEM-1", "item_name=Widget")
	n.put("B", "Item", "ITEM-2", "item_name=Gadget")
	n.stabilize()
	for _, id := range []crdt.SiteID{"A", "B"} {
		for _, name := range []string{"ITEM-1", "ITEM-2"} {
			d, _ := n.nodes[id].r.Doc("Item", name)
			if !d.Exists() {
				t.Fatalf("%s lacks %s", id, name)
			}
		}
	}
	if !n.converged("Item") {
		t.Fatalf("digests differ: %v", n.digests("Item"))
	}
	t.Log(n.log)
}

// A batch larger than one serve reaches a peer in several parts; that peer
// must then be able to serve every part onward, with proofs, to a third.
func TestBatchCaughtUpInPartsIsServedOnward(t *testing.T) {
	for _, store := range []string{"memory", "badger"} {
		t.Run(store, func(t *testing.T) {
			n := newTestNet(t)
			if store == "badger" {
				dir := t.TempDir()
				n.open = func(site crdt.SiteID) DurableStore {
					s, err := OpenBadger(dir+"/"+string(site), BadgerOptions{})
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { _ = s.Close() })
					return s
				}
			}
			n.add("A")
			n.add("B")
			n.add("C")
			for i := range 700 {
				n.put("A", "Item", fmt.Sprintf("ITEM-%04d", i), "item_name=x")
			}
			n.stabilize() // A alone: one sealed batch of 700 edits
			n.connect("A", "B")
			for range 10 {
				n.tick(1000)
				n.stabilize()
			}
			if g := n.digests("Item"); g["A"] != g["B"] {
				t.Fatalf("B did not catch up from A: %v", g)
			}
			n.disconnect("A", "B")
			if store == "badger" {
				n.crash("B") // the merged tree must survive a restart
				n.restart("B")
			}
			n.connect("B", "C")
			for range 10 {
				n.tick(1000)
				n.stabilize()
			}
			g := n.digests("Item")
			if g["C"] != g["A"] {
				t.Fatalf("C did not catch up from B: %v\n%s", g, strings.Join(n.log[max(0, len(n.log)-30):], "\n"))
			}
			for i := range 700 {
				if d, _ := n.nodes["C"].r.Doc("Item", fmt.Sprintf("ITEM-%04d", i)); !d.Exists() {
					t.Fatalf("C lacks ITEM-%04d", i)
				}
			}
		})
	}
}

func TestChangedSinceListsDocumentsWithWritesBeyondAVector(t *testing.T) {
	n := newTestNet(t)
	n.add("A")
	n.put("A", "Item", "I1", "item_name=a")
	n.put("A", "Item", "I2", "item_name=b")
	n.stabilize()
	r := n.nodes["A"].r
	seen := r.VersionVector("Item")
	if got := r.ChangedSince("Item", seen); len(got) != 0 {
		t.Fatalf("nothing changed since the current vector, got %v", got)
	}
	if got := r.ChangedSince("Item", crdt.VersionVector{}); strings.Join(got, ",") != "I1,I2" {
		t.Fatalf("everything changed since the empty vector, got %v", got)
	}
	n.put("A", "Item", "I2", "item_name=c")
	n.put("A", "Item", "I3", "item_name=d")
	n.stabilize()
	if got := r.ChangedSince("Item", seen); strings.Join(got, ",") != "I2,I3" {
		t.Fatalf("changed since: %v, want I2,I3", got)
	}
}

// Large writes must replicate in messages no bigger than the bound, through
// pushes and anti-entropy serves alike, and an edit too big for any message
// is refused when it is proposed, with nothing changed.
func TestLargeWritesTravelInBoundedMessages(t *testing.T) {
	const bound = 64 << 10
	n := newTestNet(t)
	n.cfg = func(c *Config) { c.MaxMessageBytes = bound }
	n.add("A")
	n.add("B")
	big := strings.Repeat("x", 20<<10)
	for i := range 40 {
		n.put("A", "Item", fmt.Sprintf("ITEM-%02d", i), "description="+big)
	}
	n.stabilize()
	before, _ := n.nodes["A"].r.StateDigest("Item")
	_, err := n.nodes["A"].r.Propose(Proposal{Doctype: "Item", Name: "HUGE", Ops: []crdt.Op{
		{Kind: crdt.OpCreate}, {Kind: crdt.OpSet, Field: "description", Value: crdt.Str(strings.Repeat("y", bound/2))}}})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), `Item "HUGE"`) || !strings.Contains(err.Error(), "split it") {
		t.Fatalf("an edit of half the message bound: got %v, want ErrTooLarge naming the document and what to do", err)
	}
	n.stabilize()
	if after, _ := n.nodes["A"].r.StateDigest("Item"); after != before {
		t.Fatal("the refused edit changed the state")
	}
	if d, _ := n.nodes["A"].r.Doc("Item", "HUGE"); !d.Empty() {
		t.Fatal("the refused edit left a document")
	}
	// B was not connected while A wrote: it catches up through serves of
	// several large writes each, which must be split.
	n.connect("A", "B")
	for range 20 {
		n.tick(1000)
		n.stabilize()
	}
	if !n.converged("Item") {
		t.Fatalf("B did not catch up: %v", n.digests("Item"))
	}
	if n.maxMsg > bound {
		t.Fatalf("largest message %d bytes, bound %d", n.maxMsg, bound)
	}
	// Live pushes of large writes stay within the bound too.
	for i := range 10 {
		n.put("A", "Item", fmt.Sprintf("ITEM-%02d", i), "item_name="+big)
	}
	n.stabilize()
	if !n.converged("Item") || n.maxMsg > bound {
		t.Fatalf("pushes: converged %v, largest message %d bytes (bound %d)", n.converged("Item"), n.maxMsg, bound)
	}
	t.Logf("largest message %d bytes (bound %d)", n.maxMsg, bound)
}

// Documents that become visible to a filtered peer travel whole; large ones
// must still go out in messages within the bound.
func TestWholeDocumentsForAFilteredPeerStayWithinTheBound(t *testing.T) {
	const bound = 64 << 10
	acme := func(d *crdt.Doc) bool { return d.View().Fields["brand"] == crdt.Str("Acme") }
	n := newTestNet(t)
	n.cfg = func(c *Config) {
		c.MaxMessageBytes = bound
		c.Filter = func(peer crdt.SiteID, dt string) func(*crdt.Doc) bool {
			if peer == "C" {
				return acme
			}
			return nil
		}
	}
	n.add("A")
	n.add("C")
	n.connect("A", "C")
	big := strings.Repeat("x", 20<<10)
	for i := range 10 {
		n.put("A", "Item", fmt.Sprintf("ITEM-%02d", i), "description="+big, "brand=Other")
		n.stabilize()
	}
	n.maxMsg = 0
	for i := range 10 { // all ten become visible to C in one Ready: 200 KiB of documents
		n.put("A", "Item", fmt.Sprintf("ITEM-%02d", i), "brand=Acme")
	}
	n.stabilize()
	for i := range 10 {
		if d, _ := n.nodes["C"].r.Doc("Item", fmt.Sprintf("ITEM-%02d", i)); d.View().Fields["description"] != crdt.Str(big) {
			t.Fatalf("ITEM-%02d did not reach C whole", i)
		}
	}
	if n.maxMsg > bound {
		t.Fatalf("largest message %d bytes, bound %d", n.maxMsg, bound)
	}
}
