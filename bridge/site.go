package bridge

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // sites name IANA zones; do not depend on the host's zoneinfo

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
)

// FrappeDefaultTimeZone is the zone Frappe v15 falls back to when System
// Settings has no time_zone (frappe/utils/data.py get_system_timezone).
const FrappeDefaultTimeZone = "Asia/Kolkata"

// connectTimeout bounds dialing a database server.
const connectTimeout = 10 * time.Second

// Site is an open connection to one Frappe site's database.
type Site struct {
	Name     string      // site name, or the database name for OpenDSN
	Config   *SiteConfig // nil when opened with OpenDSN
	DB       *DB
	TimeZone TimeZone
}

// Dialect returns the site's database dialect.
func (s *Site) Dialect() Dialect { return s.DB.Dialect() }

// Close closes the database connections.
func (s *Site) Close() error { return s.DB.Close() }

// TimeZone is the zone a site's naive Datetime values are written in.
type TimeZone struct {
	Name     string         // IANA name actually used
	Location *time.Location // loaded zone
	// Source says where Name came from: "System Settings", or why a
	// fallback applies.
	Source string
}

// OpenSite opens the database of the Frappe site at sitePath
// (<bench>/sites/<site>), using its site_config.json merged over
// common_site_config.json, checks that the server answers and reads the
// site's time zone.
func OpenSite(ctx context.Context, sitePath string) (*Site, error) {
	cfg, err := LoadSiteConfig(sitePath)
	if err != nil {
		return nil, err
	}
	db, where, err := openConfig(cfg)
	if err != nil {
		return nil, err
	}
	return finishOpen(ctx, db, cfg.Site, cfg, where)
}

// OpenDSN opens a site database from a URL instead of a bench directory:
// mysql://user:pass@host:3306/db (also mariadb://; ?socket=/path for a unix
// socket) or postgres://user:pass@host:5432/db (also postgresql://, with
// libpq URL parameters).
func OpenDSN(ctx context.Context, dsn string) (*Site, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		// url.Error quotes the whole DSN, password included; keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%w: DSN is not a valid URL: %v", ErrConfig, err)
	}
	var db *DB
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" {
		return nil, fmt.Errorf("%w: DSN %s names no database — append /<db_name>", ErrConfig, u.Redacted())
	}
	switch strings.ToLower(u.Scheme) {
	case "mysql", "mariadb":
		cfg := mysql.NewConfig()
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
		cfg.DBName = name
		cfg.Timeout = connectTimeout
		host, port := u.Hostname(), u.Port()
		if host == "" {
			host = defaultDBHost
		}
		if port == "" {
			port = "3306"
		}
		cfg.Net, cfg.Addr = "tcp", net.JoinHostPort(host, port)
		for k, v := range u.Query() {
			switch k {
			case "socket":
				cfg.Net, cfg.Addr = "unix", v[0]
			case "tls":
				cfg.TLSConfig = v[0]
			default:
				return nil, fmt.Errorf("%w: DSN %s: unknown parameter %q (known: socket, tls)", ErrConfig, u.Redacted(), k)
			}
		}
		if db, err = newMariaDB(cfg); err != nil {
			return nil, err
		}
	case "postgres", "postgresql":
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			return nil, fmt.Errorf("%w: DSN %s: %v", ErrConfig, u.Redacted(), redactErr(err, dsn))
		}
		if cfg.ConnectTimeout == 0 {
			cfg.ConnectTimeout = connectTimeout
		}
		db = newPostgres(cfg)
	default:
		return nil, fmt.Errorf("%w: DSN scheme %q — use mysql:// or postgres://", ErrConfig, u.Scheme)
	}
	return finishOpen(ctx, db, name, nil, u.Redacted())
}

func openConfig(c *SiteConfig) (*DB, string, error) {
	where := fmt.Sprintf("%s database %q at %s as user %q (settings from %s)",
		c.DBType, c.DBName, net.JoinHostPort(c.DBHost, strconv.Itoa(c.DBPort)), c.DBUser, c.Source["db_name"])
	if c.DBSocket != "" {
		where = fmt.Sprintf("%s database %q via socket %s as user %q (settings from %s)",
			c.DBType, c.DBName, c.DBSocket, c.DBUser, c.Source["db_name"])
	}
	if c.DBType == MariaDB {
		cfg := mysql.NewConfig()
		cfg.User, cfg.Passwd, cfg.DBName = c.DBUser, c.DBPassword, c.DBName
		cfg.Net, cfg.Addr = "tcp", net.JoinHostPort(c.DBHost, strconv.Itoa(c.DBPort))
		if c.DBSocket != "" {
			cfg.Net, cfg.Addr = "unix", c.DBSocket
		}
		cfg.Timeout = connectTimeout
		db, err := newMariaDB(cfg)
		return db, where, err
	}
	u := url.URL{Scheme: "postgres", User: url.UserPassword(c.DBUser, c.DBPassword),
		Host: net.JoinHostPort(c.DBHost, strconv.Itoa(c.DBPort)), Path: "/" + c.DBName}
	if c.DBSocket != "" {
		u.Host = ""
		u.RawQuery = url.Values{"host": {c.DBSocket}, "port": {strconv.Itoa(c.DBPort)}}.Encode()
	}
	cfg, err := pgx.ParseConfig(u.String())
	if err != nil {
		return nil, where, fmt.Errorf("%w: %s: %v", ErrConfig, where, redactErr(err, u.String()))
	}
	cfg.ConnectTimeout = connectTimeout
	return newPostgres(cfg), where, nil
}

func finishOpen(ctx context.Context, db *DB, name string, cfg *SiteConfig, where string) (*Site, error) {
	if err := db.Ping(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("bridge: connect to %s: %w", where, err)
	}
	tz, err := ReadTimeZone(ctx, db)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("bridge: %s: %w", where, err)
	}
	return &Site{Name: name, Config: cfg, DB: db, TimeZone: tz}, nil
}

// ReadTimeZone reads the site's time zone: System Settings.time_zone in
// tabSingles. Frappe v15 writes naive datetimes in that zone; when it is
// not set Frappe uses Asia/Kolkata, and when it names no known zone Frappe's
// conversion leaves times in UTC — ReadTimeZone does the same, so the
// bridge agrees with the timestamps Frappe itself writes.
func ReadTimeZone(ctx context.Context, q Querier) (TimeZone, error) {
	exists, err := TableExists(ctx, q, "tabSingles")
	if err != nil {
		return TimeZone{}, err
	}
	name := ""
	if exists {
		d := q.Dialect()
		query := "SELECT " + d.mustQuote("value") + " FROM " + d.mustQuote("tabSingles") +
			" WHERE " + d.mustQuote("doctype") + " = " + d.Placeholder(1) + " AND " + d.mustQuote("field") + " = " + d.Placeholder(2)
		var v sql.NullString
		err := queryRow(ctx, q, query, []any{"System Settings", "time_zone"}, &v)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return TimeZone{}, fmt.Errorf("bridge: read System Settings time_zone: %w", err)
		}
		name = strings.TrimSpace(v.String)
	}
	if name == "" {
		loc, err := time.LoadLocation(FrappeDefaultTimeZone)
		if err != nil {
			return TimeZone{}, fmt.Errorf("bridge: load %s: %w", FrappeDefaultTimeZone, err)
		}
		return TimeZone{Name: FrappeDefaultTimeZone, Location: loc,
			Source: "Frappe's default: System Settings has no time_zone"}, nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil || name == "Local" {
		return TimeZone{Name: "UTC", Location: time.UTC,
			Source: fmt.Sprintf("UTC: System Settings time_zone %q is not a known zone, so Frappe leaves times in UTC", name)}, nil
	}
	return TimeZone{Name: name, Location: loc, Source: "System Settings"}, nil
}

// redactErr keeps a password that appears in a DSN out of error messages.
func redactErr(err error, dsn string) error {
	u, perr := url.Parse(dsn)
	if perr != nil || u.User == nil {
		return err
	}
	pw, ok := u.User.Password()
	if !ok || pw == "" {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), pw, "xxxxx"))
}
