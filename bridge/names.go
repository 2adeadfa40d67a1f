package bridge

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Frappe v15 limits (frappe/core/doctype/doctype/doctype.py validate_name,
// frappe/database/schema.py validate_column_name and DBTable.validate).
const (
	// MaxDocTypeNameLen: "tab" + name must fit MariaDB's 64-character limit.
	MaxDocTypeNameLen = 61
	// MaxFieldnameLen: DBTable.validate rejects fieldnames of 64+ characters.
	MaxFieldnameLen = 63
)

// TablePrefix is prepended to a doctype name to form its table name.
const TablePrefix = "tab"

// ValidateDocTypeName checks a doctype name the way Frappe v15 does: it
// starts with an ASCII letter, continues with ASCII letters, digits,
// underscores, spaces or hyphens, has at least two characters, no leading or
// trailing space, and at most MaxDocTypeNameLen characters.
func ValidateDocTypeName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: doctype name is empty", ErrInvalidName)
	}
	if len(name) > MaxDocTypeNameLen {
		return fmt.Errorf("%w: doctype name %q has %d characters; Frappe allows at most %d (the table name tab<DocType> must fit 64)",
			ErrInvalidName, name, len(name), MaxDocTypeNameLen)
	}
	if strings.TrimSpace(name) != name {
		return fmt.Errorf("%w: doctype name %q starts or ends with whitespace", ErrInvalidName, name)
	}
	for i, r := range name {
		ok := r < utf8.RuneSelf && (isASCIILetter(r) || (i > 0 && (isASCIIDigit(r) || r == '_' || r == ' ' || r == '-')))
		if !ok {
			return fmt.Errorf("%w: doctype name %q has %q at byte %d; a doctype name starts with a letter and contains only letters, digits, spaces, underscores and hyphens",
				ErrInvalidName, name, r, i)
		}
	}
	if len(name) < 2 {
		return fmt.Errorf("%w: doctype name %q is too short; Frappe requires at least two characters", ErrInvalidName, name)
	}
	return nil
}

// ValidateFieldname checks a field (column) name the way Frappe v15's
// validate_column_name does: only Unicode letters, digits and underscores
// (Python's \w), and fewer than 64 characters.
func ValidateFieldname(name string) error {
	if name == "" {
		return fmt.Errorf("%w: fieldname is empty", ErrInvalidName)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: fieldname %q is not valid UTF-8", ErrInvalidName, name)
	}
	if n := utf8.RuneCountInString(name); n > MaxFieldnameLen {
		return fmt.Errorf("%w: fieldname %q has %d characters; Frappe allows at most %d", ErrInvalidName, name, n, MaxFieldnameLen)
	}
	for i, r := range name {
		if !(unicode.IsLetter(r) || unicode.IsNumber(r) || r == '_') {
			return fmt.Errorf("%w: fieldname %q has %q at byte %d; fieldnames contain only letters, digits and underscores",
				ErrInvalidName, name, r, i)
		}
	}
	return nil
}

// TableName returns "tab"+doctype after validating the doctype name.
func TableName(doctype string) (string, error) {
	if err := ValidateDocTypeName(doctype); err != nil {
		return "", err
	}
	return TablePrefix + doctype, nil
}

func isASCIILetter(r rune) bool { return (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') }
func isASCIIDigit(r rune) bool  { return r >= '0' && r <= '9' }

// scrub mirrors frappe.scrub: lower case, spaces and hyphens to underscores.
func scrub(s string) string {
	s = strings.ReplaceAll(s, " ", "_")
	s = strings.ReplaceAll(s, "-", "_")
	return strings.ToLower(s)
}
