package bridge

import "errors"

// Marker errors. Every error the package returns wraps one of these, so
// callers can branch with errors.Is while the message says what to do.
var (
	// ErrInvalidName: a doctype or field name is not an identifier Frappe allows.
	ErrInvalidName = errors.New("bridge: invalid name")
	// ErrInvalidDocType: a DocType definition is malformed or inconsistent.
	ErrInvalidDocType = errors.New("bridge: invalid doctype")
	// ErrInvalidValue: a literal (e.g. a field default) cannot be rendered safely.
	ErrInvalidValue = errors.New("bridge: invalid value")
	// ErrNoTable: the doctype has no table of its own (Single or virtual).
	ErrNoTable = errors.New("bridge: doctype has no table")
	// ErrUnsupportedDialect: db_type is neither mariadb nor postgres.
	ErrUnsupportedDialect = errors.New("bridge: unsupported database type")
	// ErrConfig: site_config.json / common_site_config.json is missing or wrong.
	ErrConfig = errors.New("bridge: site configuration")
	// ErrNotFound: a DocType is not defined in the site database.
	ErrNotFound = errors.New("bridge: not found")
	// ErrSchema: the schema could not be brought up to date.
	ErrSchema = errors.New("bridge: schema change failed")
)
