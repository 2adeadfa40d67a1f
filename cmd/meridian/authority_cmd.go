package main

import (
	"bufio"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"meridian/bridge"
	"meridian/crdt"
	"meridian/node"
)

// signing holds the flags of the commands that sign authority records.
type signing struct {
	key     string
	out     string
	expires time.Duration
}

func (s *signing) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&s.key, "key", "", "authority key file (default DATA/"+node.AuthorityKeyFile+")")
	cmd.Flags().StringVarP(&s.out, "out", "o", "", "append the signed record to FILE instead of handing it to the running node (sign offline, import with `meridian records import FILE`)")
	cmd.Flags().DurationVar(&s.expires, "expires", 0, "the record stops counting after this long (default: never)")
}

func (s *signing) load(g *globals) (*node.AuthorityKey, error) {
	path := s.key
	if path == "" {
		path = filepath.Join(g.data, node.AuthorityKeyFile)
	}
	return node.LoadAuthorityKey(path)
}

// emit signs a record and hands it to the running node, or appends it to --out.
func (s *signing) emit(cmd *cobra.Command, g *globals, key *node.AuthorityKey, rec *crdt.Record) error {
	rec.Mesh = key.Mesh
	rec.Issued = time.Now().UnixMilli()
	if s.expires > 0 {
		rec.Expires = rec.Issued + s.expires.Milliseconds()
	}
	rec.Sign(key.Key)
	text := node.EncodeRecordText(rec)
	if s.out != "" {
		f, err := os.OpenFile(s.out, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintln(f, text); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "signed %s; appended to %s\n", rec.Key(), s.out)
		return nil
	}
	return importRecords(cmd, g, []string{text})
}

func importRecords(cmd *cobra.Command, g *globals, texts []string) error {
	c, err := newClient(g.data)
	if err != nil {
		return fmt.Errorf("%w\n(or sign offline with --out FILE and import the file on a running node)", err)
	}
	var res []node.ImportResult
	if err := c.call(cmd.Context(), "POST", "/api/meridian/records", map[string]any{"records": texts}, &res); err != nil {
		return err
	}
	if g.json {
		return printJSON(cmd, res)
	}
	var failed []string
	for _, r := range res {
		switch r.Result {
		case "imported":
			fmt.Fprintf(cmd.OutOrStdout(), "%s: signed and sent to the mesh\n", r.Key)
		case "known":
			fmt.Fprintf(cmd.OutOrStdout(), "%s: already in effect (nothing changed)\n", r.Key)
		default:
			failed = append(failed, fmt.Sprintf("%s: %s", r.Key, r.Error))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("records refused:\n  %s", strings.Join(failed, "\n  "))
	}
	return nil
}

func newAuthorityCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "authority",
		Short: "The mesh's authority: admissions, grants and master versions (signed records)",
		Long: `The authority is an ed25519 key that signs the mesh's decisions: which sites are
admitted, which may read or write which master (optionally only the rows a CEL
condition selects), and which schema versions of a master are active, deprecated
or retired. Records gossip like data and every site enforces them.

The key lives in the head office's data directory (DATA/authority.key) or, with
--key FILE, anywhere: sign offline with --out FILE and import the file on any node
with 'meridian records import FILE'.`,
	}
	cmd.AddCommand(newAuthorityInitCmd(g), newGrantCmd(g, "grant"), newGrantCmd(g, "approve"), newRevokeCmd(g),
		newAdmitCmd(g), newVersionCmd(g))
	return cmd
}

func newAuthorityInitCmd(g *globals) *cobra.Command {
	var key, mesh string
	cmd := &cobra.Command{
		Use:   "init [--key FILE] [--mesh ID]",
		Short: "Create the authority key and mesh ID; print the public key sites pin",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			inData := key == ""
			if inData {
				key = filepath.Join(g.data, node.AuthorityKeyFile)
			}
			k, err := node.CreateAuthorityKey(key, mesh)
			if err != nil {
				return err
			}
			pinned := false
			if inData {
				if _, err := os.Stat(filepath.Join(g.data, node.ConfigFile)); err == nil {
					if err := node.PinAuthority(g.data, k.Public(), k.Mesh); err != nil {
						return err
					}
					pinned = true
				}
			}
			if g.json {
				return printJSON(cmd, map[string]any{"public_key": k.Public(), "mesh": k.Mesh, "key_file": key, "pinned": pinned})
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "authority public key  %s\nmesh                  %s\nkey file              %s (keep it safe: it decides who is in the mesh)\n", k.Public(), k.Mesh, key)
			if pinned {
				fmt.Fprintf(w, "pinned in %s; the node admits itself when it starts (restart it if it is running)\n", filepath.Join(g.data, node.ConfigFile))
			}
			fmt.Fprintf(w, "on every site: meridian init --authority %s --mesh %s\n", k.Public(), k.Mesh)
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "write the key to FILE instead of DATA/"+node.AuthorityKeyFile+" (to sign offline)")
	cmd.Flags().StringVar(&mesh, "mesh", "main", "the mesh ID records are bound to")
	return cmd
}

func newGrantCmd(g *globals, verb string) *cobra.Command {
	var s signing
	var read, write bool
	var where string
	short := "Grant a site read or write rights on a doctype (admits the site)"
	use := "grant SITE DOCTYPE --read|--write [--where EXPR]"
	if verb == "approve" {
		short = "Approve a site's subscription request: grant it read (or --write) rights on the doctype"
		use = "approve SITE DOCTYPE [--write] [--where EXPR]"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long: short + `.

--where limits what the site receives to the documents for which a CEL
expression over the document holds, e.g. --where 'doc.customer_group == "Wholesale"'.
A document that starts to match is sent whole. A later grant replaces an earlier one.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if verb == "approve" && !write {
				read = true
			}
			if !read && !write {
				return errors.New("say which rights: --read, --write (write includes read), or use `meridian authority revoke` to take them away")
			}
			site, dt := args[0], args[1]
			if _, err := crdt.PeerIDPublicKey(site); err != nil {
				return fmt.Errorf("SITE %q is not a site ID (the peer ID `meridian id` prints): %v", site, err)
			}
			if err := crdt.ValidateName("doctype", dt); err != nil {
				return err
			}
			if where != "" {
				if err := node.CompileCondition(where); err != nil {
					return fmt.Errorf("--where: %w", err)
				}
			}
			k, err := s.load(g)
			if err != nil {
				return err
			}
			return s.emit(cmd, g, k, &crdt.Record{Kind: crdt.RecordGrant, Site: crdt.SiteID(site), Doctype: dt, Read: read || write, Write: write, Where: where})
		},
	}
	if verb == "grant" {
		cmd.Flags().BoolVar(&read, "read", false, "the site may receive the doctype")
	}
	cmd.Flags().BoolVar(&write, "write", false, "the site may also write the doctype")
	cmd.Flags().StringVar(&where, "where", "", "CEL condition on the document (`doc`) limiting what the site receives")
	s.flags(cmd)
	return cmd
}

func newRevokeCmd(g *globals) *cobra.Command {
	var s signing
	cmd := &cobra.Command{
		Use:   "revoke SITE DOCTYPE",
		Short: "Take a site's rights on a doctype away (it receives no new updates; its writes are refused)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := crdt.PeerIDPublicKey(args[0]); err != nil {
				return fmt.Errorf("SITE %q is not a site ID: %v", args[0], err)
			}
			k, err := s.load(g)
			if err != nil {
				return err
			}
			return s.emit(cmd, g, k, &crdt.Record{Kind: crdt.RecordGrant, Site: crdt.SiteID(args[0]), Doctype: args[1]})
		},
	}
	s.flags(cmd)
	return cmd
}

func newAdmitCmd(g *globals) *cobra.Command {
	var s signing
	var expel bool
	cmd := &cobra.Command{
		Use:   "admit SITE [--expel]",
		Short: "Admit a site to the mesh without any grant yet (or expel it with --expel)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := crdt.PeerIDPublicKey(args[0]); err != nil {
				return fmt.Errorf("SITE %q is not a site ID: %v", args[0], err)
			}
			k, err := s.load(g)
			if err != nil {
				return err
			}
			return s.emit(cmd, g, k, &crdt.Record{Kind: crdt.RecordAdmit, Site: crdt.SiteID(args[0]), Admit: !expel})
		},
	}
	cmd.Flags().BoolVar(&expel, "expel", false, "expel the site: no peer talks to it until a later grant or admission")
	s.flags(cmd)
	return cmd
}

// schemaDigest hashes a DocType JSON file's data fields.
func schemaDigest(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	dt, err := bridge.ParseDocType(data)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	var fields []string
	for _, f := range dt.Fields {
		fields = append(fields, f.Fieldname+":"+f.Fieldtype+":"+f.Options)
	}
	if len(fields) == 0 {
		return "", fmt.Errorf("%s: the DocType has no fields", path)
	}
	return crdt.SchemaDigest(fields), nil
}

func newVersionCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "version", Short: "Publish, deprecate or retire master versions"}
	var s signing
	var schema string
	var ver uint64
	var parents []uint
	publish := &cobra.Command{
		Use:   "publish DOCTYPE --schema DOCTYPE.json [--version N] [--parent N]…",
		Short: "Publish a new active version of a master, identified by its DocType's field list",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dt := args[0]
			if schema == "" {
				return errors.New("--schema DOCTYPE.json is required (the DocType definition, as exported by Frappe)")
			}
			digest, err := schemaDigest(schema)
			if err != nil {
				return err
			}
			k, err := s.load(g)
			if err != nil {
				return err
			}
			var known []node.VersionJSON
			if s.out == "" {
				if c, err := newClient(g.data); err == nil {
					_ = c.call(cmd.Context(), "GET", "/api/meridian/versions/"+url.PathEscape(dt), nil, &known)
				}
			}
			for _, v := range known {
				if v.Schema == digest {
					return fmt.Errorf("version %d of %s already has this schema", v.Version, dt)
				}
			}
			if ver == 0 {
				if s.out != "" {
					return errors.New("--version N is required when signing offline (--out)")
				}
				ver = 1
				for _, v := range known {
					ver = max(ver, v.Version+1)
				}
				if len(parents) == 0 && len(known) > 0 {
					parents = []uint{uint(known[len(known)-1].Version)}
				}
			}
			rec := &crdt.Record{Kind: crdt.RecordVersion, Doctype: dt, Version: ver, Schema: digest, Status: crdt.StatusActive}
			for _, p := range parents {
				rec.Parents = append(rec.Parents, uint64(p))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s version %d, schema %s\n", dt, ver, digest[:16])
			return s.emit(cmd, g, k, rec)
		},
	}
	publish.Flags().StringVar(&schema, "schema", "", "DocType JSON file of this version")
	publish.Flags().Uint64Var(&ver, "version", 0, "version number (default: one more than the latest known)")
	publish.Flags().UintSliceVar(&parents, "parent", nil, "version(s) this one follows (default: the latest known)")
	s.flags(publish)
	cmd.AddCommand(publish)
	for _, status := range []crdt.VersionStatus{crdt.StatusDeprecated, crdt.StatusRetired} {
		var s signing
		var schema string
		verb := map[crdt.VersionStatus]string{crdt.StatusDeprecated: "deprecate", crdt.StatusRetired: "retire"}[status]
		short := map[crdt.VersionStatus]string{
			crdt.StatusDeprecated: "Deprecate a version: writes made under it are still accepted, and flagged",
			crdt.StatusRetired:    "Retire a version: writes made under it are rejected everywhere, with a reason in the sync log",
		}[status]
		c := &cobra.Command{
			Use:   verb + " DOCTYPE VERSION",
			Short: short,
			Args:  cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				dt := args[0]
				v, err := strconv.ParseUint(args[1], 10, 64)
				if err != nil || v == 0 {
					return fmt.Errorf("VERSION %q must be a version number like 2", args[1])
				}
				k, err := s.load(g)
				if err != nil {
					return err
				}
				rec := &crdt.Record{Kind: crdt.RecordVersion, Doctype: dt, Version: v, Status: status}
				if schema != "" {
					if rec.Schema, err = schemaDigest(schema); err != nil {
						return err
					}
				} else {
					cl, err := newClient(g.data)
					if err != nil {
						return fmt.Errorf("%w (offline, give the version's --schema DOCTYPE.json)", err)
					}
					var known []node.VersionJSON
					if err := cl.call(cmd.Context(), "GET", "/api/meridian/versions/"+url.PathEscape(dt), nil, &known); err != nil {
						return err
					}
					for _, kv := range known {
						if kv.Version == v {
							rec.Schema, rec.Parents = kv.Schema, kv.Parents
						}
					}
					if rec.Schema == "" {
						return fmt.Errorf("version %d of %s is not known to this node; publish it first (or give --schema)", v, dt)
					}
				}
				return s.emit(cmd, g, k, rec)
			},
		}
		c.Flags().StringVar(&schema, "schema", "", "DocType JSON of the version (needed when signing offline)")
		s.flags(c)
		cmd.AddCommand(c)
	}
	return cmd
}

func newRecordsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "records", Short: "List, export and import the authority's signed records"}
	var out string
	list := &cobra.Command{
		Use:   "list [-o FILE]",
		Short: "List the records in effect on this node (with -o, write them to FILE to carry elsewhere)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(g.data)
			if err != nil {
				return err
			}
			var recs []node.RecordJSON
			if err := c.call(cmd.Context(), "GET", "/api/meridian/records", nil, &recs); err != nil {
				return err
			}
			if out != "" {
				var b strings.Builder
				for _, r := range recs {
					b.WriteString(r.Record + "\n")
				}
				if err := os.WriteFile(out, []byte(b.String()), 0o600); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%d records written to %s\n", len(recs), out)
				return nil
			}
			if g.json {
				return printJSON(cmd, recs)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KIND\tSITE\tDOCTYPE\tDECISION\tISSUED")
			for _, r := range recs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Kind, shortSite(r.Site), r.Doctype, decision(r), r.Issued)
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVarP(&out, "out", "o", "", "write the records (one base64 record per line) to FILE")
	imp := &cobra.Command{
		Use:   "import FILE",
		Short: "Hand records signed elsewhere (one base64 record per line) to the running node",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			var texts []string
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for line := 1; sc.Scan(); line++ {
				t := strings.TrimSpace(sc.Text())
				if t == "" || strings.HasPrefix(t, "#") {
					continue
				}
				if _, err := node.DecodeRecordText(t); err != nil {
					return fmt.Errorf("%s:%d: %v; nothing was imported", args[0], line, err)
				}
				texts = append(texts, t)
			}
			if err := sc.Err(); err != nil {
				return err
			}
			if len(texts) == 0 {
				return fmt.Errorf("%s holds no records", args[0])
			}
			return importRecords(cmd, g, texts)
		},
	}
	cmd.AddCommand(list, imp)
	return cmd
}

func decision(r node.RecordJSON) string {
	switch r.Kind {
	case "version":
		return fmt.Sprintf("v%d %s", r.Version, r.Status)
	case "grant":
		s := "revoked"
		switch {
		case r.Write:
			s = "write"
		case r.Read:
			s = "read"
		}
		if r.Where != "" {
			s += " where " + r.Where
		}
		return s
	case "admit":
		if r.Admit {
			return "admitted"
		}
		return "expelled"
	case "subscribe":
		return "requested"
	}
	return ""
}

func newSubscribeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "subscribe DOCTYPE",
		Short: "Ask the authority for a master: a signed request it approves with `meridian authority approve`",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(g.data)
			if err != nil {
				return err
			}
			var res []node.ImportResult
			if err := c.call(cmd.Context(), "POST", "/api/meridian/subscribe", map[string]string{"doctype": args[0]}, &res); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd, res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "asked for %s; the authority approves with: meridian authority approve SITE %s\n", args[0], args[0])
			return nil
		},
	}
}

func newVersionsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "versions DOCTYPE",
		Short: "Show a master's versions, their status, and which sites run each",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(g.data)
			if err != nil {
				return err
			}
			var vs []node.VersionJSON
			if err := c.call(cmd.Context(), "GET", "/api/meridian/versions/"+url.PathEscape(args[0]), nil, &vs); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd, vs)
			}
			if len(vs) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "no versions of %s published\n", args[0])
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "VERSION\tSTATUS\tSCHEMA\tPARENTS\tPUBLISHED\tSITES")
			for _, v := range vs {
				mark := ""
				if v.Current {
					mark = " (this site)"
				}
				var sites []string
				for _, s := range v.Sites {
					sites = append(sites, shortSite(s))
				}
				fmt.Fprintf(tw, "%d%s\t%s\t%s\t%v\t%s\t%s\n", v.Version, mark, v.Status, v.Schema[:12], v.Parents, v.Issued, strings.Join(sites, " "))
			}
			return tw.Flush()
		},
	}
}

func newConsumersCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "consumers",
		Short: "Per site and doctype: registration, version in use, last sync, updates behind, failures, last seen",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(g.data)
			if err != nil {
				return err
			}
			var cs []node.Consumer
			if err := c.call(cmd.Context(), "GET", "/api/meridian/consumers", nil, &cs); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd, cs)
			}
			when := func(ms int64) string {
				if ms == 0 {
					return "-"
				}
				return time.Since(time.UnixMilli(ms)).Round(time.Second).String() + " ago"
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SITE\tDOCTYPE\tSTATUS\tVERSION\tLAST SYNC\tBEHIND\tFAILURES\tLAST SEEN")
			for _, c := range cs {
				st := c.Status
				if c.Where != "" {
					st += " where " + c.Where
				}
				v := "-"
				if c.Version != 0 {
					v = strconv.FormatUint(c.Version, 10)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", shortSite(c.Site), c.Doctype, st, v, when(c.LastSync), c.Behind, c.Failures, when(c.LastSeen))
			}
			return tw.Flush()
		},
	}
}
