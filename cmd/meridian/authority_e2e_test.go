package main

import (
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"meridian/crdt"
	"meridian/node"
)

// newMeshSite initialises a site that pins the mesh's authority.
func newMeshSite(t *testing.T, name, authority, mesh string) *site {
	t.Helper()
	s := &site{t: t, name: name, dir: filepath.Join(t.TempDir(), name)}
	if out, err := meridian(t, "init", "--data", s.dir, "--listen", "/ip4/127.0.0.1/tcp/0", "--authority", authority, "--mesh", mesh); err != nil {
		t.Fatalf("init %s: %v\n%s", name, err, out)
	}
	return s
}

func (s *site) id() string {
	s.t.Helper()
	var out struct {
		PeerID string `json:"peer_id"`
	}
	if err := json.Unmarshal([]byte(s.must("id", "--json")), &out); err != nil {
		s.t.Fatal(err)
	}
	return out.PeerID
}

// has reports whether the site holds a document (visible).
func (s *site) has(dt, name string) bool {
	_, err := s.run("doc", "get", dt, name, "--json")
	return err == nil
}

func (s *site) field(dt, name, field string) string {
	out, err := s.run("doc", "get", dt, name, "--json")
	if err != nil {
		return ""
	}
	var m map[string]any
	if json.Unmarshal([]byte(out), &m) != nil {
		return ""
	}
	if d, ok := m["data"].(map[string]any); ok {
		m = d
	}
	v, _ := m[field].(string)
	return v
}

func (s *site) consumers() []node.Consumer {
	s.t.Helper()
	var cs []node.Consumer
	if err := json.Unmarshal([]byte(s.must("consumers", "--json")), &cs); err != nil {
		s.t.Fatal(err)
	}
	return cs
}

// The scenario of the authority issue, with real processes: an authority
// site (head office) and three sites.
func TestAuthorityGrantsSubscriptionsAndConditions(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	h := newSite(t, "H")
	keyOut := h.must("authority", "init", "--mesh", "acme", "--json")
	var k struct {
		PublicKey string `json:"public_key"`
		Mesh      string `json:"mesh"`
		Pinned    bool   `json:"pinned"`
	}
	if err := json.Unmarshal([]byte(keyOut), &k); err != nil || !k.Pinned || k.Mesh != "acme" {
		t.Fatalf("authority init: %v %+v\n%s", err, k, keyOut)
	}
	if info, err := os.Stat(filepath.Join(h.dir, node.AuthorityKeyFile)); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("authority key file: %v %v", info, err)
	}
	h.start()
	a := newMeshSite(t, "A", k.PublicKey, k.Mesh) // reads Wholesale customers only
	b := newMeshSite(t, "B", k.PublicKey, k.Mesh) // reads all customers; forges writes
	c := newMeshSite(t, "C", k.PublicKey, k.Mesh) // no grant: subscribes, approved, revoked
	a.start()
	b.start("--unsafe-forge-writes")
	c.start()
	H, A, B, C := h.id(), a.id(), b.id(), c.id()
	t.Cleanup(func() {
		if t.Failed() {
			for _, s := range []*site{h, a, b, c} {
				if s.log != nil {
					t.Logf("---- %s log (tail)\n%s", s.name, tail(s.log.String(), 6000))
				}
			}
		}
	})

	h.must("authority", "grant", H, "Customer", "--write")
	h.must("authority", "grant", A, "Customer", "--read", "--where", `doc.customer_group == "Wholesale"`)
	h.must("authority", "grant", B, "Customer", "--read")
	// A condition that does not compile is refused before anything is signed.
	if out, err := h.run("authority", "grant", A, "Customer", "--read", "--where", "doc.customer_group =="); err == nil || !strings.Contains(out, "--where") {
		t.Fatalf("a bad condition was accepted: %v\n%s", err, out)
	}
	for _, s := range []*site{a, b, c} {
		s.must("peers", "add", h.addr())
	}

	h.must("doc", "put", "Customer", "CUST-W1", "--json", `{"customer_name": "Wholesale One", "customer_group": "Wholesale", "territory": "North"}`)
	h.must("doc", "put", "Customer", "CUST-R1", "--json", `{"customer_name": "Retail One", "customer_group": "Retail", "territory": "South"}`)
	h.must("doc", "put", "Customer", "CUST-R2", "--json", `{"customer_name": "Retail Two", "customer_group": "Retail"}`)

	// B reads everything; A only the Wholesale customer.
	converged(t, 30*time.Second, "Customer", h, b)
	waitFor(t, 30*time.Second, "A to receive CUST-W1", func() bool { return a.has("Customer", "CUST-W1") })
	// C has no grant and is not admitted: nothing.
	time.Sleep(3 * time.Second)
	if a.has("Customer", "CUST-R1") || a.has("Customer", "CUST-R2") {
		t.Fatal("A received a Retail customer its condition excludes")
	}
	if c.has("Customer", "CUST-W1") || c.has("Customer", "CUST-R1") {
		t.Fatal("C received Customers without a grant")
	}

	// A Retail customer becomes Wholesale: it appears on A, whole.
	h.must("doc", "put", "Customer", "CUST-R1", "--json", `{"customer_group": "Wholesale"}`)
	waitFor(t, 30*time.Second, "CUST-R1 to appear on A", func() bool { return a.has("Customer", "CUST-R1") })
	if got := a.field("Customer", "CUST-R1", "territory"); got != "South" {
		t.Fatalf("CUST-R1 arrived on A without its earlier fields: territory %q", got)
	}
	if got := a.field("Customer", "CUST-R1", "customer_name"); got != "Retail One" {
		t.Fatalf("CUST-R1 on A: customer_name %q", got)
	}

	// A read-only site's forged write is refused by every other site.
	b.must("doc", "put", "Customer", "CUST-FORGED", "--json", `{"customer_name": "Forged", "customer_group": "Wholesale"}`)
	waitFor(t, 30*time.Second, "H to reject B's forged write", func() bool {
		return strings.Contains(h.log.String(), "may only read Customer")
	})
	waitFor(t, 30*time.Second, "A to reject B's forged write", func() bool {
		return strings.Contains(a.log.String(), "may only read Customer")
	})
	time.Sleep(2 * time.Second)
	if h.has("Customer", "CUST-FORGED") || a.has("Customer", "CUST-FORGED") {
		t.Fatal("a forged write by a read-only site was applied")
	}

	// C subscribes; the authority sees the request and approves it.
	c.must("subscribe", "Customer")
	waitFor(t, 30*time.Second, "H to see C's request", func() bool {
		for _, cs := range h.consumers() {
			if cs.Site == C && cs.Doctype == "Customer" && cs.Status == "requested" {
				return true
			}
		}
		return false
	})
	if c.has("Customer", "CUST-W1") {
		t.Fatal("C received Customers before approval")
	}
	h.must("authority", "approve", C, "Customer")
	waitFor(t, 60*time.Second, "C to receive the full current state", func() bool {
		return c.has("Customer", "CUST-W1") && c.has("Customer", "CUST-R1") && c.has("Customer", "CUST-R2")
	})
	converged(t, 30*time.Second, "Customer", h, c)

	// Revoked: C receives no new updates.
	h.must("authority", "revoke", C, "Customer")
	waitFor(t, 30*time.Second, "C to learn of its revocation", func() bool {
		var st node.Status
		if err := json.Unmarshal([]byte(c.must("status", "--json")), &st); err != nil || st.Authority == nil {
			return false
		}
		for _, g := range st.Authority.Grants {
			if g.Doctype == "Customer" && !g.Read && !g.Write {
				return true
			}
		}
		return false
	})
	h.must("doc", "put", "Customer", "CUST-NEW", "--json", `{"customer_name": "After revocation", "customer_group": "Wholesale"}`)
	waitFor(t, 30*time.Second, "B to receive CUST-NEW", func() bool { return b.has("Customer", "CUST-NEW") })
	time.Sleep(4 * time.Second) // several sync rounds
	if c.has("Customer", "CUST-NEW") {
		t.Fatal("C received an update after its grant was revoked")
	}

	// consumers: every site with its registration and report.
	waitFor(t, 30*time.Second, "reports from A and B", func() bool {
		seen := 0
		for _, cs := range h.consumers() {
			if (cs.Site == A || cs.Site == B) && cs.LastSeen > 0 && cs.Doctype == "Customer" {
				seen++
			}
		}
		return seen == 2
	})
	out := h.must("consumers")
	for _, want := range []string{"write", "read where doc.customer_group", "revoked"} {
		if !strings.Contains(out, want) {
			t.Fatalf("consumers lacks %q:\n%s", want, out)
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Master versions: a site pinned to an old version keeps writing under it;
// deprecated, its writes are applied and flagged; retired, they are
// rejected everywhere with a reason, and the site itself refuses new ones.
func TestAuthorityVersionLattice(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	h := newSite(t, "H")
	var k struct {
		PublicKey string `json:"public_key"`
		Mesh      string `json:"mesh"`
	}
	if err := json.Unmarshal([]byte(h.must("authority", "init", "--json")), &k); err != nil {
		t.Fatal(err)
	}
	h.start()
	b := newMeshSite(t, "B", k.PublicKey, k.Mesh)
	f, err := os.OpenFile(filepath.Join(b.dir, node.ConfigFile), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("\n[versions]\nItem = 1\n") // B's Frappe still has version 1 of Item
	f.Close()
	b.start()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- H log (tail)\n%s\n---- B log (tail)\n%s", tail(h.log.String(), 5000), tail(b.log.String(), 5000))
		}
	})
	H, B := h.id(), b.id()
	h.must("authority", "grant", H, "Item", "--write")
	h.must("authority", "grant", B, "Item", "--write")
	if out := h.must("authority", "version", "publish", "Item", "--schema", "testdata/item_v1.json"); !strings.Contains(out, "Item version 1") {
		t.Fatalf("publish v1: %s", out)
	}
	if out, err := h.run("authority", "version", "publish", "Item", "--schema", "testdata/item_v1.json"); err == nil || !strings.Contains(out, "already has this schema") {
		t.Fatalf("publishing the same schema twice: %v\n%s", err, out)
	}
	h.must("authority", "version", "publish", "Item", "--schema", "testdata/item_v2.json")
	b.must("peers", "add", h.addr())
	waitFor(t, 30*time.Second, "B to receive its grant and both versions", func() bool {
		var vs []node.VersionJSON
		if json.Unmarshal([]byte(b.must("versions", "Item", "--json")), &vs) != nil || len(vs) != 2 {
			return false
		}
		st := b.status()
		return st.Authority != nil && st.Authority.Admitted && len(st.Authority.Grants) == 1 && st.Authority.Grants[0].Write
	})

	b.must("doc", "put", "Item", "ITEM-B1", "--json", `{"item_name": "Written under v1"}`)
	h.must("doc", "put", "Item", "ITEM-H1", "--json", `{"item_name": "Written under v2"}`)
	converged(t, 30*time.Second, "Item", h, b)

	// versions shows who runs what, from the sites' reports.
	waitFor(t, 30*time.Second, "reports of the versions in use", func() bool {
		var vs []node.VersionJSON
		if json.Unmarshal([]byte(h.must("versions", "Item", "--json")), &vs) != nil || len(vs) != 2 {
			return false
		}
		return len(vs[0].Sites) == 1 && vs[0].Sites[0] == B && len(vs[1].Sites) == 1 && vs[1].Sites[0] == H && vs[1].Current
	})

	// Deprecated: accepted and flagged.
	h.must("authority", "version", "deprecate", "Item", "1")
	waitFor(t, 30*time.Second, "B to learn v1 is deprecated", func() bool {
		return strings.Contains(b.must("versions", "Item"), "deprecated")
	})
	b.must("doc", "put", "Item", "ITEM-B2", "--json", `{"item_name": "Under deprecated v1"}`)
	waitFor(t, 30*time.Second, "H to apply and flag ITEM-B2", func() bool {
		return h.has("Item", "ITEM-B2") && strings.Contains(h.log.String(), "deprecated version 1 of Item")
	})

	// Retired while B is cut off: B's next write (made before it learns)
	// is rejected by H with the reason in its log.
	b.must("network", "pause")
	h.must("authority", "version", "retire", "Item", "1")
	b.must("doc", "put", "Item", "ITEM-B3", "--json", `{"item_name": "Under retired v1"}`)
	b.must("network", "resume")
	waitFor(t, 30*time.Second, "H to reject ITEM-B3", func() bool {
		return strings.Contains(h.log.String(), "retired version (1); that site must move to version 2")
	})
	waitFor(t, 30*time.Second, "B to learn v1 is retired", func() bool {
		return strings.Contains(b.must("versions", "Item"), "retired")
	})
	if h.has("Item", "ITEM-B3") {
		t.Fatal("H applied a write made under a retired version")
	}
	// B now refuses to write under the retired version itself.
	out, err := b.run("doc", "put", "Item", "ITEM-B4", "--json", `{"item_name": "x"}`)
	if err == nil || !strings.Contains(out, "retired") {
		t.Fatalf("B wrote under a retired version: %v\n%s", err, out)
	}
	// The retired version cannot come back.
	h.must("authority", "version", "deprecate", "Item", "1")
	if !strings.Contains(h.must("versions", "Item"), "retired") {
		t.Fatal("a retired version moved back")
	}
}

// consumers shows every site's true state within a report interval: one
// site on a deprecated version, one gone offline (last seen, behind);
// retiring the old version stops its writes everywhere; bad records are
// refused with clear reasons and change nothing.
func TestAuthorityConsumersOfflineDeprecatedAndBadRecords(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	h := newSite(t, "H")
	var k struct {
		PublicKey string `json:"public_key"`
		Mesh      string `json:"mesh"`
	}
	if err := json.Unmarshal([]byte(h.must("authority", "init", "--json")), &k); err != nil {
		t.Fatal(err)
	}
	h.start()
	b := newMeshSite(t, "B", k.PublicKey, k.Mesh)
	f, _ := os.OpenFile(filepath.Join(b.dir, node.ConfigFile), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("\n[versions]\nItem = 1\n")
	f.Close()
	c := newMeshSite(t, "C", k.PublicKey, k.Mesh)
	d := newMeshSite(t, "D", k.PublicKey, k.Mesh)
	for _, s := range []*site{b, c, d} {
		s.start()
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, s := range []*site{h, b, c} {
				t.Logf("---- %s log (tail)\n%s", s.name, tail(s.log.String(), 3000))
			}
		}
	})
	H, B, C, D := h.id(), b.id(), c.id(), d.id()
	for _, s := range []string{H, B, C, D} {
		h.must("authority", "grant", s, "Item", "--write")
	}
	h.must("authority", "version", "publish", "Item", "--schema", "testdata/item_v1.json")
	h.must("authority", "version", "publish", "Item", "--schema", "testdata/item_v2.json")
	for _, s := range []*site{b, c, d} {
		s.must("peers", "add", h.addr())
	}
	for _, s := range []*site{b, c, d} {
		s := s
		waitFor(t, 30*time.Second, s.name+"'s grant and both versions", func() bool {
			st := s.status()
			var vs []node.VersionJSON
			if json.Unmarshal([]byte(s.must("versions", "Item", "--json")), &vs) != nil || len(vs) != 2 {
				return false
			}
			return st.Authority != nil && st.Authority.Admitted && len(st.Authority.Grants) == 1 && st.Authority.Grants[0].Write
		})
	}
	for _, s := range []*site{b, c, d} {
		s.must("doc", "put", "Item", "FROM-"+s.name, "--json", `{"item_name": "from `+s.name+`"}`)
	}
	byKey := func() map[string]node.Consumer {
		out := map[string]node.Consumer{}
		for _, cs := range h.consumers() {
			if cs.Doctype == "Item" {
				out[cs.Site] = cs
			}
		}
		return out
	}
	waitFor(t, 30*time.Second, "reports with each site's version", func() bool {
		m := byKey()
		return m[B].Version == 1 && m[C].Version == 2 && m[D].Version == 2 && m[B].Status == "write"
	})
	h.must("authority", "version", "deprecate", "Item", "1")
	d.stop() // D goes offline
	h.must("doc", "put", "Item", "AFTER-D", "--json", `{"item_name": "written while D is away"}`)
	time.Sleep(3 * time.Second) // three report intervals
	m := byKey()
	now := time.Now().UnixMilli()
	if age := now - m[D].LastSeen; age < 2500 {
		t.Fatalf("D is offline but was last seen %d ms ago", age)
	}
	for _, s := range []string{B, C} {
		if age := now - m[s].LastSeen; age > 2500 {
			t.Fatalf("%s is online but was last seen %d ms ago (reports every second)", s, age)
		}
	}
	if m[D].Behind < 1 {
		t.Fatalf("D missed AFTER-D but is %d behind", m[D].Behind)
	}
	if m[B].Version != 1 || !strings.Contains(h.must("versions", "Item"), "deprecated") {
		t.Fatalf("B's version %d / versions:\n%s", m[B].Version, h.must("versions", "Item"))
	}
	if out := h.must("consumers"); !strings.Contains(out, shortSite(D)) || !strings.Contains(out, "ago") {
		t.Fatalf("consumers:\n%s", out)
	}

	// Retired: B's writes under version 1 stop everywhere, with a reason.
	b.must("network", "pause")
	h.must("authority", "version", "retire", "Item", "1")
	b.must("doc", "put", "Item", "B-UNDER-V1", "--json", `{"item_name": "written under a retired version"}`)
	b.must("network", "resume")
	for _, s := range []*site{h, c} {
		s := s
		waitFor(t, 30*time.Second, s.name+" to reject B's write under the retired version", func() bool {
			return strings.Contains(s.log.String(), "retired version (1); that site must move to version 2")
		})
		if s.has("Item", "B-UNDER-V1") {
			t.Fatalf("%s applied a write made under a retired version", s.name)
		}
	}

	// Bad records: refused with the reason, nothing changed.
	before := h.must("records", "list", "--json")
	key, err := node.LoadAuthorityKey(filepath.Join(h.dir, node.AuthorityKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	_, stranger, _ := ed25519.GenerateKey(nil)
	nowMs := time.Now().UnixMilli()
	bad := []struct {
		rec  crdt.Record
		key  ed25519.PrivateKey
		want string
	}{
		{crdt.Record{Kind: crdt.RecordGrant, Mesh: key.Mesh, Site: crdt.SiteID(C), Doctype: "Item", Read: true, Issued: nowMs + 3600_000}, key.Key, "dated in the future"},
		{crdt.Record{Kind: crdt.RecordGrant, Mesh: key.Mesh, Site: crdt.SiteID(C), Doctype: "Item", Read: true, Issued: nowMs - 7200_000, Expires: nowMs - 3600_000}, key.Key, "expired"},
		{crdt.Record{Kind: crdt.RecordReport, Mesh: key.Mesh, Site: crdt.SiteID(C), Issued: nowMs, Report: &crdt.SiteReport{Versions: map[string]uint64{"Item": 9}}}, stranger, "signed by"},
		{crdt.Record{Kind: crdt.RecordGrant, Mesh: key.Mesh, Site: crdt.SiteID(C), Doctype: "Item", Write: true, Issued: nowMs}, stranger, "not this mesh's authority"},
		{crdt.Record{Kind: crdt.RecordGrant, Mesh: "another-mesh", Site: crdt.SiteID(C), Doctype: "Item", Read: true, Issued: nowMs}, key.Key, "another-mesh"},
	}
	for _, x := range bad {
		r := x.rec
		r.Sign(x.key)
		file := filepath.Join(t.TempDir(), "records")
		os.WriteFile(file, []byte(node.EncodeRecordText(&r)+"\n"), 0o600)
		out, err := h.run("records", "import", file)
		if err == nil || !strings.Contains(out, x.want) {
			t.Errorf("a bad %s record: %v\n%s (want %q)", r.Kind, err, out, x.want)
		}
	}
	if out, err := h.run("authority", "grant", C, strings.Repeat("X", 141), "--read"); err == nil || !strings.Contains(out, "141") {
		t.Errorf("a doctype name over 140 characters was accepted: %v\n%s", err, out)
	}
	if out, err := h.run("authority", "version", "deprecate", "Nonexistent", "3"); err == nil || !strings.Contains(out, "not known") {
		t.Errorf("deprecating an unknown version: %v\n%s", err, out)
	}
	if after := h.must("records", "list", "--json"); !sameRecords(before, after) {
		t.Fatal("refused records changed the authority's state")
	}
}

// sameRecords compares two `records list --json` outputs by their records.
func sameRecords(a, b string) bool {
	var x, y []node.RecordJSON
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	keep := func(rs []node.RecordJSON) map[string]string {
		m := map[string]string{}
		for _, r := range rs {
			if r.Kind != "report" { // sites keep reporting meanwhile
				m[r.Key] = r.Record
			}
		}
		return m
	}
	mx, my := keep(x), keep(y)
	if len(mx) != len(my) {
		return false
	}
	for k, v := range mx {
		if my[k] != v {
			return false
		}
	}
	return true
}

// An authority key kept outside any node signs records offline; any node of
// the mesh imports them.
func TestAuthorityKeyOfflineSigningAndImport(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	dir := t.TempDir()
	keyFile, recs := filepath.Join(dir, "authority.json"), filepath.Join(dir, "records.txt")
	var k struct {
		PublicKey string `json:"public_key"`
		Mesh      string `json:"mesh"`
		Pinned    bool   `json:"pinned"`
	}
	out, err := meridian(t, "authority", "init", "--key", keyFile, "--mesh", "offline", "--json")
	if err != nil || json.Unmarshal([]byte(out), &k) != nil || k.Pinned || k.Mesh != "offline" {
		t.Fatalf("authority init --key: %v\n%s", err, out)
	}
	if info, err := os.Stat(keyFile); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file %v %v", info, err)
	}
	if out, err := meridian(t, "authority", "init", "--key", keyFile); err == nil || !strings.Contains(out, "never overwritten") {
		t.Fatalf("a second init over the key: %v\n%s", err, out)
	}
	x := newMeshSite(t, "X", k.PublicKey, k.Mesh)
	x.start()
	X := x.id()
	x.must("authority", "admit", X, "--key", keyFile, "--out", recs)
	x.must("authority", "grant", X, "Item", "--write", "--key", keyFile, "--out", recs)
	if st := x.status(); st.Authority == nil || st.Authority.Admitted {
		t.Fatal("signing offline changed the node")
	}
	out = x.must("records", "import", recs)
	if strings.Count(out, "signed and sent to the mesh") != 2 {
		t.Fatalf("records import:\n%s", out)
	}
	waitFor(t, 10*time.Second, "X admitted with its grant", func() bool {
		st := x.status()
		return st.Authority != nil && st.Authority.Admitted && len(st.Authority.Grants) == 1
	})
	if out := x.must("records", "import", recs); strings.Count(out, "already in effect") != 2 {
		t.Fatalf("importing again:\n%s", out)
	}
	x.must("doc", "put", "Item", "OFFLINE-1", "--json", `{"item_name": "signed offline"}`)
}
