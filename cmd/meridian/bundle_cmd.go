package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/spf13/cobra"
	"meridian/node"
)

func newBundleCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bundle",
		Short: "Offline sites: carry changes in signed, compressed files",
		Long: `A bundle holds everything a site lacks (documents' writes with their origins'
signatures, the authority's records), signed by the site that made it. Import
verifies it whole before applying anything; importing twice or in any order is
harmless. A site that imports a bundle can write a reply bundle (its own changes
and what it now holds) to carry back: the next export for it leaves out what it
acknowledged.`,
	}
	var forSite, since, out string
	var all bool
	export := &cobra.Command{
		Use:   "export --for SITE | --all [--since FILE] -o FILE",
		Short: "Write a bundle of everything SITE lacks (judged by what it last acknowledged), or of everything",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if all == (forSite != "") {
				return errors.New("give --for SITE or --all")
			}
			if out == "" {
				return errors.New("-o FILE is required")
			}
			body := map[string]any{"for": forSite}
			if since != "" {
				f, err := os.Open(since)
				if err != nil {
					return err
				}
				h, _, err := node.ReadBundle(f, "")
				f.Close()
				if err != nil {
					return fmt.Errorf("--since %s: %w", since, err)
				}
				if h.From != forSite {
					return fmt.Errorf("--since %s was made by %s, not by %s", since, h.From, forSite)
				}
				body["since"] = h
			}
			c, err := newClient(g.data)
			if err != nil {
				return err
			}
			return exportBundle(cmd, c, body, out)
		},
	}
	export.Flags().StringVar(&forSite, "for", "", "the site the bundle is for")
	export.Flags().BoolVar(&all, "all", false, "everything this site holds")
	export.Flags().StringVar(&since, "since", "", "a bundle SITE made (its reply): what it holds is left out")
	export.Flags().StringVarP(&out, "out", "o", "", "the bundle file to write")
	var reply string
	imp := &cobra.Command{
		Use:   "import FILE [--reply OUT]",
		Short: "Verify and apply a bundle; with --reply, write a bundle to carry back",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			c, err := newClient(g.data)
			if err != nil {
				return err
			}
			req, err := http.NewRequestWithContext(cmd.Context(), "POST", c.base+"/api/bundle/import", bytes.NewReader(data))
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", "Bearer "+c.token)
			resp, err := (&http.Client{}).Do(req)
			if err != nil {
				return fmt.Errorf("the node's admin API does not answer: %w", err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				var e struct {
					Error string `json:"error"`
				}
				_ = json.NewDecoder(resp.Body).Decode(&e)
				return fmt.Errorf("%s: %s", args[0], e.Error)
			}
			tty := isTerminal() && !g.json
			var last node.BundleProgress
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if err := json.Unmarshal(sc.Bytes(), &last); err != nil {
					return err
				}
				if tty && !last.Finished {
					fmt.Fprintf(cmd.ErrOrStderr(), "\r%s %d/%d messages", bar(last.Done, last.Total, 30), last.Done, last.Total)
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
			if !last.Finished || last.Stats == nil {
				return errors.New("the node stopped answering before the import finished; import the bundle again (it is harmless)")
			}
			if g.json {
				if err := printJSON(cmd, last); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "imported %s from %s: %d messages, %d document batches, %d refused\n",
					args[0], shortSite(last.From), last.Stats.Messages, last.Stats.Documents, last.Stats.Refused)
			}
			if reply != "" {
				return exportBundle(cmd, c, map[string]any{"for": last.From}, reply)
			}
			return nil
		},
	}
	imp.Flags().StringVar(&reply, "reply", "", "write a bundle for the bundle's maker: this site's changes and what it now holds")
	cmd.AddCommand(export, imp)
	return cmd
}

func exportBundle(cmd *cobra.Command, c *client, body map[string]any, out string) error {
	enc, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(cmd.Context(), "POST", c.base+"/api/bundle/export", bytes.NewReader(enc))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := (&http.Client{}).Do(req)
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
	tmp := out + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	var dst io.Writer = f
	if isTerminal() {
		dst = &progressWriter{w: f, out: cmd.ErrOrStderr()}
	}
	n, err := io.Copy(dst, resp.Body)
	if isTerminal() {
		fmt.Fprintln(cmd.ErrOrStderr())
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %d bytes, %s document batches\n", out, n, resp.Header.Get("X-Meridian-Documents"))
	return nil
}

// progressWriter shows how much of a bundle has been written.
type progressWriter struct {
	w    io.Writer
	out  io.Writer
	n    int64
	last int64
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.n += int64(n)
	if p.n-p.last >= 1<<20 {
		p.last = p.n
		fmt.Fprintf(p.out, "\rwriting the bundle: %.1f MiB", float64(p.n)/(1<<20))
	}
	return n, err
}
