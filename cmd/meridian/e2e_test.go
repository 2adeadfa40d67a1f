package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestThreeSitesLearnTheWholeMeshAndReplicate(t *testing.T) {
	sites := mesh(t, 3)
	// C was told only B, and A nobody: memberlist tells everyone everyone.
	for _, s := range sites {
		waitFor(t, 20*time.Second, s.name+" connected to both others", func() bool {
			n := 0
			for _, p := range s.status().Peers {
				if p.Connected {
					n++
				}
			}
			return n == 2
		})
	}
	for i, s := range sites {
		s.must("doc", "put", "Item", fmt.Sprintf("ITEM-%c", 'A'+i), "--json", fmt.Sprintf(`{"item_name":"from %s","standard_rate":"%d.50"}`, s.name, i))
	}
	for _, s := range sites {
		for i := range sites {
			name := fmt.Sprintf("ITEM-%c", 'A'+i)
			waitFor(t, 10*time.Second, name+" on "+s.name, func() bool {
				out, err := s.run("doc", "get", "Item", name, "--json")
				return err == nil && strings.Contains(out, fmt.Sprintf(`"item_name": "from %c"`, 'A'+i))
			})
		}
	}
	converged(t, 10*time.Second, "Item", sites...)
}

// kill -9 of a site while writes stream: after its restart everything
// converges, and no write that any site acknowledged is lost.
func TestKillNineWhileWritingLosesNoAcknowledgedWrite(t *testing.T) {
	sites := mesh(t, 3)
	a, b := sites[0], sites[1]
	var mu sync.Mutex
	acked := map[string]string{} // name → site that acknowledged it
	stop := make(chan bool)
	var wg sync.WaitGroup
	for _, w := range []*site{a, b} {
		wg.Add(1)
		go func(w *site) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("%s-%04d", w.name, i)
				if _, err := w.run("doc", "put", "Item", name, "--json", `{"item_name":"x"}`); err == nil {
					mu.Lock()
					acked[name] = w.name
					mu.Unlock()
				}
			}
		}(w)
	}
	time.Sleep(1500 * time.Millisecond)
	a.kill() // the writer itself dies mid-stream
	time.Sleep(500 * time.Millisecond)
	a.start()
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()
	converged(t, 30*time.Second, "Item", sites...)
	mu.Lock()
	defer mu.Unlock()
	if len(acked) < 10 {
		t.Fatalf("only %d writes were acknowledged; the test did not exercise much", len(acked))
	}
	for _, s := range sites {
		var list []map[string]string
		if err := json.Unmarshal([]byte(s.must("doc", "list", "Item", "--json")), &list); err != nil {
			t.Fatal(err)
		}
		have := map[string]bool{}
		for _, d := range list {
			have[d["name"]] = true
		}
		for name, by := range acked {
			if !have[name] {
				t.Errorf("%s lacks %s, acknowledged by %s", s.name, name, by)
			}
		}
	}
}

// A site cut off from the mesh catches up through anti-entropy ranges of
// what it missed, not a resend of the whole state.
func TestCutOffSiteCatchesUpThroughRangesNotAFullResync(t *testing.T) {
	sites := mesh(t, 3)
	a, c := sites[0], sites[2]
	long := strings.Repeat("d", 2000)
	for i := 0; i < 150; i++ {
		a.must("doc", "put", "Item", fmt.Sprintf("ITEM-%03d", i), "--json", fmt.Sprintf(`{"item_name":"n%d","description":"%s"}`, i, long))
	}
	converged(t, 20*time.Second, "Item", sites...)
	stateBytes := 150 * 2000.0
	c.must("network", "pause")
	for i := 0; i < 40; i++ {
		a.must("doc", "put", "Item", fmt.Sprintf("ITEM-%03d", i), "--json", fmt.Sprintf(`{"item_name":"changed %d"}`, i))
	}
	served := c.metric("meridian_bytes_in_total{type=\"serve\"}")
	c.must("network", "resume")
	converged(t, 30*time.Second, "Item", sites...)
	got := c.metric("meridian_bytes_in_total{type=\"serve\"}") - served
	t.Logf("catch-up of 40 changed Items out of 150: %.0f bytes served to the cut-off site (full state ≈ %.0f bytes)", got, stateBytes)
	if got <= 0 {
		t.Fatal("nothing was served: the site did not catch up through anti-entropy")
	}
	if got > stateBytes/4 {
		t.Fatalf("%.0f bytes served for 40 small changes: that is a resync of the state, not of the missing ranges", got)
	}
	out := c.must("doc", "get", "Item", "ITEM-007", "--json")
	if !strings.Contains(out, "changed 7") || !strings.Contains(out, long[:50]) {
		t.Fatalf("ITEM-007 on the caught-up site:\n%s", out)
	}
}

func TestAdminAPIWithoutTokenAnswers401(t *testing.T) {
	s := newSite(t, "A")
	s.start()
	c, err := newClient(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	c.token = "wrong"
	err = c.call(t.Context(), "GET", "/api/status", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "bearer token") {
		t.Fatalf("err = %v; want a 401 naming the token", err)
	}
}

// A document edit too large to fit in one message would never replicate:
// the node refuses it with 413 and what to do, and keeps nothing of it.
func TestAnEditTooLargeToReplicateIsRefused(t *testing.T) {
	s := newSite(t, "A")
	s.start()
	c, err := newClient(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	body := `{"item_name": "big", "description": "` + strings.Repeat("x", 3<<20) + `"}`
	req, err := http.NewRequestWithContext(t.Context(), "PUT", c.base+"/api/resource/Item/BIG-1", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(msg), "split it into several edits") {
		t.Fatalf("PUT of a 3 MiB field: %s %s; want 413 saying what to do", resp.Status, msg)
	}
	if out, err := s.run("doc", "get", "Item", "BIG-1"); err == nil {
		t.Fatalf("the refused document exists:\n%s", out)
	}
	s.must("doc", "put", "Item", "SMALL-1", "--json", `{"item_name": "small"}`)
}

func TestPeersAddWithAMalformedMultiaddrSaysWhatIsWrong(t *testing.T) {
	s := newSite(t, "A")
	s.start()
	for addr, want := range map[string]string{
		"/ip4/1.2.3.4/tcp/4001":            "/p2p/",
		"1.2.3.4:4001":                     "multiaddr",
		"/ip4/999.1.1.1/tcp/1/p2p/12D3Koo": "",
	} {
		out, err := s.run("peers", "add", addr)
		if err == nil || !strings.Contains(out, "meridian:") || !strings.Contains(out, want) {
			t.Errorf("peers add %q: err %v, output %q; want an error mentioning %q", addr, err, out, want)
		}
	}
}

func TestNodeStopsCleanlyOnSIGTERM(t *testing.T) {
	s := newSite(t, "A")
	s.start()
	s.must("doc", "put", "Customer", "CUST-1", "--json", `{"customer_name":"Acme"}`)
	s.stop()
	if !strings.Contains(s.log.String(), "node stopped") {
		t.Fatalf("no clean shutdown in the log:\n%s", s.log)
	}
	s.start()
	if out := s.must("doc", "get", "Customer", "CUST-1", "--json"); !strings.Contains(out, "Acme") {
		t.Fatalf("after restart: %s", out)
	}
}

// verify proves two settled sites hold the same masters, and names the
// document a fault changed behind one site's store.
func TestVerifyNamesADocumentDamagedBehindTheStore(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	sites := mesh(t, 2)
	a, b := sites[0], sites[1]
	for i := range 30 {
		a.must("doc", "put", "Item", fmt.Sprintf("ITEM-%02d", i), "--json", fmt.Sprintf(`{"item_name": "item %d", "stock_uom": "Nos"}`, i))
	}
	converged(t, 30*time.Second, "Item", a, b)
	if out := b.must("verify", "--peer", a.id()); !strings.Contains(out, "identical") {
		t.Fatalf("verify of converged sites:\n%s", out)
	}
	b.stop()
	b.must("debug", "tamper", "Item", "ITEM-17", "--field", "item_name", "--value", "bit rot")
	b.start()
	b.must("peers", "add", a.addr())
	waitFor(t, 30*time.Second, "B to reconnect", func() bool { return len(b.status().Peers) > 0 && b.status().Peers[0].Connected })
	out, err := b.run("verify", "--peer", a.id())
	if err == nil || !strings.Contains(out, "ITEM-17") || !strings.Contains(out, "DIVERGENT") {
		t.Fatalf("verify did not name the damaged document: %v\n%s", err, out)
	}
	if strings.Count(out, "ITEM-") != 1 {
		t.Fatalf("verify named more than the damaged document:\n%s", out)
	}
	// The other side sees it too, and so do the status and the metric.
	if out, err := a.run("verify", "--peer", b.id(), "Item"); err == nil || !strings.Contains(out, "ITEM-17") {
		t.Fatalf("A's verify: %v\n%s", err, out)
	}
	if v := a.metric(`meridian_verify_divergent_documents{doctype="Item"}`); v != 1 {
		t.Fatalf("divergent-documents metric %v", v)
	}
}

// Two sites edit the same field while partitioned: after the heal both show
// the same winner and list the conflict; resolving it clears it everywhere.
func TestConflictResolvedOnOneSiteClearsEverywhere(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	sites := mesh(t, 2)
	a, b := sites[0], sites[1]
	a.must("doc", "put", "Item", "HAMMER", "--json", `{"item_name": "Hammer"}`)
	converged(t, 30*time.Second, "Item", a, b)
	b.must("network", "pause")
	a.must("doc", "put", "Item", "HAMMER", "--json", `{"item_name": "Claw hammer"}`)
	b.must("doc", "put", "Item", "HAMMER", "--json", `{"item_name": "Sledge hammer"}`)
	b.must("network", "resume")
	converged(t, 30*time.Second, "Item", a, b)
	for _, s := range []*site{a, b} {
		out := s.must("conflicts", "Item")
		if !strings.Contains(out, "Claw hammer") || !strings.Contains(out, "Sledge hammer") {
			t.Fatalf("%s does not list the conflict:\n%s", s.name, out)
		}
	}
	if a.field("Item", "HAMMER", "item_name") != b.field("Item", "HAMMER", "item_name") {
		t.Fatal("the sites show different winners")
	}
	if out, err := a.run("conflicts", "resolve", "Item", "HAMMER", "item_group", "--value", "Tools"); err == nil || !strings.Contains(out, "no conflict") {
		t.Fatalf("resolving a field without a conflict: %v\n%s", err, out)
	}
	a.must("conflicts", "resolve", "Item", "HAMMER", "item_name", "--value", "Hammer (claw)")
	converged(t, 30*time.Second, "Item", a, b)
	for _, s := range []*site{a, b} {
		if out := s.must("conflicts", "Item"); !strings.Contains(out, "no conflicts") {
			t.Fatalf("%s still lists a conflict:\n%s", s.name, out)
		}
		if v := s.field("Item", "HAMMER", "item_name"); v != "Hammer (claw)" {
			t.Fatalf("%s shows %q", s.name, v)
		}
	}
}

// doc history shows which site changed which field to what, and when.
func TestDocHistoryShowsWhoChangedWhat(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	sites := mesh(t, 2)
	a, b := sites[0], sites[1]
	a.must("doc", "put", "Item", "DRILL", "--json", `{"item_name": "Drill", "barcodes": [{"name": "bc1", "barcode": "123"}]}`)
	converged(t, 30*time.Second, "Item", a, b)
	b.must("doc", "put", "Item", "DRILL", "--json", `{"item_name": "Cordless drill"}`)
	converged(t, 30*time.Second, "Item", a, b)
	for _, s := range []*site{a, b} {
		out := s.must("doc", "history", "Item", "DRILL")
		iA, iB := strings.Index(out, "Drill"), strings.Index(out, "Cordless drill")
		if iA < 0 || iB < iA || !strings.Contains(out, shortSite(a.id())) || !strings.Contains(out, shortSite(b.id())) ||
			!strings.Contains(out, "(created)") || !strings.Contains(out, "barcodes[bc1].barcode") {
			t.Fatalf("%s's history of DRILL:\n%s", s.name, out)
		}
	}
}
