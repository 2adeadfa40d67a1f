package bridge

import (
	"fmt"
	"math"
	"strconv"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"
	"meridian/crdt"
)

// Mapping lets a site keep its own names for a mesh doctype and its fields
// ("Product" for the mesh's "Item"), with value transforms written in CEL.
// A transform sees `value` (the field's value: a string, a number — every
// number is a double, so write 100.0, not 100 — or null) and `doc` (the
// document's fields, by that side's names) and
// returns the value for the other side. CEL's string extensions are
// available (upperAscii, trim, replace, substring, split, …).
type Mapping struct {
	Mesh   string            // the mesh's doctype
	Site   string            // the site's doctype ("" = the same name)
	Fields map[string]string // mesh fieldname → site fieldname (tables too)
	ToSite map[string]string // mesh fieldname → CEL: the mesh's value → the site's
	ToMesh map[string]string // mesh fieldname → CEL: the site's value → the mesh's
}

type mapper struct {
	Mapping
	back           map[string]string // site field → mesh field
	toSite, toMesh map[string]cel.Program
}

var celMapEnv, _ = cel.NewEnv(
	cel.Variable("value", cel.DynType),
	cel.Variable("doc", cel.MapType(cel.StringType, cel.DynType)),
	cel.CrossTypeNumericComparisons(true),
	ext.Strings(), // upperAscii, lowerAscii, trim, replace, substring, split…
)

func compileMapping(m Mapping) (*mapper, error) {
	if m.Site == "" {
		m.Site = m.Mesh
	}
	mp := &mapper{Mapping: m, back: map[string]string{}, toSite: map[string]cel.Program{}, toMesh: map[string]cel.Program{}}
	for mesh, site := range m.Fields {
		if other, dup := mp.back[site]; dup {
			return nil, fmt.Errorf("%w: mapping of %s: fields %s and %s both map to %s", ErrConfig, m.Mesh, other, mesh, site)
		}
		mp.back[site] = mesh
	}
	for _, side := range []struct {
		exprs map[string]string
		progs map[string]cel.Program
		name  string
	}{{m.ToSite, mp.toSite, "to_site"}, {m.ToMesh, mp.toMesh, "to_mesh"}} {
		for field, expr := range side.exprs {
			ast, iss := celMapEnv.Compile(expr)
			if iss != nil && iss.Err() != nil {
				return nil, fmt.Errorf("%w: mapping of %s: %s.%s %q: %v", ErrConfig, m.Mesh, side.name, field, expr, iss.Err())
			}
			prg, err := celMapEnv.Program(ast)
			if err != nil {
				return nil, fmt.Errorf("%w: mapping of %s: %s.%s: %v", ErrConfig, m.Mesh, side.name, field, err)
			}
			side.progs[field] = prg
		}
	}
	return mp, nil
}

func (mp *mapper) siteField(mesh string) string {
	if s, ok := mp.Fields[mesh]; ok {
		return s
	}
	return mesh
}

func (mp *mapper) meshField(site string) string {
	if m, ok := mp.back[site]; ok {
		return m
	}
	return site
}

func celOf(v crdt.Value) any {
	switch v.Kind {
	case crdt.KindStr:
		return v.Str
	case crdt.KindInt:
		return float64(v.Int)
	case crdt.KindDec:
		f, _ := strconv.ParseFloat(v.Str, 64)
		return f
	}
	return types.NullValue
}

func celDocOf(fields map[string]crdt.Value) map[string]any {
	m := make(map[string]any, len(fields))
	for k, v := range fields {
		m[k] = celOf(v)
	}
	return m
}

// transform runs a value transform and converts its result back.
func transform(prg cel.Program, field string, v crdt.Value, doc map[string]any) (crdt.Value, error) {
	out, _, err := prg.Eval(map[string]any{"value": celOf(v), "doc": doc})
	if err != nil {
		return crdt.Null, fmt.Errorf("transform of %s: %w", field, err)
	}
	switch x := out.Value().(type) {
	case string:
		return crdt.Str(x), nil
	case int64:
		return crdt.Int(x), nil
	case uint64:
		return crdt.Int(int64(x)), nil
	case bool:
		return crdt.Check(x), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return crdt.Null, fmt.Errorf("transform of %s gave %v", field, x)
		}
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return crdt.Int(int64(x)), nil
		}
		return crdt.Dec(strconv.FormatFloat(x, 'f', -1, 64))
	case types.Null, nil:
		return crdt.Null, nil
	}
	return crdt.Null, fmt.Errorf("transform of %s gave a %T; return a string, number, bool or null", field, out.Value())
}

// toSiteFields renames and transforms a document's (or row's) fields.
func (mp *mapper) toSiteFields(fields map[string]crdt.Value) (map[string]crdt.Value, error) {
	out := make(map[string]crdt.Value, len(fields))
	var doc map[string]any
	for k, v := range fields {
		if prg := mp.toSite[k]; prg != nil {
			if doc == nil {
				doc = celDocOf(fields)
			}
			var err error
			if v, err = transform(prg, k, v, doc); err != nil {
				return nil, err
			}
		}
		out[mp.siteField(k)] = v
	}
	return out, nil
}

// toMeshFields renames a site's fields to the mesh's and transforms them.
func (mp *mapper) toMeshFields(fields map[string]crdt.Value) (map[string]crdt.Value, error) {
	renamed := make(map[string]crdt.Value, len(fields))
	for k, v := range fields {
		renamed[mp.meshField(k)] = v
	}
	var doc map[string]any
	for k, prg := range mp.toMesh {
		v, ok := renamed[k]
		if !ok {
			continue
		}
		if doc == nil {
			doc = celDocOf(fields)
		}
		nv, err := transform(prg, k, v, doc)
		if err != nil {
			return nil, err
		}
		renamed[k] = nv
	}
	return renamed, nil
}

// SetMappings installs per-site names and transforms. Each mapping's site
// doctype must be among the Applier's doctypes and its fields among that
// doctype's fields.
func (a *Applier) SetMappings(ms ...Mapping) error {
	for _, m := range ms {
		mp, err := compileMapping(m)
		if err != nil {
			return err
		}
		dt := a.types[mp.Site]
		if dt == nil {
			return fmt.Errorf("%w: mapping of %s names the site doctype %q, which the bridge does not know", ErrConfig, m.Mesh, mp.Site)
		}
		for mesh, site := range mp.Fields {
			if dt.Field(site) == nil {
				return fmt.Errorf("%w: mapping of %s: field %s maps to %s.%s, which does not exist", ErrConfig, m.Mesh, mesh, mp.Site, site)
			}
		}
		a.maps[m.Mesh] = mp
		a.bySite[mp.Site] = mp
	}
	return nil
}

// siteType returns the site's definition of a mesh doctype.
func (a *Applier) siteType(mesh string) *DocType {
	if mp := a.maps[mesh]; mp != nil {
		return a.types[mp.Site]
	}
	return a.types[mesh]
}

var identity = &mapper{back: map[string]string{}, toSite: map[string]cel.Program{}, toMesh: map[string]cel.Program{}}

func (a *Applier) mapperOfSite(site string) *mapper {
	if mp := a.bySite[site]; mp != nil {
		return mp
	}
	return identity
}

// viewToSite renames and transforms a mesh document for the site.
func (a *Applier) viewToSite(dt *DocType, v *crdt.View) (*crdt.View, error) {
	mp := a.mapperOfSite(dt.Name)
	if mp == identity {
		return v, nil
	}
	out := *v
	out.Doctype = dt.Name
	var err error
	if out.Fields, err = mp.toSiteFields(v.Fields); err != nil {
		return nil, err
	}
	out.Tables = map[string][]crdt.RowView{}
	for tf, rows := range v.Tables {
		stf := mp.siteField(tf)
		f := dt.Field(stf)
		if f == nil {
			continue
		}
		cm := a.mapperOfSite(f.Options)
		list := make([]crdt.RowView, len(rows))
		for i, r := range rows {
			list[i] = r
			if list[i].Fields, err = cm.toSiteFields(r.Fields); err != nil {
				return nil, fmt.Errorf("row %s of %s: %w", r.Name, tf, err)
			}
		}
		out.Tables[stf] = list
	}
	return &out, nil
}

// captureToMesh renames and transforms a captured site document for the mesh.
func (a *Applier) captureToMesh(mesh string, dt *DocType, c *Capture) error {
	c.Doctype = mesh
	mp := a.mapperOfSite(dt.Name)
	if mp == identity || c.Deleted {
		return nil
	}
	var err error
	if c.Fields, err = mp.toMeshFields(c.Fields); err != nil {
		return err
	}
	def := map[string]bool{}
	for f := range c.Defaulted {
		def[mp.meshField(f)] = true
	}
	c.Defaulted = def
	tables := map[string][]crdt.DesiredRow{}
	for stf, rows := range c.Tables {
		cm := a.mapperOfSite(dt.Field(stf).Options)
		for i := range rows {
			if rows[i].Fields, err = cm.toMeshFields(rows[i].Fields); err != nil {
				return fmt.Errorf("row %s of %s: %w", rows[i].Name, stf, err)
			}
		}
		tables[mp.meshField(stf)] = rows
	}
	c.Tables = tables
	return nil
}

// SiteDoctype returns the site's name for a mesh doctype.
func (a *Applier) SiteDoctype(mesh string) string {
	if mp := a.maps[mesh]; mp != nil {
		return mp.Site
	}
	return mesh
}
