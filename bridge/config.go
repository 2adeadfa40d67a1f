package bridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Frappe v15 defaults (frappe/__init__.py get_site_config).
const (
	defaultDBHost     = "127.0.0.1"
	defaultRedisCache = "redis://127.0.0.1:13311"
)

// SiteConfig is a site's database and cache settings: sites/<site>/site_config.json
// merged over sites/common_site_config.json, with Frappe's defaults.
type SiteConfig struct {
	SitePath   string  // the site directory, sites/<site>
	Site       string  // the site name (directory name)
	DBType     Dialect // db_type; MariaDB when absent
	DBName     string  // db_name
	DBUser     string  // db_user, else db_name
	DBPassword string  // db_password
	DBHost     string  // db_host, else 127.0.0.1
	DBPort     int     // db_port, else 3306 or 5432
	DBSocket   string  // db_socket: a unix socket instead of host and port
	RedisCache string  // redis_cache, else Frappe's redis://127.0.0.1:13311

	// Source tells where each of the keys above came from: a file path, or
	// "default". It makes errors and logs say which file to fix.
	Source map[string]string
}

// LoadSiteConfig reads sitePath/site_config.json and, when present,
// ../common_site_config.json. Keys in site_config.json win, as in Frappe.
// Environment variables (FRAPPE_DB_HOST…) are not consulted: they belong
// to the bench's processes, not to the Meridian node.
func LoadSiteConfig(sitePath string) (*SiteConfig, error) {
	sitePath = filepath.Clean(sitePath)
	siteFile := filepath.Join(sitePath, "site_config.json")
	commonFile := filepath.Join(filepath.Dir(sitePath), "common_site_config.json")

	common, err := readConfigFile(commonFile, true)
	if err != nil {
		return nil, err
	}
	site, err := readConfigFile(siteFile, false)
	if err != nil {
		return nil, err
	}
	merged := map[string]json.RawMessage{}
	source := map[string]string{}
	for k, v := range common {
		merged[k], source[k] = v, commonFile
	}
	for k, v := range site {
		merged[k], source[k] = v, siteFile
	}

	c := &SiteConfig{SitePath: sitePath, Site: filepath.Base(sitePath), Source: map[string]string{}}
	get := func(key string) (string, bool, error) {
		raw, ok := merged[key]
		if !ok {
			return "", false, nil
		}
		s, err := configString(raw)
		if err != nil {
			return "", false, fmt.Errorf("%w: %s: key %q %v", ErrConfig, source[key], key, err)
		}
		if s == "" {
			return "", false, nil // Frappe treats "" like an absent key
		}
		c.Source[key] = source[key]
		return s, true, nil
	}

	dbType, ok, err := get("db_type")
	if err != nil {
		return nil, err
	}
	c.DBType = MariaDB
	if ok {
		if c.DBType, err = ParseDialect(dbType); err != nil {
			return nil, fmt.Errorf("%w: %s: key \"db_type\": %v", ErrConfig, source["db_type"], err)
		}
	} else {
		c.Source["db_type"] = "default"
	}

	if c.DBName, ok, err = get("db_name"); err != nil {
		return nil, err
	}
	user, hasUser, err := get("db_user")
	if err != nil {
		return nil, err
	}
	switch {
	case ok && hasUser:
		c.DBUser = user
	case ok:
		c.DBUser, c.Source["db_user"] = c.DBName, c.Source["db_name"]
	case hasUser:
		c.DBName, c.DBUser, c.Source["db_name"] = user, user, c.Source["db_user"]
	default:
		return nil, fmt.Errorf("%w: %s: key \"db_name\" is missing (and not set in %s) — set it to the site's database name",
			ErrConfig, siteFile, commonFile)
	}

	if c.DBPassword, _, err = get("db_password"); err != nil {
		return nil, err
	}
	if c.DBSocket, _, err = get("db_socket"); err != nil {
		return nil, err
	}
	if c.DBHost, ok, err = get("db_host"); err != nil {
		return nil, err
	} else if !ok {
		c.DBHost, c.Source["db_host"] = defaultDBHost, "default"
	}
	port, ok, err := get("db_port")
	if err != nil {
		return nil, err
	}
	if ok {
		n, perr := strconv.Atoi(strings.TrimSpace(port))
		if perr != nil || n <= 0 || n > 65535 {
			return nil, fmt.Errorf("%w: %s: key \"db_port\" is %q; it must be a TCP port number", ErrConfig, source["db_port"], port)
		}
		c.DBPort = n
	} else {
		c.DBPort, c.Source["db_port"] = defaultPort(c.DBType), "default"
	}
	if c.RedisCache, ok, err = get("redis_cache"); err != nil {
		return nil, err
	} else if !ok {
		c.RedisCache, c.Source["redis_cache"] = defaultRedisCache, "default"
	}
	if _, err := redis.ParseURL(c.RedisCache); err != nil {
		return nil, fmt.Errorf("%w: %s: key \"redis_cache\" is %q: %v", ErrConfig, c.Source["redis_cache"], c.RedisCache, err)
	}
	return c, nil
}

// RedisOptions returns go-redis options for the site's cache server.
func (c *SiteConfig) RedisOptions() (*redis.Options, error) {
	o, err := redis.ParseURL(c.RedisCache)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: key \"redis_cache\": %v", ErrConfig, c.Source["redis_cache"], err)
	}
	return o, nil
}

func defaultPort(d Dialect) int {
	if d == Postgres {
		return 5432
	}
	return 3306
}

func readConfigFile(path string, optional bool) (map[string]json.RawMessage, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if optional {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: %s does not exist — pass the site directory of a Frappe bench (sites/<site>)", ErrConfig, path)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %s is not a JSON object: %v", ErrConfig, path, err)
	}
	return m, nil
}

// configString accepts a JSON string or number (Frappe's int(db_port)
// takes both), or null for "not set".
func configString(raw json.RawMessage) (string, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return "", err
	}
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	}
	return "", fmt.Errorf("must be a string or a number, got %s", string(raw))
}
