package bridge

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
)

// DB is a pool of connections to one site database, MariaDB or PostgreSQL.
//
// MariaDB goes through database/sql with go-sql-driver/mysql. PostgreSQL
// uses pgx directly with a small pool of its own: pgx's database/sql adapter
// (pgx/v5/stdlib) imports pgxpool and with it jackc/puddle, which this module
// does not carry, and pgx natively gives exact control over how numeric and
// timestamp values are decoded, which the apply layer will need.
//
// Queries take bind parameters written with Dialect.Placeholder. Scan
// accepts what both drivers accept: pointers to string, []byte, int64,
// float64, bool, and the sql.Null* types for nullable columns.
type DB struct {
	dialect Dialect
	sqldb   *sql.DB // MariaDB
	pg      *pgPool // PostgreSQL
}

// Querier runs statements; *DB and *Tx implement it.
type Querier interface {
	Dialect() Dialect
	// Exec runs a statement and returns the number of rows it affected.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	// Query runs a statement that returns rows. Close the rows when done.
	Query(ctx context.Context, query string, args ...any) (*Rows, error)
}

var (
	_ Querier = (*DB)(nil)
	_ Querier = (*Tx)(nil)
)

// Dialect returns the database's dialect.
func (db *DB) Dialect() Dialect { return db.dialect }

// Exec implements Querier.
func (db *DB) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	if db.pg != nil {
		c, err := db.pg.acquire(ctx)
		if err != nil {
			return 0, err
		}
		defer db.pg.release(c)
		tag, err := c.Exec(ctx, query, args...)
		if err != nil {
			return 0, err
		}
		return tag.RowsAffected(), nil
	}
	res, err := db.sqldb.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, nil // DDL: no row count
	}
	return n, nil
}

// Query implements Querier.
func (db *DB) Query(ctx context.Context, query string, args ...any) (*Rows, error) {
	if db.pg != nil {
		c, err := db.pg.acquire(ctx)
		if err != nil {
			return nil, err
		}
		rows, err := c.Query(ctx, query, args...)
		if err != nil {
			db.pg.release(c)
			return nil, err
		}
		return &Rows{pg: rows, release: func() { db.pg.release(c) }}, nil
	}
	rows, err := db.sqldb.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return &Rows{sql: rows}, nil
}

// Begin starts a transaction.
func (db *DB) Begin(ctx context.Context) (*Tx, error) {
	if db.pg != nil {
		c, err := db.pg.acquire(ctx)
		if err != nil {
			return nil, err
		}
		tx, err := c.Begin(ctx)
		if err != nil {
			db.pg.release(c)
			return nil, err
		}
		return &Tx{dialect: db.dialect, pg: tx, release: func() { db.pg.release(c) }}, nil
	}
	tx, err := db.sqldb.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	return &Tx{dialect: db.dialect, sql: tx}, nil
}

// Ping checks that the server answers.
func (db *DB) Ping(ctx context.Context) error {
	if db.pg != nil {
		c, err := db.pg.acquire(ctx)
		if err != nil {
			return err
		}
		defer db.pg.release(c)
		return c.Ping(ctx)
	}
	return db.sqldb.PingContext(ctx)
}

// Close closes every connection. Rows and transactions still open fail.
func (db *DB) Close() error {
	if db.pg != nil {
		return db.pg.close()
	}
	return db.sqldb.Close()
}

// Tx is a database transaction.
type Tx struct {
	dialect Dialect
	sql     *sql.Tx
	pg      pgx.Tx
	release func()
	once    sync.Once
}

// Dialect implements Querier.
func (tx *Tx) Dialect() Dialect { return tx.dialect }

// Exec implements Querier.
func (tx *Tx) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	if tx.pg != nil {
		tag, err := tx.pg.Exec(ctx, query, args...)
		if err != nil {
			return 0, err
		}
		return tag.RowsAffected(), nil
	}
	res, err := tx.sql.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, nil
	}
	return n, nil
}

// Query implements Querier.
func (tx *Tx) Query(ctx context.Context, query string, args ...any) (*Rows, error) {
	if tx.pg != nil {
		rows, err := tx.pg.Query(ctx, query, args...)
		if err != nil {
			return nil, err
		}
		return &Rows{pg: rows}, nil
	}
	rows, err := tx.sql.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return &Rows{sql: rows}, nil
}

// Commit commits the transaction.
func (tx *Tx) Commit(ctx context.Context) error {
	if tx.pg != nil {
		defer tx.done()
		return tx.pg.Commit(ctx)
	}
	return tx.sql.Commit()
}

// Rollback aborts the transaction; after Commit it is a no-op.
func (tx *Tx) Rollback(ctx context.Context) error {
	if tx.pg != nil {
		defer tx.done()
		err := tx.pg.Rollback(ctx)
		if errors.Is(err, pgx.ErrTxClosed) {
			return nil
		}
		return err
	}
	err := tx.sql.Rollback()
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}

func (tx *Tx) done() {
	tx.once.Do(func() {
		if tx.release != nil {
			tx.release()
		}
	})
}

// Rows is the result of a query.
type Rows struct {
	sql     *sql.Rows
	pg      pgx.Rows
	release func()
	once    sync.Once
}

// Next advances to the next row; at the end it closes the rows.
func (r *Rows) Next() bool {
	var ok bool
	if r.pg != nil {
		ok = r.pg.Next()
	} else {
		ok = r.sql.Next()
	}
	if !ok {
		r.Close()
	}
	return ok
}

// Scan copies the current row into dest.
func (r *Rows) Scan(dest ...any) error {
	if r.pg != nil {
		return r.pg.Scan(dest...)
	}
	return r.sql.Scan(dest...)
}

// Err returns the error that ended the iteration, if any.
func (r *Rows) Err() error {
	if r.pg != nil {
		return r.pg.Err()
	}
	return r.sql.Err()
}

// Close frees the rows and their connection; it may be called more than once.
func (r *Rows) Close() {
	r.once.Do(func() {
		if r.pg != nil {
			r.pg.Close()
		} else {
			_ = r.sql.Close()
		}
		if r.release != nil {
			r.release()
		}
	})
}

// queryRow runs a query expected to return at most one row and scans it.
// It returns sql.ErrNoRows when there is none, on both dialects.
func queryRow(ctx context.Context, q Querier, query string, args []any, dest ...any) error {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	rows.Close()
	return rows.Err()
}

// newMariaDB opens a pool for a go-sql-driver configuration. The session
// uses Frappe's charset and collation; DATETIME and DECIMAL values come back
// as text, so naive datetimes and exact decimals are never reinterpreted.
func newMariaDB(cfg *mysql.Config) (*DB, error) {
	cfg = cfg.Clone()
	cfg.Collation = mariadbCollation
	cfg.ParseTime = false
	// Arguments are escaped by the driver (utf8mb4, backslash-aware) and sent
	// with the statement: one round trip instead of prepare, execute, close.
	cfg.InterpolateParams = true
	cfg.MultiStatements = false
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("bridge: mariadb connection settings: %w", err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(defaultPoolSize)
	db.SetMaxIdleConns(defaultPoolSize)
	return &DB{dialect: MariaDB, sqldb: db}, nil
}

// newPostgres opens a pool for a pgx configuration. Every statement is
// described before it runs rather than cached as a prepared statement: the
// bridge alters tables, and a cached plan would fail once after each change.
func newPostgres(cfg *pgx.ConnConfig) *DB {
	cfg = cfg.Copy()
	cfg.DefaultQueryExecMode = pgx.QueryExecModeDescribeExec
	return &DB{dialect: Postgres, pg: &pgPool{cfg: cfg, sem: make(chan struct{}, defaultPoolSize)}}
}

// defaultPoolSize bounds connections per site: the bridge applies and
// captures in a few sequential streams, and Frappe needs its own connections.
const defaultPoolSize = 4

// pgPool is a minimal bounded pool of pgx connections.
type pgPool struct {
	cfg    *pgx.ConnConfig
	sem    chan struct{} // one token per connection in use
	mu     sync.Mutex
	idle   []*pgx.Conn
	closed bool
}

var errPoolClosed = errors.New("bridge: database is closed")

func (p *pgPool) acquire(ctx context.Context) (*pgx.Conn, error) {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.sem
		return nil, errPoolClosed
	}
	if n := len(p.idle); n > 0 {
		c := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return c, nil
	}
	p.mu.Unlock()
	c, err := pgx.ConnectConfig(ctx, p.cfg)
	if err != nil {
		<-p.sem
		return nil, err
	}
	return c, nil
}

// release returns c to the pool, or closes it when it is broken or was left
// inside a transaction.
func (p *pgPool) release(c *pgx.Conn) {
	defer func() { <-p.sem }()
	healthy := !c.IsClosed() && c.PgConn().TxStatus() == 'I'
	p.mu.Lock()
	if healthy && !p.closed {
		p.idle = append(p.idle, c)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	_ = c.Close(context.Background())
}

func (p *pgPool) close() error {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	var errs []error
	for _, c := range idle {
		errs = append(errs, c.Close(context.Background()))
	}
	return errors.Join(errs...)
}
