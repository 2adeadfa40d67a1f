// Package bridge is Meridian's adapter to a Frappe site's own database. It
// writes replicated master documents into the tables Frappe reads, laid out
// exactly as Frappe v15 lays them out, so Link fields, reports and forms on
// every site keep working as if the masters were local.
//
// # What it owns
//
// This file set is the schema and connection layer:
//
//   - The DocType model (DocType, DocField): parsed from a DocType JSON file
//     (ParseDocType, ReadDocTypeFile) or read from a live site
//     (LoadDocType: tabDocType + tabDocField by idx + tabCustom Field +
//     tabProperty Setter, ordered the way Frappe's Meta orders them).
//   - Names: ValidateDocTypeName and ValidateFieldname apply Frappe's rules;
//     Dialect.QuoteIdent quotes. No SQL is built from a name that has not
//     passed both; values always travel as bind parameters, except column
//     defaults in DDL, which SQL cannot parameterise and which are escaped.
//   - Frappe's type map and DDL for MariaDB and PostgreSQL (ColumnType,
//     NewTableSpec, CreateTableSQL), ported from frappe/database/schema.py,
//     mariadb/{database,schema}.py and postgres/{database,schema}.py of v15.
//   - Online, additive schema changes (EnsureTable): create a missing table,
//     add missing columns and indexes; never drop, narrow or retype, never
//     touch a site's own columns. The real layout comes from
//     information_schema (InspectTable).
//   - Connections (OpenSite from a bench's sites/<site> directory, OpenDSN
//     from a URL) and the site's time zone (ReadTimeZone).
//
// On top of them:
//
//   - Apply (apply.go): converged documents into the tables in batched
//     transactions with the applied version vector (__meridian_bridge);
//     multi-row statements, falling back to one document at a time so a
//     refused document is rolled back alone and recorded in the durable
//     sync log (__meridian_synclog) with its reason and back-off; Link
//     holds; only the master's columns are written.
//   - Capture (capture.go): local changes past a tie-safe watermark,
//     deletions from tabDeleted Document, and adoption of existing rows.
//   - Mappings (mapping.go): a site's own names for mesh doctypes and
//     fields, with CEL value transforms.
//   - Cache (cache.go): Frappe's Redis document cache invalidation.
//
// # What it may import
//
// The standard library, go-sql-driver/mysql, jackc/pgx/v5 (core only: its
// database/sql adapter needs pgxpool, which this module does not carry),
// redis/go-redis/v9, google/cel-go (mapping transforms), and Meridian's
// crdt package. Never replica, transport,
// node or cmd: the node drives the bridge, not the other way round. The
// bridge starts no goroutines; the node decides when it runs.
//
// # Use
//
//	site, err := bridge.OpenSite(ctx, "/home/frappe/bench/sites/erp.example.com")
//	if err != nil { … }
//	defer site.Close()
//
//	item, err := bridge.ReadDocTypeFile("item.json") // the master's schema version
//	if err != nil { … }
//	rep, err := bridge.EnsureTable(ctx, site.DB, item)
//	if err != nil { … }          // e.g. duplicates block a unique index
//	for _, c := range rep.Changes { log.Print(c) }
//	for _, m := range rep.Mismatches { log.Printf("%s: %s", m.Column, m.Reason) }
//
//	local, stats, err := bridge.LoadDocType(ctx, site.DB, "Item") // as this site sees it
package bridge
