package crdt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Kind is the type of a field value as it travels between sites.
type Kind uint8

const (
	// KindNull is an empty field (SQL NULL).
	KindNull Kind = iota
	// KindStr is UTF-8 text: Data, Link, Select, Text, Date ("YYYY-MM-DD"),
	// Datetime (UTC "YYYY-MM-DD HH:MM:SS.ffffff"), Time, and JSON as
	// canonical JSON text.
	KindStr
	// KindInt is a signed 64-bit integer: Int, Long Int, and Check (0 or 1).
	KindInt
	// KindDec is an exact decimal in canonical form ("-12.5", "0", "3"):
	// Currency, Float, Percent, Duration, Rating. Never a float64.
	KindDec
	// KindRemoved marks a write made by removing a child-table row. It is
	// never shown: it only overwrites what the remover saw, and loses to a
	// concurrent write of a real value (rows are add-wins).
	KindRemoved
)

func (k Kind) String() string {
	switch k {
	case KindNull:
		return "null"
	case KindStr:
		return "str"
	case KindInt:
		return "int"
	case KindDec:
		return "dec"
	case KindRemoved:
		return "removed"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Value is one field value with its Frappe meaning kept exactly.
type Value struct {
	Kind Kind
	Str  string // KindStr text, or KindDec canonical decimal
	Int  int64  // KindInt
}

// Null is the empty value.
var Null = Value{}

// Str returns a text value.
func Str(s string) Value { return Value{Kind: KindStr, Str: s} }

// Int returns an integer value.
func Int(i int64) Value { return Value{Kind: KindInt, Int: i} }

// Check returns 1 for true and 0 for false, as Frappe stores Check fields.
func Check(b bool) Value {
	if b {
		return Int(1)
	}
	return Int(0)
}

// Dec returns an exact decimal value from its text form, or an error naming
// what is wrong with it.
func Dec(s string) (Value, error) {
	c, err := CanonicalDecimal(s)
	if err != nil {
		return Null, err
	}
	return Value{Kind: KindDec, Str: c}, nil
}

// MustDec is Dec for constants in tests and examples; it panics on bad input.
func MustDec(s string) Value {
	v, err := Dec(s)
	if err != nil {
		panic(err)
	}
	return v
}

// Removed is the value a row removal writes.
var Removed = Value{Kind: KindRemoved}

// IsNull reports whether v is the empty value.
func (v Value) IsNull() bool { return v.Kind == KindNull }

// Equal reports whether two values are identical in kind and content.
func (v Value) Equal(o Value) bool { return v == o }

// Validate checks that v is well formed: valid UTF-8, canonical decimal.
func (v Value) Validate() error {
	switch v.Kind {
	case KindNull, KindRemoved:
		if v.Str != "" || v.Int != 0 {
			return errors.New("crdt: null value carries data")
		}
	case KindStr:
		if !utf8.ValidString(v.Str) {
			return errors.New("crdt: text value is not valid UTF-8")
		}
		if v.Int != 0 {
			return errors.New("crdt: text value carries an integer")
		}
	case KindInt:
		if v.Str != "" {
			return errors.New("crdt: integer value carries text")
		}
	case KindDec:
		c, err := CanonicalDecimal(v.Str)
		if err != nil {
			return err
		}
		if c != v.Str || v.Int != 0 {
			return fmt.Errorf("crdt: decimal %q is not in canonical form (want %q)", v.Str, c)
		}
	default:
		return fmt.Errorf("crdt: unknown value kind %d", v.Kind)
	}
	return nil
}

func (v Value) String() string {
	switch v.Kind {
	case KindNull:
		return "null"
	case KindStr:
		return strconv.Quote(v.Str)
	case KindInt:
		return strconv.FormatInt(v.Int, 10)
	case KindDec:
		return v.Str
	case KindRemoved:
		return "(removed)"
	}
	return "?"
}

// maxDecimalDigits bounds decimal text so a hostile value cannot make
// canonicalisation allocate without limit (Frappe's widest is 21 digits).
const maxDecimalDigits = 1000

// CanonicalDecimal returns the canonical text of an exact decimal: no plus
// sign, no leading zeros, no trailing fractional zeros, no exponent, "0" for
// zero. "1.500", "+1.5" and "15e-1" all become "1.5".
func CanonicalDecimal(s string) (string, error) {
	orig := s
	if s == "" {
		return "", errors.New("crdt: empty decimal")
	}
	neg := false
	switch s[0] {
	case '-':
		neg = true
		s = s[1:]
	case '+':
		s = s[1:]
	}
	exp := 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		e, err := strconv.Atoi(s[i+1:])
		if err != nil || e > maxDecimalDigits || e < -maxDecimalDigits {
			return "", fmt.Errorf("crdt: decimal %q has a bad exponent", orig)
		}
		exp = e
		s = s[:i]
	}
	intPart, frac := s, ""
	if i := strings.IndexByte(s, '.'); i >= 0 {
		intPart, frac = s[:i], s[i+1:]
	}
	if intPart == "" && frac == "" {
		return "", fmt.Errorf("crdt: decimal %q has no digits", orig)
	}
	if len(intPart)+len(frac) > maxDecimalDigits {
		return "", fmt.Errorf("crdt: decimal %q has more than %d digits", orig[:20]+"…", maxDecimalDigits)
	}
	for _, part := range []string{intPart, frac} {
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return "", fmt.Errorf("crdt: decimal %q contains %q; use digits, one '.', an optional sign and exponent", orig, part[i])
			}
		}
	}
	digits := intPart + frac
	point := len(intPart) + exp // position of the decimal point in digits
	if point < 0 {
		digits = strings.Repeat("0", -point) + digits
		point = 0
	}
	if point > len(digits) {
		digits += strings.Repeat("0", point-len(digits))
	}
	ip := strings.TrimLeft(digits[:point], "0")
	fp := strings.TrimRight(digits[point:], "0")
	if ip == "" {
		ip = "0"
	}
	out := ip
	if fp != "" {
		out += "." + fp
	}
	if out == "0" {
		return "0", nil
	}
	if neg {
		out = "-" + out
	}
	return out, nil
}

// NormalizeDate checks a Frappe Date value ("YYYY-MM-DD").
func NormalizeDate(s string) (string, error) {
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return "", fmt.Errorf("crdt: date %q is not YYYY-MM-DD", s)
	}
	return t.Format("2006-01-02"), nil
}

// DatetimeLayout is how Datetime values travel: UTC with microseconds.
const DatetimeLayout = "2006-01-02 15:04:05.000000"

// NormalizeDatetime converts a naive datetime in location loc (the site's
// time zone) to the UTC text form Datetime values travel in.
func NormalizeDatetime(s string, loc *time.Location) (string, error) {
	for _, layout := range []string{"2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t.UTC().Format(DatetimeLayout), nil
		}
	}
	return "", fmt.Errorf("crdt: datetime %q is not YYYY-MM-DD HH:MM:SS[.ffffff]", s)
}

// CanonicalJSON re-encodes JSON text with sorted keys and no insignificant
// whitespace, keeping numbers exactly as written, so equal documents
// compare equal byte for byte.
func CanonicalJSON(text string) (string, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", fmt.Errorf("crdt: invalid JSON value: %v", err)
	}
	if dec.More() {
		return "", errors.New("crdt: invalid JSON value: trailing data")
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	// encoding/json sorts map keys, which is what makes this canonical.
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}
