package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"meridian/node"
	"meridian/transport"
)

func newInitCmd(g *globals) *cobra.Command {
	var listen []string
	var authority, mesh string
	cmd := &cobra.Command{
		Use:   "init [--listen MULTIADDR]… [--authority PUBKEY --mesh ID]",
		Short: "Create a node's data directory: identity key, config and API token",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if mesh != "" && authority == "" {
				return errors.New("--mesh needs --authority (the key `meridian authority init` printed)")
			}
			if err := node.InitWith(g.data, listen, authority, mesh); err != nil {
				return err
			}
			key, err := transport.LoadOrCreateIdentity(g.data)
			if err != nil {
				return err
			}
			id, err := transport.SiteID(key)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd, map[string]string{"peer_id": id, "data": g.data})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "initialised %s\npeer ID %s\nstart it with: meridian node --data %s\n", g.data, id, g.data)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&listen, "listen", nil, "multiaddr to listen on (repeatable; default TCP and QUIC on port 4001)")
	cmd.Flags().StringVar(&authority, "authority", "", "pin the mesh's authority public key (as `meridian authority init` printed it)")
	cmd.Flags().StringVar(&mesh, "mesh", "", "the mesh ID (default main)")
	return cmd
}

func newNodeCmd(g *globals) *cobra.Command {
	var (
		listen   []string
		api      string
		peers    []string
		logLevel string
		logJSON  bool
		forge    bool
		site     string
		dsn      string
	)
	cmd := &cobra.Command{
		Use:   "node [--listen MULTIADDR]… [--api HOST:PORT] [--peer MULTIADDR]…",
		Short: "Run the node in the foreground (stops on SIGINT or SIGTERM)",
		Long: `Runs the site's node: replication over libp2p, the Badger store and the admin API
on loopback. Port 0 in --listen or --api picks a free port; the chosen addresses
are written to the data directory (addrs, api.addr) for client commands.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := node.LoadConfig(g.data)
			if err != nil {
				return err
			}
			if len(listen) > 0 {
				cfg.Listen = listen
			}
			if api != "" {
				cfg.API = api
			}
			cfg.Peers = append(cfg.Peers, peers...)
			if logLevel != "" {
				cfg.LogLevel = logLevel
			}
			if logJSON {
				cfg.LogFormat = "json"
			}
			cfg.UnsafeForgeWrites = forge
			if site != "" || dsn != "" {
				if site != "" && dsn != "" {
					return errors.New("give --site or --db, not both")
				}
				if cfg.Bridge == nil {
					cfg.Bridge = &node.BridgeConfig{}
				}
				cfg.Bridge.Site, cfg.Bridge.DB = site, dsn
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			log := newLogger(cfg)
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			n, err := node.Start(ctx, cfg, log)
			if err != nil {
				return err
			}
			return n.Wait(ctx)
		},
	}
	cmd.Flags().StringArrayVar(&listen, "listen", nil, "multiaddr to listen on (repeatable), e.g. /ip4/0.0.0.0/tcp/4001")
	cmd.Flags().StringVar(&site, "site", "", "run the bridge into this Frappe site (PATH/sites/SITE; its site_config.json is read as Frappe reads it)")
	cmd.Flags().StringVar(&dsn, "db", "", "run the bridge into this database instead: mysql://user:pass@host:3306/db or postgres://user@host:5432/db")
	// Tests only: act as a compromised site that writes without a grant, to
	// show that every other site rejects its writes.
	cmd.Flags().BoolVar(&forge, "unsafe-forge-writes", false, "")
	_ = cmd.Flags().MarkHidden("unsafe-forge-writes")
	cmd.Flags().StringVar(&api, "api", "", "admin API address on loopback, e.g. 127.0.0.1:7070 (port 0: any)")
	cmd.Flags().StringArrayVar(&peers, "peer", nil, "multiaddr of a peer to dial (repeatable)")
	cmd.Flags().StringVar(&logLevel, "log-level", "", "debug, info, warn or error")
	cmd.Flags().BoolVar(&logJSON, "log-json", false, "log JSON lines")
	return cmd
}

func newLogger(cfg node.Config) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func newIDCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "id",
		Short: "Print this site's peer ID and full multiaddrs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := os.Stat(filepath.Join(g.data, transport.IdentityFileName)); err != nil {
				return fmt.Errorf("no identity in %s: run `meridian init --data %s` first", g.data, g.data)
			}
			key, err := transport.LoadOrCreateIdentity(g.data)
			if err != nil {
				return err
			}
			id, _ := transport.SiteID(key)
			var addrs []string
			if raw, err := os.ReadFile(filepath.Join(g.data, node.AddrsFile)); err == nil {
				for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
					if l != "" {
						addrs = append(addrs, l)
					}
				}
			}
			if g.json {
				return printJSON(cmd, map[string]any{"peer_id": id, "addrs": addrs})
			}
			fmt.Fprintln(cmd.OutOrStdout(), id)
			for _, a := range addrs {
				fmt.Fprintln(cmd.OutOrStdout(), a)
			}
			if len(addrs) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "(no addresses yet: they are known once the node has run)")
			}
			return nil
		},
	}
}

func newPeersCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "peers", Short: "Add, list and remove peers of the running node"}
	cmd.AddCommand(&cobra.Command{
		Use:   "add MULTIADDR",
		Short: "Add a peer by multiaddr (/ip4/1.2.3.4/tcp/4001/p2p/12D3KooW…)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := transport.ParsePeerAddr(args[0]); err != nil {
				return err
			}
			c, err := newClient(g.data)
			if err != nil {
				return err
			}
			var out map[string]string
			if err := c.call(cmd.Context(), "POST", "/api/peers", map[string]string{"addr": args[0]}, &out); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd, out)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "added %s\n", out["id"])
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the peer book and which peers are connected",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(g.data)
			if err != nil {
				return err
			}
			var out struct {
				Data []node.PeerStatus `json:"data"`
			}
			if err := c.call(cmd.Context(), "GET", "/api/peers", nil, &out); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd, out.Data)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PEER\tCONNECTED\tSOURCE\tLAST SEEN\tADDRESSES")
			for _, p := range out.Data {
				fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%s\n", p.ID, p.Connected, p.Source, p.LastSeen, strings.Join(p.Addrs, " "))
			}
			return tw.Flush()
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "remove PEER_ID",
		Short: "Remove a peer from the peer book",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(g.data)
			if err != nil {
				return err
			}
			return c.call(cmd.Context(), "DELETE", "/api/peers/"+args[0], nil, nil)
		},
	})
	return cmd
}

func newStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the running node: peers, doctypes, digests, version vectors",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(g.data)
			if err != nil {
				return err
			}
			var st node.Status
			if err := c.call(cmd.Context(), "GET", "/api/status", nil, &st); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd, st)
			}
			w := cmd.OutOrStdout()
			connected := 0
			for _, p := range st.Peers {
				if p.Connected {
					connected++
				}
			}
			fmt.Fprintf(w, "site     %s\npeers    %d connected, %d known, %d members\nwaiting  %d batches\nstore    %d bytes\n",
				st.Site, connected, len(st.Peers), st.Members, st.Waiting, st.Store)
			if st.Paused {
				fmt.Fprintln(w, "network  PAUSED")
			}
			if a := st.Authority; a != nil {
				admitted := "not admitted yet"
				if a.Admitted {
					admitted = "admitted"
				}
				fmt.Fprintf(w, "mesh     %s (authority %s), %s, %d grants, %d records\n", a.Mesh, shortSite(a.Key), admitted, len(a.Grants), a.Records)
			}
			tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "DOCTYPE\tDOCUMENTS\tDIGEST\tVERSION VECTOR\tVERIFIED")
			verified := map[string]string{}
			for _, v := range st.Verify {
				switch {
				case v.Error != "":
					verified[v.Doctype] = "error " + v.At
				case v.Equal:
					verified[v.Doctype] = "identical with " + shortSite(v.Peer) + " " + v.At
				case v.Settled:
					verified[v.Doctype] = fmt.Sprintf("%d DIVERGENT with %s %s", len(v.Divergent), shortSite(v.Peer), v.At)
				default:
					verified[v.Doctype] = "in flight " + v.At
				}
			}
			for _, d := range st.Doctypes {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", d.Doctype, d.Documents, d.Digest, d.VV, verified[d.Doctype])
			}
			return tw.Flush()
		},
	}
}

func newNetworkCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "network", Short: "Cut the running node off the network and reconnect it"}
	for _, verb := range []string{"pause", "resume"} {
		verb := verb
		cmd.AddCommand(&cobra.Command{
			Use:   verb,
			Short: map[string]string{"pause": "Close every connection and refuse new ones (local writes go on)", "resume": "Reconnect to the peer book"}[verb],
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				c, err := newClient(g.data)
				if err != nil {
					return err
				}
				return c.call(cmd.Context(), "POST", "/api/network/"+verb, nil, nil)
			},
		})
	}
	return cmd
}

func printJSON(cmd *cobra.Command, v any) error {
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
