package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"meridian/node"
)

// site is one real `meridian node` process with its data directory.
type site struct {
	t      testing.TB
	name   string
	dir    string
	cmd    *exec.Cmd
	log    *syncBuffer
	exited chan struct{} // closed when the process has exited
}

type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newSite initialises a data directory listening on a free loopback port.
func newSite(t testing.TB, name string) *site {
	t.Helper()
	s := &site{t: t, name: name, dir: filepath.Join(t.TempDir(), name)}
	if out, err := meridian(t, "init", "--data", s.dir, "--listen", "/ip4/127.0.0.1/tcp/0"); err != nil {
		t.Fatalf("init %s: %v\n%s", name, err, out)
	}
	return s
}

// start runs the node and waits for its admin API.
func (s *site) start(extra ...string) {
	s.t.Helper()
	os.Remove(filepath.Join(s.dir, node.APIAddrFile))
	args := append([]string{"node", "--data", s.dir, "--api", "127.0.0.1:0", "--log-level", "debug"}, extra...)
	s.cmd = exec.Command(meridianBin, args...)
	s.log = &syncBuffer{}
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.Env = append(os.Environ(), "MERIDIAN_SYNC_INTERVAL=1s", "MERIDIAN_REPORT_INTERVAL=1s")
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(s.kill)
	exited := make(chan struct{})
	go func(c *exec.Cmd) { _ = c.Wait(); close(exited) }(s.cmd)
	s.exited = exited
	waitFor(s.t, 20*time.Second, s.name+" admin API", func() bool {
		select {
		case <-exited:
			s.t.Fatalf("%s exited at start:\n%s", s.name, s.log)
		default:
		}
		_, err := os.Stat(filepath.Join(s.dir, node.APIAddrFile))
		return err == nil
	})
}

// kill stops the process with SIGKILL (no chance to flush anything).
func (s *site) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
		<-s.exited
		s.cmd = nil
	}
}

// stop stops the process with SIGTERM and waits for a clean exit.
func (s *site) stop() {
	s.t.Helper()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		if !s.cmd.ProcessState.Success() {
			s.t.Fatalf("%s did not exit cleanly: %v\n%s", s.name, s.cmd.ProcessState, s.log)
		}
	case <-time.After(15 * time.Second):
		s.t.Fatalf("%s did not stop within 15s of SIGTERM", s.name)
	}
	s.cmd = nil
}

// run runs a client command against this site.
func (s *site) run(args ...string) (string, error) {
	return meridian(s.t, append(args, "--data", s.dir)...)
}

func (s *site) must(args ...string) string {
	s.t.Helper()
	out, err := s.run(args...)
	if err != nil {
		s.t.Fatalf("%s: meridian %s: %v\n%s", s.name, strings.Join(args, " "), err, out)
	}
	return out
}

// addr returns the site's first full multiaddr.
func (s *site) addr() string {
	s.t.Helper()
	raw, err := os.ReadFile(filepath.Join(s.dir, node.AddrsFile))
	if err != nil {
		s.t.Fatal(err)
	}
	return strings.SplitN(strings.TrimSpace(string(raw)), "\n", 2)[0]
}

func (s *site) status() node.Status {
	s.t.Helper()
	var st node.Status
	if err := json.Unmarshal([]byte(s.must("status", "--json")), &st); err != nil {
		s.t.Fatal(err)
	}
	return st
}

func digestOf(st node.Status, dt string) string {
	for _, d := range st.Doctypes {
		if d.Doctype == dt {
			return d.Digest + " " + d.VV
		}
	}
	return ""
}

// metric reads one value of the site's Prometheus metrics.
func (s *site) metric(name string) float64 {
	s.t.Helper()
	c, err := newClient(s.dir)
	if err != nil {
		s.t.Fatal(err)
	}
	var raw json.RawMessage
	if err := c.call(context.Background(), "GET", "/metrics", nil, &raw); err != nil {
		s.t.Fatal(err)
	}
	total := 0.0
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
			var v float64
			fmt.Sscanf(line[strings.LastIndex(line, " ")+1:], "%g", &v)
			total += v
		}
	}
	return total
}

func waitFor(t testing.TB, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// converged waits until every site reports the same digest and vector.
func converged(t testing.TB, limit time.Duration, dt string, sites ...*site) {
	t.Helper()
	waitFor(t, limit, "convergence of "+dt, func() bool {
		first := digestOf(sites[0].status(), dt)
		for _, s := range sites[1:] {
			if digestOf(s.status(), dt) != first {
				return false
			}
		}
		return first != ""
	})
}

// mesh starts n sites, each told only the previous site's address.
func mesh(t testing.TB, n int) []*site {
	var sites []*site
	for i := 0; i < n; i++ {
		s := newSite(t, string(rune('A'+i)))
		s.start()
		if i > 0 {
			s.must("peers", "add", sites[i-1].addr())
		}
		sites = append(sites, s)
	}
	return sites
}
