package bridge

import (
	"strings"
	"testing"
	"time"

	"meridian/crdt"
)

// Desk-style changes (rows inserted and updated with a bumped modified,
// deletions logged in tabDeleted Document) are read back as documents in
// the mesh's value forms, past a tie-safe watermark, once each.
func TestCaptureReadsLocalChangesPastAWatermark(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d Dialect) {
		ctx := testContext(t)
		td := newTestDatabase(t, d)
		dts := itemDocTypes(t)
		for _, dt := range append(dts, fixture(t, "deleted_document.json")) {
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
		q := func(s string) string { // MariaDB quoting in the test's SQL, adapted
			if d == Postgres {
				return strings.ReplaceAll(s, "`", `"`)
			}
			return s
		}
		mustExec(t, ctx, td.DB, q("INSERT INTO `tabItem` (`name`, `creation`, `modified`, `modified_by`, `owner`, `item_code`, `item_name`, `valuation_rate`, `shelf_life_in_days`, `standard_rate`) "+
			"VALUES ('DESK-1', '2026-03-01 10:00:00', '2026-03-01 10:00:00.250000', 'clerk@example.com', 'clerk@example.com', 'DESK-1', 'From Desk', 12.5, 30, 20)"))
		mustExec(t, ctx, td.DB, q("INSERT INTO `tabItem` (`name`, `creation`, `modified`, `modified_by`, `owner`, `item_name`) "+
			"VALUES ('DESK-2', '2026-03-01 10:00:00', '2026-03-01 10:00:00.250000', 'clerk@example.com', 'clerk@example.com', 'Same instant')"))
		mustExec(t, ctx, td.DB, q("INSERT INTO `tabItem Barcode` (`name`, `parent`, `parenttype`, `parentfield`, `idx`, `barcode`, `barcode_type`) "+
			"VALUES ('row-b', 'DESK-1', 'Item', 'barcodes', 2, '222', 'EAN'), ('row-a', 'DESK-1', 'Item', 'barcodes', 1, '111', NULL)"))

		wm, err := a.LoadWatermark(ctx, "Item")
		if err != nil || wm != (Watermark{}) {
			t.Fatalf("fresh watermark %+v %v", wm, err)
		}
		wm = Watermark{Modified: "2026-01-01 00:00:00", DeletedAt: "2026-01-01 00:00:00"}
		caps, wm1, err := a.Captures(ctx, "Item", wm, 1) // one at a time: the tie at the same instant
		if err != nil || len(caps) != 1 || caps[0].Name != "DESK-1" {
			t.Fatalf("first capture %+v %v", caps, err)
		}
		c := caps[0]
		if c.Fields["item_name"] != crdt.Str("From Desk") || c.Fields["shelf_life_in_days"] != crdt.Int(30) ||
			c.Fields["valuation_rate"] != crdt.MustDec("12.5") || c.Fields["standard_rate"] != crdt.Int(20) {
			t.Fatalf("values %v", c.Fields)
		}
		if !c.Defaulted["disabled"] || c.Defaulted["item_name"] {
			t.Fatalf("defaulted %v", c.Defaulted)
		}
		if c.Fields["description"] != crdt.Null {
			t.Fatalf("a NULL column is %v", c.Fields["description"])
		}
		if c.ModifiedBy != "clerk@example.com" || !c.Modified.Equal(time.Date(2026, 3, 1, 10, 0, 0, 250e6, time.UTC)) {
			t.Fatalf("modified %v by %s", c.Modified, c.ModifiedBy)
		}
		rows := c.Tables["barcodes"]
		if len(rows) != 2 || rows[0].Name != "row-a" || rows[1].Name != "row-b" || rows[1].Fields["barcode_type"] != crdt.Str("EAN") {
			t.Fatalf("rows %+v", rows)
		}
		if _, ok := rows[0].Fields["barcode_type"]; ok {
			t.Fatal("a NULL row field was captured as a value")
		}
		caps, wm2, err := a.Captures(ctx, "Item", wm1, 1)
		if err != nil || len(caps) != 1 || caps[0].Name != "DESK-2" {
			t.Fatalf("the row at the same instant: %+v %v", caps, err)
		}
		if caps, _, err = a.Captures(ctx, "Item", wm2, 10); err != nil || len(caps) != 0 {
			t.Fatalf("nothing new, got %+v %v", caps, err)
		}
		if err := a.SaveWatermark(ctx, "Item", wm2); err != nil {
			t.Fatal(err)
		}
		if got, err := a.LoadWatermark(ctx, "Item"); err != nil || got != wm2 {
			t.Fatalf("saved %+v, loaded %+v %v", wm2, got, err)
		}

		// A Desk edit bumps modified: captured again. A deletion is captured.
		mustExec(t, ctx, td.DB, q("UPDATE `tabItem` SET `item_name` = 'Edited', `modified` = '2026-03-01 11:00:00' WHERE `name` = 'DESK-2'"))
		mustExec(t, ctx, td.DB, q("INSERT INTO `tabDeleted Document` (`name`, `creation`, `modified`, `owner`, `deleted_doctype`, `deleted_name`, `data`) "+
			"VALUES ('dd-1', '2026-03-01 11:30:00', '2026-03-01 11:30:00', 'clerk@example.com', 'Item', 'OLD-9', '{}'), "+
			"('dd-2', '2026-03-01 11:31:00', '2026-03-01 11:31:00', 'clerk@example.com', 'UOM', 'Box', '{}')"))
		caps, wm3, err := a.Captures(ctx, "Item", wm2, 10)
		if err != nil || len(caps) != 2 {
			t.Fatalf("after edit and delete: %+v %v", caps, err)
		}
		if caps[0].Name != "DESK-2" || caps[0].Fields["item_name"] != crdt.Str("Edited") {
			t.Fatalf("edit %+v", caps[0])
		}
		if !caps[1].Deleted || caps[1].Name != "OLD-9" {
			t.Fatalf("deletion %+v (another doctype's deletion must not appear)", caps[1])
		}
		if caps, _, _ = a.Captures(ctx, "Item", wm3, 10); len(caps) != 0 {
			t.Fatalf("captured twice: %+v", caps)
		}

		// A row saved a moment ago is captured at once, but the watermark
		// stays before it until it has settled (an earlier `modified` may
		// still be committing).
		a.Settle = time.Hour
		mustExec(t, ctx, td.DB, q("UPDATE `tabItem` SET `item_name` = 'Just now', `modified` = "+d.Placeholder(1)+" WHERE `name` = 'DESK-1'"),
			time.Now().UTC().Format("2006-01-02 15:04:05.000000"))
		caps, wm4, err := a.Captures(ctx, "Item", wm3, 10)
		if err != nil || len(caps) != 1 || caps[0].Fields["item_name"] != crdt.Str("Just now") {
			t.Fatalf("recent row: %+v %v", caps, err)
		}
		if wm4.Modified != wm3.Modified || wm4.Name != wm3.Name {
			t.Fatalf("the watermark moved past an unsettled row: %+v → %+v", wm3, wm4)
		}
	})
}
