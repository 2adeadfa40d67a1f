package bridge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
)

// The bridge is tested against real servers. CI guarantees both; these
// variables point the tests elsewhere. An unreachable server fails the test.
const (
	envMariaDB  = "MERIDIAN_TEST_MARIADB"  // go-sql-driver DSN of an account that may CREATE DATABASE
	envPostgres = "MERIDIAN_TEST_POSTGRES" // libpq URL of an account that may CREATE DATABASE
)

func mariadbAdminDSN() string {
	if v := os.Getenv(envMariaDB); v != "" {
		return v
	}
	return "root@tcp(127.0.0.1:3306)/"
}

func postgresAdminURL() string {
	if v := os.Getenv(envPostgres); v != "" {
		return v
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

var dialects = []Dialect{MariaDB, Postgres}

// forEachDialect runs f as a subtest per dialect.
func forEachDialect(t *testing.T, f func(t *testing.T, d Dialect)) {
	t.Helper()
	for _, d := range dialects {
		t.Run(d.String(), func(t *testing.T) { f(t, d) })
	}
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// testDatabase is a throwaway database created for one test.
type testDatabase struct {
	Dialect  Dialect
	Name     string
	DB       *DB
	User     string
	Password string
	Host     string
	Port     int
}

func randomDBName() string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return "meridian_t_" + hex.EncodeToString(b)
}

// newTestDatabase creates a database with a random name, opens the bridge
// on it and drops it when the test ends.
func newTestDatabase(t testing.TB, d Dialect) *testDatabase {
	t.Helper()
	ctx := testContext(t)
	name := randomDBName()
	td := &testDatabase{Dialect: d, Name: name}
	switch d {
	case MariaDB:
		cfg, err := mysql.ParseDSN(mariadbAdminDSN())
		if err != nil {
			t.Fatalf("%s: %v", envMariaDB, err)
		}
		cfg.Timeout = 5 * time.Second
		admin, err := newMariaDB(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close()
		if err := admin.Ping(ctx); err != nil {
			t.Fatalf("MariaDB at %s is unreachable: %v — the bridge tests need a real MariaDB server (set %s to use another one)", cfg.Addr, err, envMariaDB)
		}
		// Frappe's setup_db creates site databases with this charset and collation.
		if _, err := admin.Exec(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
			t.Fatalf("create test database: %v", err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			admin, err := newMariaDB(cfg)
			if err != nil {
				t.Error(err)
				return
			}
			defer admin.Close()
			if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
				t.Errorf("drop test database %s: %v", name, err)
			}
		})
		site := cfg.Clone()
		site.DBName = name
		if td.DB, err = newMariaDB(site); err != nil {
			t.Fatal(err)
		}
		host, port := splitHostPort(t, cfg.Addr, 3306)
		td.User, td.Password, td.Host, td.Port = cfg.User, cfg.Passwd, host, port
	case Postgres:
		cfg, err := pgx.ParseConfig(postgresAdminURL())
		if err != nil {
			t.Fatalf("%s: %v", envPostgres, err)
		}
		cfg.ConnectTimeout = 5 * time.Second
		admin := newPostgres(cfg)
		defer admin.Close()
		if err := admin.Ping(ctx); err != nil {
			t.Fatalf("PostgreSQL at %s:%d is unreachable: %v — the bridge tests need a real PostgreSQL server (set %s to use another one)", cfg.Host, cfg.Port, err, envPostgres)
		}
		if _, err := admin.Exec(ctx, `CREATE DATABASE "`+name+`"`); err != nil {
			t.Fatalf("create test database: %v", err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			admin := newPostgres(cfg)
			defer admin.Close()
			if _, err := admin.Exec(ctx, `DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`); err != nil {
				t.Errorf("drop test database %s: %v", name, err)
			}
		})
		site := cfg.Copy()
		site.Database = name
		td.DB = newPostgres(site)
		td.User, td.Password, td.Host, td.Port = cfg.User, cfg.Password, cfg.Host, int(cfg.Port)
	}
	t.Cleanup(func() { _ = td.DB.Close() })
	if err := td.DB.Ping(ctx); err != nil {
		t.Fatalf("open test database: %v", err)
	}
	return td
}

func splitHostPort(t testing.TB, addr string, def int) (string, int) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, def
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("port in %q: %v", addr, err)
	}
	return host, n
}

// fixture parses testdata/doctypes/<file>.
func fixture(t testing.TB, file string) *DocType {
	t.Helper()
	dt, err := ReadDocTypeFile(filepath.Join("testdata", "doctypes", file))
	if err != nil {
		t.Fatal(err)
	}
	return dt
}

func mustExec(t testing.TB, ctx context.Context, q Querier, query string, args ...any) {
	t.Helper()
	if _, err := q.Exec(ctx, query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func mustEnsure(t testing.TB, ctx context.Context, db *DB, dt *DocType) *EnsureReport {
	t.Helper()
	rep, err := EnsureTable(ctx, db, dt)
	if err != nil {
		t.Fatalf("EnsureTable(%s): %v", dt.Name, err)
	}
	return rep
}

func mustInspect(t testing.TB, ctx context.Context, q Querier, table string) *TableInfo {
	t.Helper()
	info, err := InspectTable(ctx, q, table)
	if err != nil {
		t.Fatal(err)
	}
	return info
}
