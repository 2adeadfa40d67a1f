package bridge

import (
	"context"
	"os"
	"testing"
	"time"
)

func redisURL() string {
	if v := os.Getenv("MERIDIAN_TEST_REDIS"); v != "" {
		return v
	}
	return "redis://127.0.0.1:6379/0"
}

// The bridge removes both forms of Frappe's document cache for the
// documents it writes, under the site's prefix, and nothing else.
func TestCacheInvalidatesFrappeDocumentCache(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db := randomDBName()
	c, err := NewCache(redisURL(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := c.rdb
	p := db + "|"
	t.Cleanup(func() {
		r.Del(context.Background(), p+"document_cache::Item::A", p+"document_cache::Item::B", p+"document_cache::Item::C", p+"document_cache", p+"last_modified")
	})
	for _, k := range []string{"A", "B", "C"} {
		if err := r.Set(ctx, p+"document_cache::Item::"+k, "cached", time.Minute).Err(); err != nil {
			t.Fatalf("redis at %s: %v", redisURL(), err)
		}
	}
	r.HSet(ctx, p+"document_cache", "Item::A", "x", "Item::C", "x")
	r.HSet(ctx, p+"last_modified", "Item", "x", "UOM", "y")
	if err := c.Invalidate(ctx, "Item", []string{"A", "B"}); err != nil {
		t.Fatal(err)
	}
	if n := r.Exists(ctx, p+"document_cache::Item::A", p+"document_cache::Item::B").Val(); n != 0 {
		t.Fatalf("%d written documents still cached", n)
	}
	if r.Exists(ctx, p+"document_cache::Item::C").Val() != 1 || !r.HExists(ctx, p+"document_cache", "Item::C").Val() {
		t.Fatal("a document the bridge did not write was dropped from the cache")
	}
	if r.HExists(ctx, p+"document_cache", "Item::A").Val() || r.HExists(ctx, p+"last_modified", "Item").Val() {
		t.Fatal("the hash form of the cache still holds a written document")
	}
	if !r.HExists(ctx, p+"last_modified", "UOM").Val() {
		t.Fatal("another doctype's entry was dropped")
	}
}
