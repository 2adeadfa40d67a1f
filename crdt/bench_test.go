package crdt

import (
	"fmt"
	"testing"
)

// itemOps returns the ops creating a realistic ERPNext Item: nfields top-level
// fields of the types Item uses, and three child tables (barcodes, uoms,
// item_defaults) of rows rows each.
func itemOps(i, nfields, rows int) []Op {
	ops := []Op{{Kind: OpCreate}}
	for f := 0; f < nfields; f++ {
		var v Value
		switch f % 4 {
		case 0:
			v = Str(fmt.Sprintf("text value %d of item %d", f, i))
		case 1:
			v = MustDec(fmt.Sprintf("%d.%02d", i%1000, f%100))
		case 2:
			v = Int(int64(f % 2))
		default:
			v = Str("2024-01-15")
		}
		ops = append(ops, Op{Kind: OpSet, Field: fmt.Sprintf("field_%03d", f), Value: v})
	}
	for _, table := range []string{"barcodes", "uoms", "item_defaults"} {
		for r := 0; r < rows; r++ {
			row := fmt.Sprintf("%s%04d%02d", table[:2], i%10000, r)
			ops = append(ops,
				Op{Kind: OpSet, Table: table, Row: row, Field: IdxField, Value: Int(int64(r + 1))},
				Op{Kind: OpSet, Table: table, Row: row, Field: "value", Value: Str(fmt.Sprintf("%s-%d-%d", table, i, r))},
				Op{Kind: OpSet, Table: table, Row: row, Field: "conversion_factor", Value: MustDec("1.5")})
		}
	}
	return ops
}

func BenchmarkMerge100FieldDelta(b *testing.B) {
	base := NewDoc("Item", "ITEM-1")
	if _, err := base.Write(Dot{"A", 1}, MakeHLC(1000, 0), itemOps(1, 100, 0)); err != nil {
		b.Fatal(err)
	}
	// A delta from site B overwriting all 100 fields.
	other := base.Clone()
	var ops []Op
	for f := 0; f < 100; f++ {
		ops = append(ops, Op{Kind: OpSet, Field: fmt.Sprintf("field_%03d", f), Value: Str("updated")})
	}
	delta, err := other.Write(Dot{"B", 1}, MakeHLC(2000, 0), ops)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		d := base.Clone()
		b.StartTimer()
		if !d.Merge(delta) {
			b.Fatal("no change")
		}
	}
}

func benchItem(b *testing.B) *Doc {
	d := NewDoc("Item", "ITEM-00001")
	if _, err := d.Write(Dot{"12D3KooWC9UsZyMUiEYQDNQ4RTC7kAyJxbhdxCT6gc23YDBjBh4d", 1}, MakeHLC(1000, 0), itemOps(1, 40, 2)); err != nil {
		b.Fatal(err)
	}
	return d
}

func BenchmarkEncodeItemWithThreeChildTables(b *testing.B) {
	d := benchItem(b)
	raw, _ := EncodeDoc(d)
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for i := 0; i < b.N; i++ {
		if _, err := EncodeDoc(d); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeItemWithThreeChildTables(b *testing.B) {
	raw, _ := EncodeDoc(benchItem(b))
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for i := 0; i < b.N; i++ {
		if _, err := DecodeDoc(raw); err != nil {
			b.Fatal(err)
		}
	}
}
