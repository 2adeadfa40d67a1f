package bridge

import (
	"strings"
	"testing"
	"time"

	"meridian/crdt"
)

// A site that calls the mesh's Item "Product", its item_name
// "product_name", and keeps valuation in cents: the bridge writes and
// captures through the mapping, and a round trip changes nothing.
func TestMappingRenamesAndTransformsBothWays(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d Dialect) {
		ctx := testContext(t)
		td := newTestDatabase(t, d)
		dts := itemDocTypes(t)
		product := dts[0].Clone()
		product.Name = "Product"
		for i := range product.Fields {
			if product.Fields[i].Fieldname == "item_name" {
				product.Fields[i].Fieldname = "product_name"
			}
		}
		dts[0] = product
		for _, dt := range dts {
			mustEnsure(t, ctx, td.DB, dt)
		}
		a, err := NewApplier(td.DB, TimeZone{Location: time.UTC}, "", dts...)
		if err != nil {
			t.Fatal(err)
		}
		a.Settle = time.Millisecond
		if err := a.EnsureState(ctx); err != nil {
			t.Fatal(err)
		}
		m := Mapping{Mesh: "Item", Site: "Product", Fields: map[string]string{"item_name": "product_name"},
			ToSite: map[string]string{"valuation_rate": "value * 100.0", "item_group": "value.upperAscii()"},
			ToMesh: map[string]string{"valuation_rate": "value / 100.0", "item_group": "value.lowerAscii()"}}
		for _, bad := range []Mapping{
			{Mesh: "Item", Site: "Nope"},
			{Mesh: "Item", Site: "Product", Fields: map[string]string{"item_name": "no_such_field"}},
			{Mesh: "Item", Site: "Product", ToSite: map[string]string{"item_name": "value +"}},
		} {
			if err := a.SetMappings(bad); err == nil {
				t.Fatalf("mapping %+v accepted", bad)
			}
		}
		if err := a.SetMappings(m); err != nil {
			t.Fatal(err)
		}
		w := newDocWriter()
		item := crdt.NewDoc("Item", "WIDGET")
		w.write(t, item, crdt.Op{Kind: crdt.OpCreate}, set("item_name", crdt.Str("Widget")), set("valuation_rate", crdt.MustDec("12.34")),
			set("item_group", crdt.Str("tools")), rowSet("barcodes", "r1", "barcode", crdt.Str("123")))
		if st, err := a.Apply(ctx, "Item", []Doc{DocFromCRDT(item)}, vvOf(w)); err != nil || st.Upserted != 1 {
			t.Fatalf("%+v %v", st, err)
		}
		get := func(col string) string {
			sel := d.mustQuote(col)
			if d == Postgres {
				sel = "CAST(" + sel + " AS text)"
			}
			v := queryStrings(t, ctx, td.DB, "SELECT "+sel+" FROM "+d.mustQuote("tabProduct")+" WHERE "+d.mustQuote("name")+" = 'WIDGET'")
			if len(v) != 1 {
				t.Fatalf("rows %v", v)
			}
			return v[0]
		}
		if get("product_name") != "Widget" || !strings.HasPrefix(get("valuation_rate"), "1234") || get("item_group") != "TOOLS" {
			t.Fatalf("site row: %s %s %s", get("product_name"), get("valuation_rate"), get("item_group"))
		}
		if n := queryStrings(t, ctx, td.DB, "SELECT "+d.mustQuote("parenttype")+" FROM "+d.mustQuote("tabItem Barcode")); len(n) != 1 || n[0] != "Product" {
			t.Fatalf("child rows %v", n)
		}
		// Captured back: the mesh's names and values, equal to the document.
		caps, _, err := a.Captures(ctx, "Item", Watermark{Modified: "2000-01-01 00:00:00", DeletedAt: "2000-01-01 00:00:00"}, 10)
		if err != nil || len(caps) != 1 {
			t.Fatalf("%+v %v", caps, err)
		}
		c := caps[0]
		if c.Doctype != "Item" || c.Fields["item_name"] != crdt.Str("Widget") || c.Fields["valuation_rate"] != crdt.MustDec("12.34") || c.Fields["item_group"] != crdt.Str("tools") {
			t.Fatalf("capture %+v", c.Fields)
		}
		if _, ok := c.Fields["product_name"]; ok {
			t.Fatal("the site's field name leaked into the mesh")
		}
		if ops := item.Diff(c.Desired(item.View())); len(ops) != 0 {
			t.Fatalf("a round trip through the site changes the document: %+v", ops)
		}
	})
}
