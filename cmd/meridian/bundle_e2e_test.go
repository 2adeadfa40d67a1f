package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// bulkPut writes item_name on many Items through the admin API, eight at a time.
func bulkPut(t testing.TB, s *site, from, to int, value string) {
	t.Helper()
	c, err := newClient(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	names := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range names {
				body := []byte(fmt.Sprintf(`{"item_name": "%s %d"}`, value, i))
				if err := c.call(context.Background(), "PUT", resourcePath("Item", fmt.Sprintf("ITEM-%05d", i)), body, nil); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := from; i < to; i++ {
		names <- i
	}
	close(names)
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
}

// Two sites that never connect: 10,000 Items changed on both sides, bundles
// carried back and forth twice, in shuffled order, one duplicated — both
// reach equal digests. A tampered or truncated bundle is refused whole.
func TestBundlesConvergeTwoSitesThatNeverConnect(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	a := newSite(t, "A")
	b := newSite(t, "B")
	a.start()
	b.start()
	dir := t.TempDir()
	f := func(name string) string { return filepath.Join(dir, name) }
	bulkPut(t, a, 0, 10_000, "from A")
	bulkPut(t, b, 5_000, 15_000, "from B") // half of them the same Items: conflicts
	A, B := a.id(), b.id()

	// Round one.
	a.must("bundle", "export", "--for", B, "-o", f("a1"))
	b.must("bundle", "export", "--for", A, "-o", f("b1"))
	before := digestOf(b.status(), "Item")
	for name, mangle := range map[string]func([]byte) []byte{
		"tampered":  func(d []byte) []byte { d = append([]byte(nil), d...); d[len(d)/2] ^= 0x40; return d },
		"truncated": func(d []byte) []byte { return d[:len(d)*2/3] },
	} {
		data, _ := os.ReadFile(f("a1"))
		os.WriteFile(f(name), mangle(data), 0o600)
		out, err := b.run("bundle", "import", f(name))
		if err == nil || !strings.Contains(out, "nothing applied") {
			t.Fatalf("a %s bundle: %v\n%s", name, err, out)
		}
	}
	if digestOf(b.status(), "Item") != before {
		t.Fatal("a refused bundle changed B")
	}
	b.must("bundle", "import", f("a1"), "--reply", f("r1")) // B's reply: its changes and acknowledgement
	a.must("bundle", "import", f("r1"))
	a.must("bundle", "import", f("b1")) // older than r1: harmless
	a.must("bundle", "import", f("r1")) // duplicated
	converged(t, 10*time.Second, "Item", a, b)

	// Round two: more changes on both; exports leave out what was acknowledged.
	bulkPut(t, a, 0, 300, "A again")
	bulkPut(t, b, 14_700, 15_000, "B again")
	out := a.must("bundle", "export", "--for", B, "-o", f("a2"))
	b.must("bundle", "export", "--for", A, "-o", f("b2"))
	if st1, _ := os.Stat(f("a1")); st1 != nil {
		if st2, _ := os.Stat(f("a2")); st2 == nil || st2.Size()*5 > st1.Size() {
			t.Fatalf("the second bundle is not incremental (%d vs %d bytes): %s", st2.Size(), st1.Size(), out)
		}
	}
	a.must("bundle", "import", f("b2"))
	if out, err := b.run("bundle", "import", f("b1")); err == nil || !strings.Contains(out, "made by this site") {
		t.Fatalf("B imported its own bundle: %v\n%s", err, out)
	}
	b.must("bundle", "import", f("a2"))
	b.must("bundle", "import", f("a1")) // old and duplicated
	converged(t, 10*time.Second, "Item", a, b)
	if v := a.field("Item", "ITEM-14999", "item_name"); v != "B again 14999" {
		t.Fatalf("A has ITEM-14999 as %q", v)
	}
	if v := b.field("Item", "ITEM-00010", "item_name"); v != "A again 10" {
		t.Fatalf("B has ITEM-00010 as %q", v)
	}
}
