package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"meridian/crdt"
	"meridian/node"
	"meridian/replica"
)

func newVerifyCmd(g *globals) *cobra.Command {
	var peerID string
	cmd := &cobra.Command{
		Use:   "verify [--peer ID] [DOCTYPE]…",
		Short: "Prove this site holds the same masters as its peers, or name the documents that differ",
		Long: `Compares every document's content digest (computed afresh, not the one kept with
it) with a peer — per doctype, then per bucket, then per document — and names
the documents held differently. Without --peer every connected peer is compared.
A difference with a peer that has not delivered the same writes yet is shown as
not settled; one between settled sites is a divergence, and the command fails.
The node also verifies against a random peer every verify_interval.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(g.data)
			if err != nil {
				return err
			}
			var rs []node.VerifyResult
			if err := c.call(cmd.Context(), "POST", "/api/verify", map[string]any{"peer": peerID, "doctypes": args}, &rs); err != nil {
				return err
			}
			diverged := 0
			for _, r := range rs {
				if r.Settled && len(r.Divergent) > 0 {
					diverged += len(r.Divergent)
				}
			}
			if g.json {
				if err := printJSON(cmd, rs); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "DOCTYPE\tPEER\tRESULT\tDOCUMENT\tHERE\tTHERE")
				for _, r := range rs {
					switch {
					case r.Error != "":
						fmt.Fprintf(tw, "%s\t%s\terror: %s\t\t\t\n", r.Doctype, shortSite(r.Peer), r.Error)
					case r.Equal:
						fmt.Fprintf(tw, "%s\t%s\tidentical\t\t\t\n", r.Doctype, shortSite(r.Peer))
					default:
						what := "DIVERGENT"
						if !r.Settled {
							what = "not settled (writes still in flight)"
						}
						for _, d := range r.Divergent {
							fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Doctype, shortSite(r.Peer), what, d.Name, d.Local, d.Remote)
						}
					}
				}
				if err := tw.Flush(); err != nil {
					return err
				}
			}
			if diverged > 0 {
				return fmt.Errorf("%d documents are held differently by sites that delivered the same writes", diverged)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&peerID, "peer", "", "the peer to compare with (default: every connected peer)")
	return cmd
}

func newDebugCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "debug", Short: "Fault injection for drills and tests", Hidden: true}
	var field, value string
	tamper := &cobra.Command{
		Use:   "tamper DOCTYPE NAME --field F --value V",
		Short: "Rewrite a stored field behind the replica's back (the node must be stopped)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if field == "" {
				return errors.New("--field is required")
			}
			s, err := replica.OpenBadger(filepath.Join(g.data, node.StoreDir), replica.BadgerOptions{})
			if err != nil {
				return fmt.Errorf("%w (is the node still running?)", err)
			}
			defer s.Close()
			if err := replica.Tamper(s, args[0], args[1], field, crdt.Str(value)); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "tampered with %s %s.%s\n", args[0], args[1], field)
			return nil
		},
	}
	tamper.Flags().StringVar(&field, "field", "", "the field")
	tamper.Flags().StringVar(&value, "value", "", "the value to store")
	cmd.AddCommand(tamper)
	return cmd
}
