// Command meridian runs a Meridian site node and its tools. See README.md.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "meridian:", err)
		os.Exit(1)
	}
}

var version = "0.1.0-dev"

// globals are the flags every command shares.
type globals struct {
	data string
	json bool
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "meridian",
		Short: "Keep Frappe/ERPNext master data identical across sites",
		Long: `Meridian keeps master data identical across many Frappe/ERPNext sites: each site
runs a node that stores masters as CRDT documents and replicates them over libp2p.

Every command takes --data DIR (default $MERIDIAN_DATA, else ./meridian-data);
client commands reach the node running on that data directory.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	def := os.Getenv("MERIDIAN_DATA")
	if def == "" {
		def = "meridian-data"
	}
	root.PersistentFlags().StringVar(&g.data, "data", def, "data directory ($MERIDIAN_DATA)")
	root.PersistentFlags().BoolVar(&g.json, "json", false, "print JSON for scripts")
	root.AddCommand(
		newInitCmd(g), newNodeCmd(g), newIDCmd(g), newPeersCmd(g), newStatusCmd(g),
		newDocCmd(g), newConflictsCmd(g), newNetworkCmd(g), newSimulateCmd(),
		newAuthorityCmd(g), newRecordsCmd(g), newSubscribeCmd(g), newVersionsCmd(g), newConsumersCmd(g),
		newBridgeCmd(g), newSyncLogCmd(g), newResyncCmd(g), newVerifyCmd(g), newDebugCmd(g), newBundleCmd(g),
		&cobra.Command{
			Use:   "version",
			Short: "Print the version",
			Run: func(cmd *cobra.Command, _ []string) {
				fmt.Fprintln(cmd.OutOrStdout(), "meridian", version)
			},
		},
	)
	return root
}
