package bridge

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Cache drops the documents the bridge writes from Frappe's Redis document
// cache, so Desk and the API read the new rows. Frappe prefixes every key
// with "<db_name>|" (RedisWrapper.make_key). Frappe v15 keeps a document
// under "document_cache::<doctype>::<name>"; earlier releases keep it in
// the hash "document_cache" under "<doctype>::<name>" with a
// "last_modified" hash per doctype. Both forms are removed.
type Cache struct {
	rdb    *redis.Client
	prefix string
}

// NewCache connects to a site's redis_cache URL; dbName is the site's
// db_name (the key prefix).
func NewCache(url, dbName string) (*Cache, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("bridge: redis_cache %q: %w", url, err)
	}
	return &Cache{rdb: redis.NewClient(opt), prefix: dbName + "|"}, nil
}

// Invalidate removes the cached copies of documents.
func (c *Cache) Invalidate(ctx context.Context, doctype string, names []string) error {
	if c == nil || len(names) == 0 {
		return nil
	}
	pipe := c.rdb.Pipeline()
	fields := make([]string, len(names))
	for i, n := range names {
		pipe.Del(ctx, c.prefix+"document_cache::"+doctype+"::"+n)
		fields[i] = doctype + "::" + n
	}
	pipe.HDel(ctx, c.prefix+"document_cache", fields...)
	pipe.HDel(ctx, c.prefix+"last_modified", doctype)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("bridge: invalidating Frappe's cache of %s: %w", doctype, err)
	}
	return nil
}

// Close closes the Redis connection.
func (c *Cache) Close() error {
	if c == nil {
		return nil
	}
	return c.rdb.Close()
}
