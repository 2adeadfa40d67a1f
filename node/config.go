package node

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"meridian/crdt"
)

// Files a node keeps in its data directory.
const (
	ConfigFile  = "config.toml" // written by `meridian init`
	TokenFile   = "api.token"   // bearer token of the admin API (0600)
	APIAddrFile = "api.addr"    // host:port the running node's admin API listens on
	AddrsFile   = "addrs"       // the running node's full multiaddrs, one per line
	StoreDir    = "store"       // the Badger store
)

// Config is a node's configuration: config.toml in the data directory,
// then MERIDIAN_* environment variables, then command-line flags.
type Config struct {
	DataDir string `toml:"-"`
	// Listen are the libp2p multiaddrs to listen on; port 0 picks a port.
	// Default: TCP and QUIC on 0.0.0.0, port 4001.
	Listen []string `toml:"listen"`
	// API is the admin API's host:port; only loopback is allowed.
	// Default: 127.0.0.1:0 (a free port, written to api.addr).
	API string `toml:"api"`
	// Peers are multiaddrs dialled at start (they join the peer book).
	Peers []string `toml:"peers"`
	// SyncInterval is the anti-entropy period. Default: 5s.
	SyncInterval Duration `toml:"sync_interval"`
	// Tick is how often the loop advances the replica's clock. Default: 50ms.
	Tick Duration `toml:"tick"`
	// MaxClockSkew: batches timestamped further ahead are held. Default: 5m.
	MaxClockSkew Duration `toml:"max_clock_skew"`
	// LogLevel is debug, info, warn or error. Default: info.
	LogLevel string `toml:"log_level"`
	// LogFormat is text or json. Default: text.
	LogFormat string `toml:"log_format"`
	// CompactInterval is how often the store reclaims space. Default: 10m.
	CompactInterval Duration `toml:"compact_interval"`
	// Authority is the public key of the mesh's authority, as `meridian
	// authority init` prints it. Empty: no authority — every peer that
	// connects is admitted, reads everything and may write everything.
	Authority string `toml:"authority"`
	// Mesh is the mesh ID the authority's records must name. Default: main.
	Mesh string `toml:"mesh"`
	// Versions pins the master version this site writes a doctype under
	// (its Frappe schema's version); unpinned doctypes use the latest active
	// version the authority published.
	Versions map[string]uint64 `toml:"versions"`
	// ReportInterval is how often the site signs and gossips its report
	// (versions in use, edits seen, last sync per peer, failures). Default: 30s.
	ReportInterval Duration `toml:"report_interval"`
	// VerifyInterval is how often the node compares its masters with a
	// random peer (`meridian verify`). Default: 5m.
	VerifyInterval Duration `toml:"verify_interval"`
	// UnsafeForgeWrites makes the node skip the authority's checks on its
	// own edits, as a compromised site would (tests show the others refuse
	// them). Only the hidden flag --unsafe-forge-writes sets it.
	UnsafeForgeWrites bool `toml:"-"`
	// Bridge connects the node to its Frappe site's database.
	Bridge *BridgeConfig `toml:"bridge,omitempty"`
}

// Duration is a time.Duration written as "5s" in TOML.
type Duration time.Duration

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration like 250ms or 5s", b)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Defaults returns the configuration of a new node.
func Defaults() Config {
	return Config{
		Listen:       []string{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"},
		API:          "127.0.0.1:0",
		SyncInterval: Duration(5 * time.Second), Tick: Duration(50 * time.Millisecond),
		MaxClockSkew: Duration(5 * time.Minute), LogLevel: "info", LogFormat: "text",
		CompactInterval: Duration(10 * time.Minute), Mesh: "main", ReportInterval: Duration(30 * time.Second),
		VerifyInterval: Duration(5 * time.Minute),
	}
}

// LoadConfig reads DIR/config.toml over the defaults, then the MERIDIAN_*
// environment (MERIDIAN_LISTEN comma-separated, MERIDIAN_API,
// MERIDIAN_PEERS, MERIDIAN_SYNC_INTERVAL, MERIDIAN_REPORT_INTERVAL,
// MERIDIAN_LOG_LEVEL).
func LoadConfig(dir string) (Config, error) {
	c := Defaults()
	c.DataDir = dir
	path := filepath.Join(dir, ConfigFile)
	if data, err := os.ReadFile(path); err == nil {
		md, err := toml.Decode(string(data), &c)
		if err != nil {
			return c, fmt.Errorf("node: %s: %w", path, err)
		}
		if und := md.Undecoded(); len(und) > 0 {
			return c, fmt.Errorf("node: %s: unknown key %s", path, und[0])
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return c, fmt.Errorf("node: reading %s: %w", path, err)
	} else {
		return c, fmt.Errorf("node: %s has no %s: run `meridian init --data %s` first", dir, ConfigFile, dir)
	}
	if v := os.Getenv("MERIDIAN_LISTEN"); v != "" {
		c.Listen = strings.Split(v, ",")
	}
	if v := os.Getenv("MERIDIAN_API"); v != "" {
		c.API = v
	}
	if v := os.Getenv("MERIDIAN_PEERS"); v != "" {
		c.Peers = strings.Split(v, ",")
	}
	if v := os.Getenv("MERIDIAN_SYNC_INTERVAL"); v != "" {
		if err := c.SyncInterval.UnmarshalText([]byte(v)); err != nil {
			return c, fmt.Errorf("node: MERIDIAN_SYNC_INTERVAL: %w", err)
		}
	}
	if v := os.Getenv("MERIDIAN_REPORT_INTERVAL"); v != "" {
		if err := c.ReportInterval.UnmarshalText([]byte(v)); err != nil {
			return c, fmt.Errorf("node: MERIDIAN_REPORT_INTERVAL: %w", err)
		}
	}
	if v := os.Getenv("MERIDIAN_VERIFY_INTERVAL"); v != "" {
		if err := c.VerifyInterval.UnmarshalText([]byte(v)); err != nil {
			return c, fmt.Errorf("node: MERIDIAN_VERIFY_INTERVAL: %w", err)
		}
	}
	if v := os.Getenv("MERIDIAN_LOG_LEVEL"); v != "" {
		c.LogLevel = v
	}
	return c, c.Validate()
}

// Validate reports the first thing wrong with a configuration.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("node: no data directory")
	}
	if len(c.Listen) == 0 {
		return errors.New("node: listen is empty; give at least one multiaddr like /ip4/0.0.0.0/tcp/4001")
	}
	host := c.API
	if i := strings.LastIndex(host, ":"); i >= 0 {
		host = host[:i]
	}
	if host != "127.0.0.1" && host != "localhost" && host != "[::1]" {
		return fmt.Errorf("node: api %q must listen on loopback (127.0.0.1:PORT): the admin API is for local tools only", c.API)
	}
	if c.SyncInterval <= 0 || c.Tick <= 0 || c.MaxClockSkew <= 0 {
		return errors.New("node: sync_interval, tick and max_clock_skew must be positive")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("node: log_level %q: use debug, info, warn or error", c.LogLevel)
	}
	if c.ReportInterval <= 0 || c.VerifyInterval <= 0 {
		return errors.New("node: report_interval and verify_interval must be positive")
	}
	if c.Authority != "" && c.Mesh == "" {
		return errors.New("node: mesh is empty; give the mesh ID `meridian authority init` printed")
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("node: log_format %q: use text or json", c.LogFormat)
	}
	return nil
}

// Init prepares a data directory: config.toml (with the given listen
// addresses) and a fresh API token. It refuses to overwrite a config.
func Init(dir string, listen []string) error { return InitWith(dir, listen, "", "") }

// InitWith is Init that also pins the mesh's authority (public key and
// mesh ID) when authority is not empty.
func InitWith(dir string, listen []string, authority, mesh string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("node: creating %s: %w", dir, err)
	}
	path := filepath.Join(dir, ConfigFile)
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("node: %s already exists; edit it or choose another --data", path)
	}
	c := Defaults()
	if len(listen) > 0 {
		c.Listen = listen
	}
	if authority != "" {
		if _, err := crdt.PeerIDPublicKey(authority); err != nil {
			return fmt.Errorf("node: --authority %q is not an authority public key (as `meridian authority init` prints it): %w", authority, err)
		}
		c.Authority = authority
		if mesh != "" {
			c.Mesh = mesh
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(f, "# Meridian node configuration. Environment (MERIDIAN_*) and flags override it.\n")
	if err := toml.NewEncoder(f).Encode(c); err != nil {
		return err
	}
	return writeToken(dir)
}

func writeToken(dir string) error {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, TokenFile), []byte(hex.EncodeToString(b[:])+"\n"), 0o600)
}

// ReadToken returns the admin API token of a data directory.
func ReadToken(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, TokenFile))
	if err != nil {
		return "", fmt.Errorf("node: reading the API token: %w (is %s a node's data directory? run `meridian init`)", err, dir)
	}
	return strings.TrimSpace(string(b)), nil
}

// PinAuthority writes the authority and mesh into DIR/config.toml (used by
// `meridian authority init` on the head office's own data directory).
func PinAuthority(dir, authority, mesh string) error {
	path := filepath.Join(dir, ConfigFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	c := Defaults()
	if _, err := toml.Decode(string(data), &c); err != nil {
		return fmt.Errorf("node: %s: %w", path, err)
	}
	if c.Authority != "" && c.Authority != authority {
		return fmt.Errorf("node: %s already pins authority %s; refusing to replace it", path, c.Authority)
	}
	c.Authority, c.Mesh = authority, mesh
	var buf strings.Builder
	buf.WriteString("# Meridian node configuration. Environment (MERIDIAN_*) and flags override it.\n")
	if err := toml.NewEncoder(&buf).Encode(c); err != nil {
		return err
	}
	return writeFileAtomic(path, []byte(buf.String()))
}
