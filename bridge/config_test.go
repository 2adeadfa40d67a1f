package bridge

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// bench writes sites/common_site_config.json (when common != "") and
// sites/<site>/site_config.json (when site != "") and returns the site path.
func bench(t *testing.T, site, common string) string {
	t.Helper()
	sites := filepath.Join(t.TempDir(), "frappe-bench", "sites")
	sitePath := filepath.Join(sites, "erp.example.com")
	if err := os.MkdirAll(sitePath, 0o755); err != nil {
		t.Fatal(err)
	}
	if common != "" {
		if err := os.WriteFile(filepath.Join(sites, "common_site_config.json"), []byte(common), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if site != "" {
		if err := os.WriteFile(filepath.Join(sitePath, "site_config.json"), []byte(site), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return sitePath
}

func TestSiteConfigIsMergedOverCommonSiteConfig(t *testing.T) {
	sitePath := bench(t,
		`{"db_name": "_1bd3e0294da19198", "db_password": "s3cret", "db_type": "mariadb", "db_host": "10.0.0.5"}`,
		`{"db_host": "127.0.0.1", "db_port": 3307, "redis_cache": "redis://127.0.0.1:13000", "background_workers": 1}`)
	c, err := LoadSiteConfig(sitePath)
	if err != nil {
		t.Fatal(err)
	}
	common := filepath.Join(filepath.Dir(sitePath), "common_site_config.json")
	site := filepath.Join(sitePath, "site_config.json")
	want := SiteConfig{
		SitePath: sitePath, Site: "erp.example.com", DBType: MariaDB,
		DBName: "_1bd3e0294da19198", DBUser: "_1bd3e0294da19198", DBPassword: "s3cret",
		DBHost: "10.0.0.5", DBPort: 3307, RedisCache: "redis://127.0.0.1:13000",
	}
	got := *c
	got.Source = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("config:\n got %+v\nwant %+v", got, want)
	}
	for key, file := range map[string]string{"db_host": site, "db_port": common, "db_user": site, "redis_cache": common, "db_name": site} {
		if c.Source[key] != file {
			t.Errorf("Source[%s] = %q, want %q", key, c.Source[key], file)
		}
	}
}

func TestSiteConfigDefaultsFollowFrappe(t *testing.T) {
	c, err := LoadSiteConfig(bench(t, `{"db_name": "site1", "db_type": "postgres", "db_port": "6432"}`, ""))
	if err != nil {
		t.Fatal(err)
	}
	if c.DBType != Postgres || c.DBUser != "site1" || c.DBHost != "127.0.0.1" || c.DBPort != 6432 || c.RedisCache != "redis://127.0.0.1:13311" {
		t.Errorf("config = %+v", c)
	}
	if c.Source["db_host"] != "default" || c.Source["redis_cache"] != "default" {
		t.Errorf("sources = %v", c.Source)
	}
	c, err = LoadSiteConfig(bench(t, `{"db_name": "site2", "db_user": "frappe"}`, `{}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.DBType != MariaDB || c.DBPort != 3306 || c.DBUser != "frappe" {
		t.Errorf("config = %+v", c)
	}
	// Frappe: db_name falls back to db_user.
	c, err = LoadSiteConfig(bench(t, `{"db_user": "only_user"}`, ""))
	if err != nil || c.DBName != "only_user" {
		t.Errorf("db_name from db_user: %+v, %v", c, err)
	}
	opts, err := c.RedisOptions()
	if err != nil || opts.Addr != "127.0.0.1:13311" {
		t.Errorf("redis options = %+v, %v", opts, err)
	}
}

func TestSiteConfigErrorsNameTheFileAndKey(t *testing.T) {
	cases := []struct {
		what, site, common string
		wantFile, wantText string
	}{
		{"no site_config.json", "", `{"db_host":"x"}`, "site_config.json", "does not exist"},
		{"no db_name anywhere", `{"db_password":"x"}`, `{"db_host":"x"}`, "site_config.json", `key "db_name" is missing`},
		{"broken site JSON", `{"db_name": `, "", "site_config.json", "not a JSON object"},
		{"broken common JSON", `{"db_name":"a"}`, `[1,2]`, "common_site_config.json", "not a JSON object"},
		{"bad db_type", `{"db_name":"a","db_type":"oracle"}`, "", "site_config.json", `key "db_type"`},
		{"bad db_port in common", `{"db_name":"a"}`, `{"db_port":"abc"}`, "common_site_config.json", `key "db_port"`},
		{"db_port out of range", `{"db_name":"a","db_port":70000}`, "", "site_config.json", `key "db_port"`},
		{"db_name not a string", `{"db_name":["a"]}`, "", "site_config.json", `key "db_name"`},
		{"bad redis_cache", `{"db_name":"a"}`, `{"redis_cache":"http://x"}`, "common_site_config.json", `key "redis_cache"`},
	}
	for _, c := range cases {
		_, err := LoadSiteConfig(bench(t, c.site, c.common))
		if !errors.Is(err, ErrConfig) {
			t.Errorf("%s: err = %v, want ErrConfig", c.what, err)
			continue
		}
		if !strings.Contains(err.Error(), c.wantFile) || !strings.Contains(err.Error(), c.wantText) {
			t.Errorf("%s: %q should name %s and say %q", c.what, err, c.wantFile, c.wantText)
		}
	}
}
