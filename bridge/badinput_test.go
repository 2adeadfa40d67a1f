package bridge

import (
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"meridian/crdt"
)

// Bad input never corrupts the site or stops the other documents: each
// refused document is in the sync log with a reason that says what is
// wrong; names and values travel as bind parameters, never as SQL.
func TestApplyRefusesBadInputWithReasons(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d Dialect) {
		ctx := testContext(t)
		td := newTestDatabase(t, d)
		dts := itemDocTypes(t)
		for _, dt := range dts {
			mustEnsure(t, ctx, td.DB, dt)
		}
		a, err := NewApplier(td.DB, TimeZone{Location: time.UTC}, "", dts...)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.EnsureState(ctx); err != nil {
			t.Fatal(err)
		}
		w := newDocWriter()
		mk := func(name string, ops ...crdt.Op) Doc {
			doc := crdt.NewDoc("Item", name)
			w.write(t, doc, append([]crdt.Op{{Kind: crdt.OpCreate}}, ops...)...)
			return DocFromCRDT(doc)
		}
		evil := `x'); DROP TABLE "tabItem"; DROP TABLE ` + "`tabItem`" + `; --`
		docs := []Doc{
			mk("LONG", set("item_name", crdt.Str(strings.Repeat("é", 141)))),
			mk("BC-1", rowSet("barcodes", "r1", "barcode", crdt.Str("4006381333931"))),
			mk("BC-2", rowSet("barcodes", "r2", "barcode", crdt.Str("4006381333931"))), // the same barcode: unique column
			mk(evil, set("item_name", crdt.Str(`'; DELETE FROM "tabItem"; --`))),
			mk("ODD-FIELD", set("item_name", crdt.Str("fine")), set("no such column; DROP TABLE x", crdt.Str("ignored"))),
		}
		st, err := a.Apply(ctx, "Item", docs, vvOf(w))
		if err != nil {
			t.Fatal(err)
		}
		reasons := map[string]string{}
		for _, f := range st.Failed {
			reasons[f.Name] = f.Reason
		}
		if r := reasons["LONG"]; !strings.Contains(r, "item_name") || !strings.Contains(r, "141 characters") || !strings.Contains(r, "holds 140") {
			t.Errorf("too long: reason %q", r)
		}
		if r := strings.ToLower(reasons["BC-2"]); !strings.Contains(r, "duplicate") {
			t.Errorf("duplicate barcode: reason %q", reasons["BC-2"])
		}
		if len(st.Failed) != 2 || st.Upserted != 3 {
			t.Fatalf("stats %+v", st)
		}
		names := queryStrings(t, ctx, td.DB, "SELECT "+d.mustQuote("name")+" FROM "+d.mustQuote("tabItem")+" ORDER BY 1")
		if strings.Join(names, "|") != strings.Join([]string{"BC-1", "ODD-FIELD", evil}, "|") {
			t.Fatalf("rows %q", names)
		}
		v := queryStrings(t, ctx, td.DB, "SELECT "+d.mustQuote("item_name")+" FROM "+d.mustQuote("tabItem")+" WHERE "+d.mustQuote("name")+" = "+d.Placeholder(1), evil)
		if len(v) != 1 || v[0] != `'; DELETE FROM "tabItem"; --` {
			t.Fatalf("the metacharacters were not stored verbatim: %q", v)
		}
		log, err := a.Failures(ctx, false)
		if err != nil || len(log) != 2 {
			t.Fatalf("sync log %+v %v", log, err)
		}
	})
}

// A DocType whose field name is no valid identifier is refused when it is
// read, before any SQL is built from it.
func TestDocTypeWithAnInvalidFieldnameIsRefused(t *testing.T) {
	_, err := ParseDocType([]byte(`{"doctype": "DocType", "name": "Thing", "fields": [{"fieldname": "a b; DROP TABLE x", "fieldtype": "Data"}]}`))
	if err == nil || !strings.Contains(err.Error(), "a b; DROP TABLE x") {
		t.Fatalf("an invalid fieldname was accepted (or the error does not name it): %v", err)
	}
}

// proxy forwards TCP to a database server and can be cut and restored,
// to play a database that goes down and comes back.
type proxy struct {
	t      *testing.T
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	p := &proxy{t: t, target: target}
	p.up()
	t.Cleanup(p.down)
	return p
}

func (p *proxy) up() {
	addr := p.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for range 50 { // the port may take a moment to be free again
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { io.Copy(s, c); s.Close() }()
			go func() { io.Copy(c, s); c.Close() }()
		}
	}()
}

func (p *proxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// The database going down makes Apply fail as a whole (nothing half
// written, the applied vector unchanged); once it is back the same batch
// applies, and nothing is lost.
func TestApplySurvivesTheDatabaseGoingDownAndComingBack(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d Dialect) {
		ctx := testContext(t)
		td := newTestDatabase(t, d)
		dts := itemDocTypes(t)
		for _, dt := range dts {
			mustEnsure(t, ctx, td.DB, dt)
		}
		var db *DB
		var p *proxy
		switch d {
		case MariaDB:
			cfg, _ := mysql.ParseDSN(mariadbAdminDSN())
			p = newProxy(t, cfg.Addr)
			cfg.Addr, cfg.DBName, cfg.Timeout = p.addr, td.Name, 2*time.Second
			var err error
			if db, err = newMariaDB(cfg); err != nil {
				t.Fatal(err)
			}
		case Postgres:
			cfg, _ := pgx.ParseConfig(postgresAdminURL())
			p = newProxy(t, cfg.Host+":"+strconv.Itoa(int(cfg.Port)))
			host, port, _ := net.SplitHostPort(p.addr)
			n, _ := strconv.Atoi(port)
			cfg.Host, cfg.Port, cfg.Database, cfg.ConnectTimeout = host, uint16(n), td.Name, 2*time.Second
			db = newPostgres(cfg)
		}
		defer db.Close()
		a, err := NewApplier(db, TimeZone{Location: time.UTC}, "", dts...)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.EnsureState(ctx); err != nil {
			t.Fatal(err)
		}
		w := newDocWriter()
		var first, second []Doc
		for i := range 20 {
			doc := crdt.NewDoc("Item", "ITEM-"+strconv.Itoa(i))
			w.write(t, doc, crdt.Op{Kind: crdt.OpCreate}, set("item_name", crdt.Str("n"+strconv.Itoa(i))), rowSet("barcodes", "r"+strconv.Itoa(i), "barcode", crdt.Str(strconv.Itoa(1000+i))))
			if i < 10 {
				first = append(first, DocFromCRDT(doc))
			} else {
				second = append(second, DocFromCRDT(doc))
			}
		}
		vv1 := crdt.VersionVector{}
		vv1.Add(w.site, 1, 10)
		if _, err := a.Apply(ctx, "Item", first, vv1); err != nil {
			t.Fatal(err)
		}
		p.down()
		short, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = a.Apply(short, "Item", second, vvOf(w))
		cancel()
		if err == nil {
			t.Fatal("Apply succeeded with the database down")
		}
		p.up()
		var applied crdt.VersionVector
		deadline := time.Now().Add(15 * time.Second)
		for { // the node retries with back-off; the first attempt may meet a dead pooled connection
			if _, err = a.Apply(ctx, "Item", second, vvOf(w)); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Apply still fails after the database came back: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		if applied, err = a.State(ctx, "Item"); err != nil || !applied.Equal(vvOf(w)) {
			t.Fatalf("state %v %v", applied, err)
		}
		if n := queryStrings(t, ctx, td.DB, "SELECT "+d.mustQuote("name")+" FROM "+d.mustQuote("tabItem")); len(n) != 20 {
			t.Fatalf("%d items after the outage, want 20", len(n))
		}
		if n := queryStrings(t, ctx, td.DB, "SELECT "+d.mustQuote("name")+" FROM "+d.mustQuote("tabItem Barcode")); len(n) != 20 {
			t.Fatalf("%d barcode rows after the outage, want 20", len(n))
		}
	})
}
