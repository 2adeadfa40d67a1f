package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"meridian/bridge"
	"meridian/node"
)

func newBridgeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "bridge", Short: "The Frappe bridge: converged masters in the site's own database"}
	cmd.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "Per master: the applied version vector, documents written, failures, pending changes, lag",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(g.data)
			if err != nil {
				return err
			}
			var st node.BridgeStatus
			if err := c.call(cmd.Context(), "GET", "/api/bridge/status", nil, &st); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd, st)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "site       %s (%s, time zone %s)\nlag        %s\n", st.Site, st.Dialect, st.TimeZone, (time.Duration(st.LagMs) * time.Millisecond).String())
			if st.Error != "" {
				fmt.Fprintf(w, "last error %s\n", st.Error)
			}
			tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "DOCTYPE\tWRITTEN\tDELETED\tFAILURES\tPENDING\tLAST APPLY\tAPPLIED")
			for _, d := range st.Doctypes {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\n", d.Doctype, d.Written, d.Deleted, d.Failures, d.Pending, d.LastApply, d.Applied)
			}
			return tw.Flush()
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "adopt DOCTYPE",
		Short: "Make a doctype's existing rows in the site's database part of the mesh (progress shown)",
		Long: `Reads every row of DOCTYPE (one of [bridge] doctypes) from the site's database,
with its child rows, and writes what the mesh does not hold yet as edits of this
site. Run it once on the site whose data becomes the master; other sites receive
the documents like any edit.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(g.data)
			if err != nil {
				return err
			}
			body, _ := json.Marshal(map[string]string{"doctype": args[0]})
			req, err := http.NewRequestWithContext(cmd.Context(), "POST", c.base+"/api/bridge/adopt", bytes.NewReader(body))
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", "Bearer "+c.token)
			resp, err := (&http.Client{}).Do(req) // no timeout: a large table takes a while
			if err != nil {
				return fmt.Errorf("the node's admin API does not answer: %w", err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				var e struct {
					Error string `json:"error"`
				}
				_ = json.NewDecoder(resp.Body).Decode(&e)
				return errors.New(e.Error)
			}
			sc := bufio.NewScanner(resp.Body)
			tty := isTerminal() && !g.json
			var last node.AdoptProgress
			for sc.Scan() {
				if err := json.Unmarshal(sc.Bytes(), &last); err != nil {
					return err
				}
				switch {
				case g.json:
					fmt.Fprintln(cmd.OutOrStdout(), sc.Text())
				case tty:
					fmt.Fprintf(cmd.ErrOrStderr(), "\r%s %d/%d rows", bar(last.Done, last.Total, 30), last.Done, last.Total)
				default:
					fmt.Fprintf(cmd.ErrOrStderr(), "adopting %s: %d/%d rows\n", args[0], last.Done, last.Total)
				}
			}
			if tty {
				fmt.Fprintln(cmd.ErrOrStderr())
			}
			if err := sc.Err(); err != nil {
				return err
			}
			if last.Error != "" {
				return errors.New(last.Error)
			}
			if !last.Finished {
				return errors.New("the node stopped answering before the adoption finished; run it again (it resumes: rows already in the mesh are not written twice)")
			}
			if !g.json {
				fmt.Fprintf(cmd.OutOrStdout(), "adopted %s: %d rows read, %d documents written into the mesh\n", args[0], last.Done, last.Proposed)
			}
			return nil
		},
	})
	return cmd
}

// bar renders a progress bar of width characters.
func bar(done, total, width int) string {
	filled := width
	if total > 0 {
		filled = done * width / total
	}
	return "[" + strings.Repeat("#", filled) + strings.Repeat(" ", width-filled) + "]"
}

func newSyncLogCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "synclog",
		Short: "Documents the bridge could not write, with the reason, attempts and next retry",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(g.data)
			if err != nil {
				return err
			}
			var fs []bridge.Failure
			if err := c.call(cmd.Context(), "GET", "/api/bridge/synclog", nil, &fs); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd, fs)
			}
			if len(fs) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "the sync log is empty: every document is in the site's database")
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "DOCTYPE\tNAME\tATTEMPTS\tFIRST FAILED\tNEXT RETRY\tREASON")
			for _, f := range fs {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", f.Doctype, f.Name, f.Attempts, f.FirstFailed.Format(time.RFC3339), f.NextRetry.Format(time.RFC3339), f.Reason)
			}
			return tw.Flush()
		},
	}
}

func newResyncCmd(g *globals) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "resync DOCTYPE [NAME] | --all",
		Short: "Write documents into the site's database again (one, a whole master, or every master)",
		Args:  cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) > 0) {
				return errors.New("give DOCTYPE [NAME], or --all")
			}
			body := map[string]string{}
			if len(args) > 0 {
				body["doctype"] = args[0]
			}
			if len(args) > 1 {
				body["name"] = args[1]
			}
			c, err := newClient(g.data)
			if err != nil {
				return err
			}
			var out struct {
				Documents int `json:"documents"`
			}
			if err := c.call(cmd.Context(), "POST", "/api/bridge/resync", body, &out); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd, out)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d documents written again\n", out.Documents)
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "every document of every master")
	return cmd
}
