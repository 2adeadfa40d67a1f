package bridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// createSingles makes tabSingles as Frappe's framework_*.sql does and, when
// tz is not empty, stores System Settings.time_zone.
func createSingles(t *testing.T, ctx context.Context, db *DB, tz string) {
	t.Helper()
	if db.Dialect() == MariaDB {
		mustExec(t, ctx, db, "CREATE TABLE `tabSingles` (`doctype` varchar(255) DEFAULT NULL, `field` varchar(255) DEFAULT NULL, `value` longtext, "+
			"KEY `singles_doctype_field_index` (`doctype`, `field`)) ENGINE=InnoDB ROW_FORMAT=DYNAMIC DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci")
	} else {
		mustExec(t, ctx, db, `CREATE TABLE "tabSingles" ("doctype" varchar(255) DEFAULT NULL, "field" varchar(255) DEFAULT NULL, "value" text)`)
		mustExec(t, ctx, db, `CREATE INDEX "singles_doctype_field_index" ON "tabSingles" ("doctype", "field")`)
	}
	d := db.Dialect()
	ins := "INSERT INTO " + d.mustQuote("tabSingles") + " (" + d.mustQuote("doctype") + ", " + d.mustQuote("field") + ", " + d.mustQuote("value") + ") VALUES (" +
		d.Placeholder(1) + ", " + d.Placeholder(2) + ", " + d.Placeholder(3) + ")"
	mustExec(t, ctx, db, ins, "System Settings", "date_format", "dd-mm-yyyy")
	if tz != "" {
		mustExec(t, ctx, db, ins, "System Settings", "time_zone", tz)
	}
}

// siteConfigFor writes a bench whose site points at the test database.
func siteConfigFor(t *testing.T, td *testDatabase, port int) string {
	t.Helper()
	return bench(t,
		fmt.Sprintf(`{"db_name": %q, "db_user": %q, "db_password": %q, "db_type": %q}`, td.Name, td.User, td.Password, td.Dialect),
		fmt.Sprintf(`{"db_host": %q, "db_port": %d, "redis_cache": "redis://127.0.0.1:13000"}`, td.Host, port))
}

func TestOpenSiteConnectsWithTheSiteConfigAndReadsTheTimeZone(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d Dialect) {
		ctx := testContext(t)
		td := newTestDatabase(t, d)
		createSingles(t, ctx, td.DB, "Europe/Berlin")
		site, err := OpenSite(ctx, siteConfigFor(t, td, td.Port))
		if err != nil {
			t.Fatal(err)
		}
		defer site.Close()
		if site.Name != "erp.example.com" || site.Dialect() != d || site.Config.DBName != td.Name {
			t.Errorf("site = %+v", site)
		}
		if site.TimeZone.Name != "Europe/Berlin" || site.TimeZone.Location.String() != "Europe/Berlin" || site.TimeZone.Source != "System Settings" {
			t.Errorf("time zone = %+v", site.TimeZone)
		}
		// The handle works: the bridge can build tables through it.
		mustEnsure(t, ctx, site.DB, fixture(t, "uom.json"))
	})
}

func TestReadTimeZoneFallsBackAsFrappeDoes(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d Dialect) {
		ctx := testContext(t)
		td := newTestDatabase(t, d)
		tz, err := ReadTimeZone(ctx, td.DB)
		if err != nil || tz.Name != "Asia/Kolkata" || !strings.Contains(tz.Source, "no time_zone") {
			t.Errorf("without tabSingles: %+v, %v", tz, err)
		}
		createSingles(t, ctx, td.DB, "")
		tz, err = ReadTimeZone(ctx, td.DB)
		if err != nil || tz.Name != FrappeDefaultTimeZone {
			t.Errorf("without time_zone: %+v, %v", tz, err)
		}
		mustExec(t, ctx, td.DB, "INSERT INTO "+d.mustQuote("tabSingles")+" ("+d.mustQuote("doctype")+", "+d.mustQuote("field")+", "+d.mustQuote("value")+") VALUES ("+
			d.Placeholder(1)+", "+d.Placeholder(2)+", "+d.Placeholder(3)+")", "System Settings", "time_zone", "Mars/Olympus_Mons")
		tz, err = ReadTimeZone(ctx, td.DB)
		if err != nil || tz.Name != "UTC" || !strings.Contains(tz.Source, "Mars/Olympus_Mons") {
			t.Errorf("unknown zone: %+v, %v", tz, err)
		}
	})
}

func TestOpenDSNOpensBothDialects(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d Dialect) {
		ctx := testContext(t)
		td := newTestDatabase(t, d)
		createSingles(t, ctx, td.DB, "America/New_York")
		u := url.URL{Scheme: "mysql", User: url.UserPassword(td.User, td.Password), Host: net.JoinHostPort(td.Host, strconv.Itoa(td.Port)), Path: "/" + td.Name}
		if td.Password == "" {
			u.User = url.User(td.User)
		}
		if d == Postgres {
			u.Scheme, u.RawQuery = "postgres", "sslmode=disable"
		}
		site, err := OpenDSN(ctx, u.String())
		if err != nil {
			t.Fatal(err)
		}
		defer site.Close()
		if site.Dialect() != d || site.Name != td.Name || site.Config != nil || site.TimeZone.Name != "America/New_York" {
			t.Errorf("site = %+v", site)
		}
	})
}

func TestOpenSiteSaysWhichServerAndSettingsFailed(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d Dialect) {
		ctx := testContext(t)
		td := &testDatabase{Dialect: d, Name: "no_such_site_db", User: "nobody", Host: "127.0.0.1"}
		_, err := OpenSite(ctx, siteConfigFor(t, td, 1)) // nothing listens on port 1
		if err == nil {
			t.Fatal("OpenSite succeeded against port 1")
		}
		for _, want := range []string{d.String(), `"no_such_site_db"`, "127.0.0.1:1", `"nobody"`, "site_config.json"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %s", err, want)
			}
		}
	})
}

func TestOpenDSNRejectsBadURLsWithoutLeakingPasswords(t *testing.T) {
	ctx := testContext(t)
	cases := map[string]string{
		"sqlite:///tmp/x.db":                                   "scheme",
		"mysql://root:hunter2@127.0.0.1:3306/":                 "names no database",
		"mysql://root:hunter2@127.0.0.1/db?charset=latin1":     "unknown parameter",
		"mysql://root:hunter2@127.0.0.1:3306%zz/db":            "not a valid URL",
		"postgres://u:hunter2@127.0.0.1:5432/db?sslmode=bogus": "",
	}
	for dsn, want := range cases {
		_, err := OpenDSN(ctx, dsn)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), want) {
			t.Errorf("OpenDSN(%q) err = %v, want ErrConfig saying %q", dsn, err, want)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("OpenDSN(%q) leaks the password: %v", dsn, err)
		}
	}
}
