// Package lake is qoslake's table layer over Apache Iceberg (iceberg-go).
//
// It owns four things every stage needs and none should write again:
// opening a catalog (SQLite by default, AWS Glue, or REST), declaring tables
// (create, or evolve an existing table by adding columns), committing a batch
// together with the checkpoint it advances, with conflict retries that never
// land a batch twice, and reading incrementally what was appended after a
// snapshot. Maintenance (compaction, snapshot expiry, orphan removal, retention
// deletes) lives here too, because it must carry the checkpoints forward.
package lake

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/catalog/glue"
	"github.com/apache/iceberg-go/catalog/rest"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	icebergio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/utils"
	"github.com/aws/aws-sdk-go-v2/aws"

	// Register the s3:// FileIO for warehouses on S3.
	_ "github.com/apache/iceberg-go/io/gocloud"

	// Pure-Go SQLite driver ("sqlite"): the default catalog needs no cgo.
	_ "modernc.org/sqlite"
)

// Catalog kinds accepted by Open.
const (
	KindSQL  = "sql"
	KindGlue = "glue"
	KindREST = "rest"
)

// Options say which catalog to open and where table data lives.
type Options struct {
	// Kind is KindSQL (default), KindGlue or KindREST.
	Kind string
	// URI is the SQLite file for KindSQL and the server URL for KindREST.
	URI string
	// Warehouse is the root for table data: a file:// or s3:// URL.
	Warehouse string
	// Name is the catalog name recorded in the SQL catalog's rows.
	Name string
	// AWS is the SDK configuration for Glue and for S3 warehouses; it
	// already carries the endpoint resolution of AWS_ENDPOINT_URL*.
	AWS *aws.Config
	// S3Endpoint, when set, points the warehouse FileIO at a non-AWS S3
	// (moto, LocalStack). Path-style addressing follows from it.
	S3Endpoint string
	// Logger receives commit retries and maintenance reports.
	Logger *slog.Logger
	// Observer receives commit outcomes for metrics; may be nil.
	Observer Observer
}

// Observer is told about commits so the caller can export metrics without
// this package depending on a metrics library.
type Observer interface {
	Committed(table string, rows int64)
	Conflict(table string)
}

type nopObserver struct{}

func (nopObserver) Committed(string, int64) {}
func (nopObserver) Conflict(string)         {}

// Lake is an open catalog plus the settings every table handle shares.
type Lake struct {
	cat       catalog.Catalog
	warehouse string
	awsCfg    *aws.Config
	log       *slog.Logger
	obs       Observer
	closeFn   func() error
}

// Open opens (and for SQLite, initialises) the catalog.
func Open(ctx context.Context, o Options) (*Lake, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	if o.Name == "" {
		o.Name = "qoslake"
	}
	wh, err := normaliseWarehouse(o.Warehouse)
	if err != nil {
		return nil, err
	}
	props := iceberg.Properties{"warehouse": wh}
	if strings.HasPrefix(wh, "s3://") {
		if o.S3Endpoint != "" {
			props[icebergio.S3EndpointURL] = o.S3Endpoint
		}
		if o.AWS != nil && o.AWS.Region != "" {
			props[icebergio.S3Region] = o.AWS.Region
		}
	}

	l := &Lake{warehouse: wh, awsCfg: o.AWS, log: o.Logger, obs: o.Observer}
	switch o.Kind {
	case "", KindSQL:
		if o.URI == "" {
			return nil, errors.New("catalog uri: the SQLite catalog needs a file path")
		}
		if err := os.MkdirAll(filepath.Dir(o.URI), 0o755); err != nil {
			return nil, fmt.Errorf("catalog uri %s: %w", o.URI, err)
		}
		// WAL and a busy timeout let several writers in this process (and
		// others sharing the file) commit without "database is locked".
		dsn := "file:" + o.URI + "?_pragma=busy_timeout(30000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
		db, err := sql.Open("sqlite", dsn)
		if err != nil {
			return nil, fmt.Errorf("open sqlite catalog %s: %w", o.URI, err)
		}
		cat, err := sqlcat.NewCatalog(o.Name, db, sqlcat.SQLite, props)
		if err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("open sqlite catalog %s: %w", o.URI, err)
		}
		l.cat = cat
		l.closeFn = func() error { return errors.Join(cat.Close(), db.Close()) }
	case KindGlue:
		if o.AWS == nil {
			return nil, errors.New("glue catalog: no AWS configuration")
		}
		cat, err := glue.NewCatalog(glue.WithAwsConfig(*o.AWS), glue.WithAwsProperties(glue.AwsProperties(props)))
		if err != nil {
			return nil, fmt.Errorf("open glue catalog: %w", err)
		}
		l.cat = cat
		l.closeFn = cat.Close
	case KindREST:
		if o.URI == "" {
			return nil, errors.New("catalog uri: the REST catalog needs a server URL")
		}
		cat, err := rest.NewCatalog(ctx, o.Name, o.URI, rest.WithWarehouseLocation(wh))
		if err != nil {
			return nil, fmt.Errorf("open rest catalog %s: %w", o.URI, err)
		}
		l.cat = cat
		l.closeFn = cat.Close
	default:
		return nil, fmt.Errorf("catalog kind %q: want %s, %s or %s", o.Kind, KindSQL, KindGlue, KindREST)
	}
	return l, nil
}

// Close releases the catalog's connections.
func (l *Lake) Close() error {
	if l.closeFn == nil {
		return nil
	}
	err := l.closeFn()
	l.closeFn = nil
	return err
}

// Warehouse is the normalised warehouse root URL.
func (l *Lake) Warehouse() string { return l.warehouse }

// ctx attaches the AWS configuration so the S3 FileIO uses the same
// credentials and endpoints as the rest of the process.
func (l *Lake) ctx(ctx context.Context) context.Context {
	if l.awsCfg != nil {
		return utils.WithAwsConfig(ctx, l.awsCfg)
	}
	return ctx
}

// Catalog exposes the underlying catalog for read-only inspection.
func (l *Lake) Catalog() catalog.Catalog { return l.cat }

func normaliseWarehouse(wh string) (string, error) {
	if wh == "" {
		return "", errors.New("warehouse: not set")
	}
	u, err := url.Parse(wh)
	if err != nil {
		return "", fmt.Errorf("warehouse %q: %w", wh, err)
	}
	switch u.Scheme {
	case "", "file":
		p := u.Path
		if u.Scheme == "" {
			p = wh
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", fmt.Errorf("warehouse %q: %w", wh, err)
		}
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return "", fmt.Errorf("warehouse %q: %w", wh, err)
		}
		return "file://" + abs, nil
	case "s3", "s3a":
		if u.Host == "" {
			return "", fmt.Errorf("warehouse %q: no bucket", wh)
		}
		return "s3://" + u.Host + strings.TrimSuffix(u.Path, "/"), nil
	default:
		return "", fmt.Errorf("warehouse %q: scheme must be file or s3", wh)
	}
}
