package bridge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
)

// jsonDocType mirrors the keys of a Frappe DocType JSON file that matter
// for storage. Unknown keys (permissions, links, labels…) are ignored.
type jsonDocType struct {
	Doctype        jsonString  `json:"doctype"`
	Name           jsonString  `json:"name"`
	Module         jsonString  `json:"module"`
	IsTable        jsonBool    `json:"istable"`
	IsSingle       jsonBool    `json:"issingle"`
	IsTree         jsonBool    `json:"is_tree"`
	IsVirtual      jsonBool    `json:"is_virtual"`
	IsSubmittable  jsonBool    `json:"is_submittable"`
	Custom         jsonBool    `json:"custom"`
	Autoname       jsonString  `json:"autoname"`
	NamingRule     jsonString  `json:"naming_rule"`
	NSMParentField jsonString  `json:"nsm_parent_field"`
	TitleField     jsonString  `json:"title_field"`
	SearchFields   jsonString  `json:"search_fields"`
	SortField      jsonString  `json:"sort_field"`
	SortOrder      jsonString  `json:"sort_order"`
	TrackSeen      jsonBool    `json:"track_seen"`
	TrackChanges   jsonBool    `json:"track_changes"`
	Engine         jsonString  `json:"engine"`
	RowFormat      jsonString  `json:"row_format"`
	Modified       jsonString  `json:"modified"`
	FieldOrder     []string    `json:"field_order"`
	Fields         []jsonField `json:"fields"`
}

type jsonField struct {
	Fieldname     jsonString `json:"fieldname"`
	Fieldtype     jsonString `json:"fieldtype"`
	Label         jsonString `json:"label"`
	Options       jsonString `json:"options"`
	Length        jsonInt    `json:"length"`
	Precision     jsonString `json:"precision"`
	Default       jsonString `json:"default"`
	Reqd          jsonBool   `json:"reqd"`
	Unique        jsonBool   `json:"unique"`
	SearchIndex   jsonBool   `json:"search_index"`
	NoCopy        jsonBool   `json:"no_copy"`
	Hidden        jsonBool   `json:"hidden"`
	ReadOnly      jsonBool   `json:"read_only"`
	IsVirtual     jsonBool   `json:"is_virtual"`
	SetOnlyOnce   jsonBool   `json:"set_only_once"`
	AllowOnSubmit jsonBool   `json:"allow_on_submit"`
	Translatable  jsonBool   `json:"translatable"`
	NonNegative   jsonBool   `json:"non_negative"`
	FetchFrom     jsonString `json:"fetch_from"`
	FetchIfEmpty  jsonBool   `json:"fetch_if_empty"`
	InsertAfter   jsonString `json:"insert_after"`
}

// ReadDocTypeFile reads and parses a DocType JSON file.
func ReadDocTypeFile(path string) (*DocType, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bridge: read doctype: %w", err)
	}
	dt, err := ParseDocType(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return dt, nil
}

// ParseDocType parses a DocType JSON file in the format Frappe apps ship
// (<app>/<module>/doctype/<name>/<name>.json). Fields are ordered by
// field_order when present: Frappe keeps the "fields" array in its old order
// to limit diffs and records the real order in field_order. Tree doctypes
// get Frappe's nested-set fields if they lack them. The result is validated.
func ParseDocType(data []byte) (*DocType, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var j jsonDocType
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("%w: not a DocType JSON document: %v", ErrInvalidDocType, err)
	}
	if j.Doctype != "" && j.Doctype != "DocType" {
		return nil, fmt.Errorf("%w: document is a %q, not a DocType", ErrInvalidDocType, string(j.Doctype))
	}
	dt := &DocType{
		Name: string(j.Name), Module: string(j.Module),
		IsTable: bool(j.IsTable), IsSingle: bool(j.IsSingle), IsTree: bool(j.IsTree),
		IsVirtual: bool(j.IsVirtual), IsSubmittable: bool(j.IsSubmittable), Custom: bool(j.Custom),
		Autoname: string(j.Autoname), NamingRule: string(j.NamingRule),
		NSMParentField: string(j.NSMParentField), TitleField: string(j.TitleField),
		SearchFields: string(j.SearchFields), SortField: string(j.SortField), SortOrder: string(j.SortOrder),
		TrackSeen: bool(j.TrackSeen), TrackChanges: bool(j.TrackChanges),
		Engine: string(j.Engine), RowFormat: string(j.RowFormat), Modified: string(j.Modified),
	}
	fields := make([]DocField, 0, len(j.Fields))
	for _, f := range j.Fields {
		fields = append(fields, DocField{
			Fieldname: string(f.Fieldname), Fieldtype: string(f.Fieldtype), Label: string(f.Label),
			Options: string(f.Options), Length: int(f.Length), Precision: string(f.Precision),
			Default: string(f.Default), Reqd: bool(f.Reqd), Unique: bool(f.Unique),
			SearchIndex: bool(f.SearchIndex), NoCopy: bool(f.NoCopy), Hidden: bool(f.Hidden),
			ReadOnly: bool(f.ReadOnly), IsVirtual: bool(f.IsVirtual), SetOnlyOnce: bool(f.SetOnlyOnce),
			AllowOnSubmit: bool(f.AllowOnSubmit), Translatable: bool(f.Translatable),
			NonNegative: bool(f.NonNegative), FetchFrom: string(f.FetchFrom),
			FetchIfEmpty: bool(f.FetchIfEmpty), InsertAfter: string(f.InsertAfter),
		})
	}
	dt.Fields = orderByFieldOrder(fields, j.FieldOrder)
	dt.normalize()
	if err := dt.Validate(); err != nil {
		return nil, err
	}
	return dt, nil
}

// orderByFieldOrder sorts fields by order; fields it does not name keep
// their relative order after the named ones.
func orderByFieldOrder(fields []DocField, order []string) []DocField {
	if len(order) == 0 {
		return fields
	}
	pos := make(map[string]int, len(order))
	for i, n := range order {
		if _, dup := pos[n]; !dup {
			pos[n] = i
		}
	}
	out := make([]DocField, 0, len(fields))
	used := make([]bool, len(fields))
	byName := make(map[string]int, len(fields))
	for i, f := range fields {
		if _, dup := byName[f.Fieldname]; !dup {
			byName[f.Fieldname] = i
		}
	}
	for _, n := range order {
		if i, ok := byName[n]; ok && !used[i] {
			out = append(out, fields[i])
			used[i] = true
		}
	}
	for i, f := range fields {
		if !used[i] {
			out = append(out, f)
		}
	}
	return out
}

// jsonString accepts a string, a number (kept as written) or null. Frappe
// JSON has "default": 0 as well as "default": "0".
type jsonString string

func (s *jsonString) UnmarshalJSON(b []byte) error {
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return err
	}
	switch x := v.(type) {
	case nil:
		*s = ""
	case string:
		*s = jsonString(x)
	case json.Number:
		*s = jsonString(x.String())
	case bool:
		*s = "0"
		if x {
			*s = "1"
		}
	default:
		return fmt.Errorf("expected a string, got %s", string(b))
	}
	return nil
}

// jsonBool accepts 0/1, true/false, "0"/"1" or null (Frappe writes 0/1).
type jsonBool bool

func (v *jsonBool) UnmarshalJSON(b []byte) error {
	var x any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&x); err != nil {
		return err
	}
	switch t := x.(type) {
	case nil:
		*v = false
	case bool:
		*v = jsonBool(t)
	case json.Number:
		f, err := t.Float64()
		if err != nil {
			return err
		}
		*v = f != 0
	case string:
		*v = jsonBool(pyCint(t) != 0 || strings.EqualFold(strings.TrimSpace(t), "true"))
	default:
		return fmt.Errorf("expected 0 or 1, got %s", string(b))
	}
	return nil
}

// jsonInt accepts an integer, an integral float, a numeric string or null.
type jsonInt int

func (v *jsonInt) UnmarshalJSON(b []byte) error {
	var x any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&x); err != nil {
		return err
	}
	var s string
	switch t := x.(type) {
	case nil:
		*v = 0
		return nil
	case json.Number:
		s = t.String()
	case string:
		s = strings.TrimSpace(t)
		if s == "" {
			*v = 0
			return nil
		}
	default:
		return fmt.Errorf("expected an integer, got %s", string(b))
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > math.MaxInt32 {
		return fmt.Errorf("expected an integer, got %s", string(b))
	}
	*v = jsonInt(f)
	return nil
}
