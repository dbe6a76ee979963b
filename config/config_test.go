package config_test

import (
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/qoslake/qoslake/config"
)

// Every setting is documented in the README's configuration table.
func TestEverySettingIsInTheReadme(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range config.Default().Settings() {
		row := "| `--" + s.Flag + "` | `" + s.Env + "` |"
		if !strings.Contains(string(readme), row) {
			t.Errorf("README has no configuration row for %s", row)
		}
	}
}

func TestPrecedenceFlagOverEnvOverDefault(t *testing.T) {
	t.Setenv("QOSLAKE_STREAM_SHARDS", "4")
	t.Setenv("QOSLAKE_PREFIX", "fromenv")
	t.Setenv("QOSLAKE_BRONZE_RETENTION", "48h")
	c := config.Default()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	if err := c.Bind(fs, config.Core, config.Resources, config.Maintain); err != nil {
		t.Fatal(err)
	}
	if err := fs.Parse([]string{"--prefix", "fromflag", "--alert-emails", "a@x.io, b@x.io"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Resolve(config.Core, config.Resources, config.Maintain); err != nil {
		t.Fatal(err)
	}
	if c.StreamShards != 4 || c.Prefix != "fromflag" || c.BronzeRetention != 48*time.Hour {
		t.Errorf("shards %d prefix %s retention %s", c.StreamShards, c.Prefix, c.BronzeRetention)
	}
	if c.Stream != "fromflag-player-events" || c.DeadLetterQueue() != "fromflag-cdn-log-events-dlq" {
		t.Errorf("derived names: %s %s", c.Stream, c.DeadLetterQueue())
	}
	if strings.Join(c.AlertEmails, "|") != "a@x.io|b@x.io" {
		t.Errorf("emails = %q", c.AlertEmails)
	}
}

func TestResolveDefaultsLocalState(t *testing.T) {
	c := config.Default()
	c.StateDir = "/tmp/q"
	if err := c.Resolve(config.Core, config.Tables); err != nil {
		t.Fatal(err)
	}
	if c.CatalogURI != "/tmp/q/catalog.db" || c.Warehouse != "/tmp/q/warehouse" {
		t.Errorf("catalog %s warehouse %s", c.CatalogURI, c.Warehouse)
	}
	c = config.Default()
	c.Catalog = "glue"
	if err := c.Resolve(config.Core, config.Tables); err == nil || !strings.Contains(err.Error(), "--warehouse") {
		t.Errorf("glue without an s3 warehouse: %v", err)
	}
	c.Warehouse = "s3://wh/tables"
	if err := c.Resolve(config.Core, config.Tables); err != nil || c.WarehouseBucket() != "wh" {
		t.Errorf("glue with s3 warehouse: %v bucket %q", err, c.WarehouseBucket())
	}
}

// Settings that would fail later (a zero reload interval panicked the
// GeoIP watcher's ticker) are refused at start, naming the flag.
func TestBadSilverSettingsAreRefusedAtStart(t *testing.T) {
	cases := map[string]func(*config.Config){
		"geoip-reload":  func(c *config.Config) { c.GeoIPReload = 0 },
		"clock-skew":    func(c *config.Config) { c.ClockSkew = -time.Second },
		"dedup-max-ids": func(c *config.Config) { c.DedupMaxIDs = 0 },
	}
	for flagName, set := range cases {
		c := config.Default()
		c.Demo, c.GeoIPCity, c.GeoIPASN = true, "c.mmdb", "a.mmdb"
		set(c)
		err := c.Resolve(config.Core, config.Silver)
		if err == nil || !strings.Contains(err.Error(), flagName) {
			t.Errorf("%s: err = %v, want one naming the flag", flagName, err)
		}
	}
}

// A real-time field list CloudFront could not have written, or a sampling
// rate outside CloudFront's 1-100, is refused at start naming the flag;
// the default is every documented field.
func TestRealtimeSettingsAreChecked(t *testing.T) {
	c := config.Default()
	if err := c.Resolve(config.Core, config.Realtime); err != nil {
		t.Fatal(err)
	}
	if l, err := c.RealtimeLayout(); err != nil || len(l.Names) != 66 || len(l.Unknown()) != 0 {
		t.Fatalf("default layout: %v, %v", l, err)
	}
	cases := map[string]func(*config.Config){
		"realtime-log-fields":    func(c *config.Config) { c.RealtimeLogFields = "c-ip,timestamp" },
		"realtime-sampling-rate": func(c *config.Config) { c.RealtimeSamplingRate = 0 },
	}
	for flagName, set := range cases {
		c := config.Default()
		set(c)
		err := c.Resolve(config.Core, config.Realtime)
		if err == nil || !strings.Contains(err.Error(), "--"+flagName) {
			t.Errorf("%s: err = %v, want one naming the flag", flagName, err)
		}
	}
	c = config.Default()
	if err := c.Resolve(config.Core, config.Resources); err != nil || c.RealtimeStream != "qoslake-cdn-realtime-logs" {
		t.Errorf("realtime stream %q, %v", c.RealtimeStream, err)
	}
}
