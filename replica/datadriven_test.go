package replica

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
	"meridian/crdt"
)

// TestProtocol runs the scripts in testdata/: each command drives the
// in-process network and prints what happened; golden output is refreshed
// with `go test ./replica -run TestProtocol -rewrite`.
//
// Commands:
//
//	stores badger               use Badger on disk for sites added after
//	max-message-bytes N         bound messages of sites added after
//	add-sites A B …             start sites
//	connect A B / disconnect A B
//	partition A B | C           cut every link between the two groups
//	heal                        restore every link
//	put A Item N f=v …          edit (creating the document if needed); f=dec:1.5 for decimals
//	delete A Item N
//	remove-row A Item N table row
//	process A …                 Ready → persist → send → Advance (all sites if none given)
//	deliver [to=B] [from=A] [type=push] [nth=N] [drop]   deliver (or drop) queued messages
//	queue                       list queued messages
//	stabilize                   process and deliver until quiet
//	tick MS                     advance every site's clock
//	crash B / restart B
//	show A Item N               the visible document as JSON
//	conflicts A Item N
//	digests Item                state digest and version vector of every site
func TestProtocol(t *testing.T) {
	datadriven.Walk(t, "testdata/protocol", func(t *testing.T, path string) {
		n := newTestNet(t)
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			return runCmd(t, n, d)
		})
	})
}

func runCmd(t *testing.T, n *testNet, d *datadriven.TestData) string {
	args := make([]string, 0, len(d.CmdArgs))
	for _, a := range d.CmdArgs {
		args = append(args, a.String())
	}
	site := func(i int) crdt.SiteID {
		if i >= len(args) {
			d.Fatalf(t, "%s: missing argument %d", d.Cmd, i+1)
		}
		id := crdt.SiteID(args[i])
		if n.nodes[id] == nil {
			d.Fatalf(t, "unknown site %s", id)
		}
		return id
	}
	var out strings.Builder
	switch d.Cmd {
	case "stores":
		dir := t.TempDir()
		n.open = func(id crdt.SiteID) DurableStore {
			s, err := OpenBadger(filepath.Join(dir, string(id)), BadgerOptions{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		}
		return "ok"
	case "max-message-bytes":
		v, err := strconv.Atoi(args[0])
		if err != nil {
			d.Fatalf(t, "%v", err)
		}
		n.cfg = func(c *Config) { c.MaxMessageBytes = v }
		return "ok"
	case "add-sites":
		for _, a := range args {
			n.add(crdt.SiteID(a))
		}
		return "ok"
	case "connect":
		n.connect(site(0), site(1))
		return n.drainLog()
	case "disconnect":
		n.disconnect(site(0), site(1))
		return "ok"
	case "partition":
		var left, right []crdt.SiteID
		side := &left
		for _, a := range args {
			if a == "|" {
				side = &right
				continue
			}
			*side = append(*side, crdt.SiteID(a))
		}
		for _, a := range left {
			for _, b := range right {
				n.cut[[2]crdt.SiteID{a, b}] = true
				n.cut[[2]crdt.SiteID{b, a}] = true
			}
		}
		return "ok"
	case "heal":
		n.cut = map[[2]crdt.SiteID]bool{}
		return "ok"
	case "put", "delete", "remove-row":
		id := site(0)
		if len(args) < 3 {
			d.Fatalf(t, "%s SITE DOCTYPE NAME …", d.Cmd)
		}
		dt, name := args[1], args[2]
		doc, err := n.nodes[id].r.Doc(dt, name)
		if err != nil {
			return "error: " + err.Error()
		}
		var ops []crdt.Op
		switch d.Cmd {
		case "put":
			if !doc.Exists() {
				ops = append(ops, crdt.Op{Kind: crdt.OpCreate})
			}
			for _, kv := range args[3:] {
				k, v, _ := strings.Cut(kv, "=")
				ops = append(ops, parseSet(t, d, k, v))
			}
		case "delete":
			ops = []crdt.Op{{Kind: crdt.OpDelete}}
		case "remove-row":
			ops = []crdt.Op{{Kind: crdt.OpRemoveRow, Table: args[3], Row: args[4]}}
		}
		dot, err := n.nodes[id].r.Propose(Proposal{Doctype: dt, Name: name, Ops: ops})
		if err != nil {
			return "error: " + err.Error()
		}
		return fmt.Sprintf("%s %s %s: %v", id, dt, name, dot)
	case "process":
		ids := n.order
		if len(args) > 0 {
			ids = nil
			for i := range args {
				ids = append(ids, site(i))
			}
		}
		for _, id := range ids {
			before := len(n.queue)
			rd, ok := n.process(id)
			if !ok {
				continue
			}
			fmt.Fprintf(&out, "%s: %d writes persisted", id, len(rd.Writes))
			if len(rd.Acked) > 0 {
				fmt.Fprintf(&out, ", acked %v", rd.Acked)
			}
			out.WriteString("\n")
			for _, m := range n.queue[before:] {
				fmt.Fprintf(&out, "  %s\n", fmtMsg(m))
			}
		}
		out.WriteString(n.drainLog())
		return strings.TrimSpace(out.String())
	case "deliver":
		var to, from, typ string
		drop, nth := false, 0
		for _, a := range d.CmdArgs {
			switch a.Key {
			case "to":
				to = a.Vals[0]
			case "from":
				from = a.Vals[0]
			case "type":
				typ = a.Vals[0]
			case "drop":
				drop = true
			case "nth":
				nth, _ = strconv.Atoi(a.Vals[0])
			}
		}
		match := func(m Message) bool {
			return (to == "" || string(m.To) == to) && (from == "" || string(m.From) == from) && (typ == "" || m.Type.String() == typ)
		}
		var picked, rest []Message
		seen := 0
		for _, m := range n.queue {
			if match(m) {
				seen++
			}
			if match(m) && (nth == 0 || seen == nth) {
				picked = append(picked, m)
			} else {
				rest = append(rest, m)
			}
		}
		n.queue = rest
		for _, m := range picked {
			if drop {
				fmt.Fprintf(&out, "dropped %s\n", fmtMsg(m))
				continue
			}
			fmt.Fprintf(&out, "%s\n", fmtMsg(m))
			if n.cut[[2]crdt.SiteID{m.From, m.To}] {
				out.WriteString("  (link cut: lost)\n")
				continue
			}
			if nd := n.nodes[m.To]; nd.down {
				out.WriteString("  (site down: lost)\n")
				continue
			}
			if err := n.nodes[m.To].r.Step(m); err != nil {
				fmt.Fprintf(&out, "  error: %v\n", err)
			}
		}
		out.WriteString(n.drainLog())
		if out.Len() == 0 {
			return "nothing to deliver"
		}
		return strings.TrimSpace(out.String())
	case "queue":
		for _, m := range n.queue {
			fmt.Fprintf(&out, "%s\n", fmtMsg(m))
		}
		if out.Len() == 0 {
			return "empty"
		}
		return strings.TrimSpace(out.String())
	case "stabilize":
		for i := 0; i < 100; i++ {
			moved := false
			for _, id := range n.order {
				before := len(n.queue)
				if _, ok := n.process(id); ok {
					moved = true
					for _, m := range n.queue[before:] {
						fmt.Fprintf(&out, "%s\n", fmtMsg(m))
					}
				}
			}
			if n.deliver(nil) > 0 {
				moved = true
			}
			if !moved {
				break
			}
		}
		out.WriteString(n.drainLog())
		if out.Len() == 0 {
			return "quiet"
		}
		return strings.TrimSpace(out.String())
	case "tick":
		ms, err := strconv.ParseInt(args[0], 10, 64)
		if err != nil {
			d.Fatalf(t, "tick MS: %v", err)
		}
		n.tick(ms)
		return "ok"
	case "crash":
		n.crash(site(0))
		return "ok"
	case "restart":
		id := site(0)
		n.restart(id)
		r := n.nodes[id].r
		var dts []string
		for _, dt := range r.Doctypes() {
			dts = append(dts, fmt.Sprintf("%s %v", dt, r.VersionVector(dt)))
		}
		return fmt.Sprintf("%s restarted: %s", id, strings.Join(dts, "; "))
	case "show":
		doc, err := n.nodes[site(0)].r.Doc(args[1], args[2])
		if err != nil {
			return "error: " + err.Error()
		}
		v := doc.View()
		if !v.Exists {
			return fmt.Sprintf("%s %s does not exist (causal length %d)", args[1], args[2], doc.CausalLength())
		}
		b, err := v.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	case "conflicts":
		doc, err := n.nodes[site(0)].r.Doc(args[1], args[2])
		if err != nil {
			return "error: " + err.Error()
		}
		for _, c := range doc.Conflicts() {
			fmt.Fprintf(&out, "%s:", c.Field)
			for i, v := range c.Values {
				mark := ""
				if i == c.Winner {
					mark = " (shown)"
				}
				fmt.Fprintf(&out, " %v by %v%s", v.Value, v.Dot, mark)
			}
			out.WriteString("\n")
		}
		if out.Len() == 0 {
			return "no conflicts"
		}
		return strings.TrimSpace(out.String())
	case "digests":
		dt := args[0]
		g := n.digests(dt)
		for _, id := range sortedSites(g) {
			fmt.Fprintf(&out, "%s: %s vv=%v\n", id, g[id], n.nodes[id].r.VersionVector(dt))
		}
		if n.converged(dt) {
			out.WriteString("converged")
		} else {
			out.WriteString("DIVERGED")
		}
		return out.String()
	}
	d.Fatalf(t, "unknown command %q", d.Cmd)
	return ""
}

func parseSet(t *testing.T, d *datadriven.TestData, k, v string) crdt.Op {
	val := crdt.Str(v)
	if strings.HasPrefix(v, "dec:") {
		var err error
		if val, err = crdt.Dec(v[4:]); err != nil {
			d.Fatalf(t, "%v", err)
		}
	}
	if table, rest, ok := strings.Cut(k, "/"); ok {
		row, field, _ := strings.Cut(rest, "/")
		if field == crdt.IdxField {
			i, _ := strconv.ParseInt(v, 10, 64)
			val = crdt.Int(i)
		}
		return crdt.Op{Kind: crdt.OpSet, Table: table, Row: row, Field: field, Value: val}
	}
	return crdt.Op{Kind: crdt.OpSet, Field: k, Value: val}
}

func (n *testNet) drainLog() string {
	if len(n.log) == 0 {
		return ""
	}
	s := strings.Join(n.log, "\n") + "\n"
	n.log = nil
	return s
}

func fmtMsg(m Message) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s→%s %s", m.From, m.To, m.Type)
	switch m.Type {
	case MsgPush, MsgServe:
		if m.Doctype != "" {
			fmt.Fprintf(&b, " %s", m.Doctype)
		}
		for _, bt := range m.Batches {
			var names []string
			for _, d := range bt.Docs {
				names = append(names, d.Name)
			}
			part := ""
			if bt.Proof != nil {
				part = " partial"
			}
			fmt.Fprintf(&b, " [%s %s %d..%d%s: %s, %d writes]", bt.Doctype, bt.Origin, bt.First, bt.Last, part, strings.Join(names, ","), bt.Writes())
		}
		if len(m.Covers) > 0 {
			fmt.Fprintf(&b, " covers %v", m.Covers)
		}
	case MsgPull:
		fmt.Fprintf(&b, " %s %v", m.Doctype, m.Ranges)
	case MsgSync:
		var dts []string
		for _, s := range m.Sums {
			dts = append(dts, s.Doctype)
		}
		sort.Strings(dts)
		fmt.Fprintf(&b, " %v", dts)
	case MsgVV:
		for _, v := range m.VVs {
			fmt.Fprintf(&b, " %s%v", v.Doctype, v.VV)
		}
	}
	return b.String()
}
