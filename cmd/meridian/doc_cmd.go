package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"meridian/node"
)

func newDocCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "doc", Short: "Read and write master documents on the running node"}
	var body, file string
	put := &cobra.Command{
		Use:   "put DOCTYPE NAME (--json '{…}' | --file F | -)",
		Short: "Create or update a document (fields at the top, child tables as arrays of rows)",
		Long: `Writes a document in the shape of Frappe's /api/resource/DOCTYPE/NAME: fields at
the top level, child tables as arrays of row objects (rows keep their "name";
new rows without one get a fresh one). Fields not given are left unchanged; a
child table given replaces the table. Returns once the change is durable.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			data := []byte(body)
			switch {
			case file == "-" || (body == "" && file == "" && len(args) == 2 && !isTerminal()):
				b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 8<<20))
				if err != nil {
					return err
				}
				data = b
			case file != "":
				b, err := os.ReadFile(file)
				if err != nil {
					return err
				}
				data = b
			}
			if len(strings.TrimSpace(string(data))) == 0 {
				return errors.New("give the document with --json '{\"item_name\": \"…\"}', --file F or on stdin")
			}
			if !json.Valid(data) {
				return errors.New("the document is not valid JSON")
			}
			c, err := newClient(g.data)
			if err != nil {
				return err
			}
			var out json.RawMessage
			if err := c.call(cmd.Context(), "PUT", resourcePath(args[0], args[1]), data, &out); err != nil {
				return err
			}
			return printDoc(cmd, g, out)
		},
	}
	put.Flags().StringVar(&body, "json", "", "the document as JSON")
	put.Flags().StringVar(&file, "file", "", "read the document from a file (- for stdin)")
	get := &cobra.Command{
		Use:   "get DOCTYPE NAME",
		Short: "Print a document as JSON",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(g.data)
			if err != nil {
				return err
			}
			var out json.RawMessage
			if err := c.call(cmd.Context(), "GET", resourcePath(args[0], args[1]), nil, &out); err != nil {
				return err
			}
			return printDoc(cmd, g, out)
		},
	}
	del := &cobra.Command{
		Use:   "delete DOCTYPE NAME",
		Short: "Delete a document (everywhere, once replicated)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(g.data)
			if err != nil {
				return err
			}
			if err := c.call(cmd.Context(), "DELETE", resourcePath(args[0], args[1]), nil, nil); err != nil {
				return err
			}
			if !g.json {
				fmt.Fprintf(cmd.OutOrStdout(), "deleted %s %s\n", args[0], args[1])
			}
			return nil
		},
	}
	var limit int
	list := &cobra.Command{
		Use:   "list DOCTYPE",
		Short: "List the documents of a doctype",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(g.data)
			if err != nil {
				return err
			}
			var out struct {
				Data []map[string]string `json:"data"`
			}
			path := resourcePath(args[0])
			if limit > 0 {
				path += fmt.Sprintf("?limit=%d", limit)
			}
			if err := c.call(cmd.Context(), "GET", path, nil, &out); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd, out.Data)
			}
			for _, d := range out.Data {
				fmt.Fprintln(cmd.OutOrStdout(), d["name"])
			}
			return nil
		},
	}
	list.Flags().IntVar(&limit, "limit", 0, "at most this many")
	history := &cobra.Command{
		Use:   "history DOCTYPE NAME",
		Short: "Which site changed which field to what, and when (the last 256 writes of the document)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(g.data)
			if err != nil {
				return err
			}
			var hs []node.HistoryJSON
			if err := c.call(cmd.Context(), "GET", "/api/history/"+url.PathEscape(args[0])+"/"+url.PathEscape(args[1]), nil, &hs); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd, hs)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tSITE\tFIELD\tVALUE")
			for _, h := range hs {
				field := h.Field
				if h.Table != "" {
					field = h.Table + "[" + h.Row + "]." + h.Field
					if strings.HasPrefix(h.Field, "(") {
						field = h.Table + "[" + h.Row + "] " + h.Field
					}
				}
				v := ""
				if h.Value != nil {
					v = fmt.Sprint(h.Value)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", h.Time, shortSite(h.Site), field, v)
			}
			return tw.Flush()
		},
	}
	cmd.AddCommand(put, get, del, list, history)
	return cmd
}

// printDoc prints {"data": doc} as the document's JSON, or as a table of
// fields for people.
func printDoc(cmd *cobra.Command, g *globals, raw json.RawMessage) error {
	var env struct {
		Data map[string]any `json:"data"`
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&env); err != nil {
		return err
	}
	if g.json {
		return printJSON(cmd, env.Data)
	}
	keys := make([]string, 0, len(env.Data))
	for k := range env.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
	for _, k := range keys {
		if rows, ok := env.Data[k].([]any); ok {
			fmt.Fprintf(tw, "%s\t(%d rows)\n", k, len(rows))
			for _, r := range rows {
				b, _ := json.Marshal(r)
				fmt.Fprintf(tw, "  \t%s\n", b)
			}
			continue
		}
		fmt.Fprintf(tw, "%s\t%v\n", k, env.Data[k])
	}
	return tw.Flush()
}

func isTerminal() bool {
	fi, err := os.Stdin.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func newConflictsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "conflicts [DOCTYPE]",
		Short: "List fields where concurrent writes were resolved (value shown, other values, sites, times)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(g.data)
			if err != nil {
				return err
			}
			path := "/api/conflicts"
			if len(args) == 1 {
				path += "?doctype=" + args[0]
			}
			var out struct {
				Data []node.ConflictJSON `json:"data"`
			}
			if err := c.call(cmd.Context(), "GET", path, nil, &out); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd, out.Data)
			}
			if len(out.Data) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no conflicts")
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "DOCTYPE\tNAME\tFIELD\tVALUE\tSITE\tTIME\tSHOWN")
			for _, c := range out.Data {
				field := c.Field
				if c.Table != "" {
					field = c.Table + "[" + c.Row + "]." + c.Field
				}
				for _, v := range c.Values {
					mark := ""
					if v.Winner {
						mark = "yes"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\t%s\n", c.Doctype, c.Name, field, v.Value, shortSite(v.Site), v.Time, mark)
				}
			}
			return tw.Flush()
		},
	}
	var value, table, row string
	resolve := &cobra.Command{
		Use:   "resolve DOCTYPE NAME FIELD --value V [--table T --row R]",
		Short: "Write a value that dominates every concurrent write of the field: the conflict is gone everywhere",
		Args:  cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("value") {
				return errors.New("--value is required (JSON: \"text\", 12.5, true — or plain text)")
			}
			raw := json.RawMessage(value)
			if !json.Valid(raw) {
				b, _ := json.Marshal(value) // plain text
				raw = b
			}
			c, err := newClient(g.data)
			if err != nil {
				return err
			}
			body := map[string]any{"doctype": args[0], "name": args[1], "field": args[2], "table": table, "row": row, "value": raw}
			var out map[string]string
			if err := c.call(cmd.Context(), "POST", "/api/conflicts/resolve", body, &out); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), out["message"])
			return nil
		},
	}
	resolve.Flags().StringVar(&value, "value", "", "the value (JSON, or plain text)")
	resolve.Flags().StringVar(&table, "table", "", "child table fieldname, for a row's field")
	resolve.Flags().StringVar(&row, "row", "", "row name, for a row's field")
	cmd.AddCommand(resolve)
	return cmd
}

func shortSite(s string) string {
	if len(s) > 12 {
		return "…" + s[len(s)-8:]
	}
	return s
}
