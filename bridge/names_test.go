package bridge

import (
	"errors"
	"strings"
	"testing"
)

func TestDocTypeNamesFollowFrappeRules(t *testing.T) {
	valid := []string{"Item", "Item Barcode", "UOM Conversion Detail", "Sales_Invoice", "E-Invoice Log", "X1", strings.Repeat("a", 61)}
	for _, n := range valid {
		if err := ValidateDocTypeName(n); err != nil {
			t.Errorf("ValidateDocTypeName(%q) = %v, want nil", n, err)
		}
	}
	invalid := []string{
		"", "X", " Item", "Item ", "1Item", "_Item", "-Item", "Item`", `Item"`, "Item'", "Item;", "Item\x00",
		"Itém", "Item\tBarcode", "Item.Barcode", strings.Repeat("a", 62),
		"x`; DROP TABLE y; --", `Item"; DROP TABLE "tabUser"; --`,
	}
	for _, n := range invalid {
		err := ValidateDocTypeName(n)
		if !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidateDocTypeName(%q) = %v, want ErrInvalidName", n, err)
		}
	}
}

func TestFieldnamesFollowFrappeRules(t *testing.T) {
	valid := []string{"item_code", "_user_tags", "f1", "1st_field", "название", "価格", strings.Repeat("x", 63)}
	for _, n := range valid {
		if err := ValidateFieldname(n); err != nil {
			t.Errorf("ValidateFieldname(%q) = %v, want nil", n, err)
		}
	}
	invalid := []string{"", "item code", "item-code", "item`code", `item"code`, "a.b", "x`; DROP TABLE y; --", "\x00", strings.Repeat("x", 64), "\xff"}
	for _, n := range invalid {
		if err := ValidateFieldname(n); !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidateFieldname(%q) = %v, want ErrInvalidName", n, err)
		}
	}
}

func TestInvalidNameErrorsSayWhatIsWrong(t *testing.T) {
	err := ValidateFieldname("x`; DROP TABLE y; --")
	if err == nil || !strings.Contains(err.Error(), "'`'") || !strings.Contains(err.Error(), "only letters, digits and underscores") {
		t.Errorf("error %q should name the offending character and the rule", err)
	}
}

func TestQuoteIdentDoublesTheQuoteCharacter(t *testing.T) {
	cases := []struct {
		d          Dialect
		in, want   string
		wantErrSub string
	}{
		{MariaDB, "tabItem Barcode", "`tabItem Barcode`", ""},
		{MariaDB, "a`b", "`a``b`", ""},
		{Postgres, "tabItem Barcode", `"tabItem Barcode"`, ""},
		{Postgres, `a"b`, `"a""b"`, ""},
		{Postgres, strings.Repeat("я", 32), "", "bytes"}, // 64 bytes: PostgreSQL would truncate
		{MariaDB, strings.Repeat("я", 32), `` + "`" + strings.Repeat("я", 32) + "`", ""},
		{MariaDB, "a\x00b", "", "NUL"},
		{MariaDB, "", "", "empty"},
	}
	for _, c := range cases {
		got, err := c.d.QuoteIdent(c.in)
		if c.wantErrSub != "" {
			if err == nil || !errors.Is(err, ErrInvalidName) {
				t.Errorf("%v.QuoteIdent(%q) = %q, %v; want ErrInvalidName", c.d, c.in, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%v.QuoteIdent(%q) = %q, %v; want %q", c.d, c.in, got, err, c.want)
		}
	}
}

func TestStringLiteralsAreEscapedForEachDialect(t *testing.T) {
	in := "it's a \\ back\nslash"
	m, err := MariaDB.quoteString(in)
	if err != nil || m != `'it''s a \\ back\nslash'` {
		t.Errorf("MariaDB literal = %s, %v", m, err)
	}
	p, err := Postgres.quoteString(in)
	if err != nil || p != "'it''s a \\ back\nslash'" {
		t.Errorf("PostgreSQL literal = %s, %v", p, err)
	}
	if _, err := MariaDB.quoteString("a\x00b"); !errors.Is(err, ErrInvalidValue) {
		t.Errorf("NUL in a literal: err = %v, want ErrInvalidValue", err)
	}
}

func TestParseDialectAcceptsFrappeDBTypes(t *testing.T) {
	for in, want := range map[string]Dialect{"": MariaDB, "mariadb": MariaDB, "postgres": Postgres, "PostgreSQL": Postgres} {
		if got, err := ParseDialect(in); err != nil || got != want {
			t.Errorf("ParseDialect(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseDialect("sqlite"); !errors.Is(err, ErrUnsupportedDialect) {
		t.Errorf("ParseDialect(sqlite) err = %v", err)
	}
}
