// Package postgres is the PostgreSQL store.Store (pgx v5, pgxpool): a
// connection pool with statement caching, monthly signal partitions, hop
// traces written in one round trip, and tsvector full-text search.
//
// When the database is unreachable every method returns an error wrapping
// store.ErrUnavailable (the server answers 503 + Retry-After); pgxpool
// reconnects by itself once the database is back, so the same Store keeps
// working without being reopened.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/puddle/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hal9-lab/hal9-lab/server/store"
	"github.com/hal9-lab/hal9-lab/server/store/internal/ftsquery"
	"github.com/hal9-lab/hal9-lab/server/store/internal/groupcommit"
	"github.com/hal9-lab/hal9-lab/server/store/internal/poolmetrics"
)

// Defaults for Options; the pool sizes are seed 002's production values.
const (
	DefaultMaxConns       = 100
	DefaultMinConns       = 10
	DefaultConnectTimeout = 5 * time.Second
	DefaultSearchLimit    = 20
	DefaultCommitters     = 4
	MaxSearchLimit        = 1000
	// PartitionsAhead is how many months after the current one always have
	// a signals partition.
	PartitionsAhead = 3
)

// Options configure the pool. Zero values take the defaults; a
// pool_max_conns / pool_min_conns parameter in the URL is used when the
// matching field is zero.
type Options struct {
	MaxConns          int32         // default 100
	MinConns          int32         // default 10; kept open and warm
	MaxConnLifetime   time.Duration // default pgxpool's (1h)
	MaxConnIdleTime   time.Duration // default pgxpool's (30m)
	HealthCheckPeriod time.Duration // default pgxpool's (1m)
	ConnectTimeout    time.Duration // per dial; default 5s (unless connect_timeout is in the URL)
	// SkipMigrate leaves the schema alone at Open (for `hal9 migrate`-managed deployments).
	SkipMigrate bool
	// GroupCommit sends concurrent SaveSignal calls to PostgreSQL together,
	// one pgx.Batch (one transaction, one round trip, one commit) per group.
	// Off by default: measured on a durable PostgreSQL, its own group commit
	// of concurrent transactions (one WAL flush for the commits waiting on
	// it) does as well (docs/store.md).
	GroupCommit bool
	// Committers is how many group commits may be in flight at once, each
	// on its own connection (DefaultCommitters when 0; used with
	// GroupCommit). One committer waits for each commit's WAL flush before
	// it sends the next batch; several overlap the flushes with the work.
	Committers int
	Logger     *slog.Logger // default: discard
}

// Store is a store.Store on a PostgreSQL database.
type Store struct {
	pool    *pgxpool.Pool
	addr    string // host:port/database, for messages (never the password)
	log     *slog.Logger
	commits *groupcommit.Committer[signalSave] // nil unless Options.GroupCommit
	batches *groupcommit.Metrics

	closeOnce sync.Once
}

var _ store.Store = (*Store)(nil)

// Open connects, checks the database answers, applies migrations and
// creates the signal partitions for this month and the next three.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// ParseConfig's message may quote the URL; say what is expected instead.
		return nil, errors.New("open postgres store: invalid database URL; want postgres://user:password@host:5432/dbname?sslmode=disable")
	}
	switch {
	case opts.MaxConns != 0:
		cfg.MaxConns = opts.MaxConns
	case !strings.Contains(url, "pool_max_conns"):
		cfg.MaxConns = DefaultMaxConns
	}
	switch {
	case opts.MinConns != 0:
		cfg.MinConns = opts.MinConns
	case !strings.Contains(url, "pool_min_conns"):
		cfg.MinConns = min(DefaultMinConns, cfg.MaxConns)
	}
	if cfg.MaxConns < 1 || cfg.MinConns < 0 || cfg.MinConns > cfg.MaxConns {
		return nil, fmt.Errorf("open postgres store: pool sizes must satisfy 0 <= MinConns (%d) <= MaxConns (%d), MaxConns >= 1", cfg.MinConns, cfg.MaxConns)
	}
	if opts.MaxConnLifetime > 0 {
		cfg.MaxConnLifetime = opts.MaxConnLifetime
	}
	if opts.MaxConnIdleTime > 0 {
		cfg.MaxConnIdleTime = opts.MaxConnIdleTime
	}
	if opts.HealthCheckPeriod > 0 {
		cfg.HealthCheckPeriod = opts.HealthCheckPeriod
	}
	if opts.ConnectTimeout > 0 {
		cfg.ConnConfig.ConnectTimeout = opts.ConnectTimeout
	} else if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	// Statement caching stays on (pgx's default QueryExecModeCacheStatement):
	// every hot query is prepared once per connection. Behind PgBouncer in
	// transaction mode, add default_query_exec_mode=exec to the URL.
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		addr: fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database),
		log:  log,
	}
	s.pool, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres store %s: %w", s.addr, err)
	}
	if err := s.Ping(ctx); err != nil {
		s.pool.Close()
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	if !opts.SkipMigrate {
		if err := s.Migrate(ctx); err != nil {
			s.pool.Close()
			return nil, fmt.Errorf("open postgres store: %w", err)
		}
	}
	s.batches = groupcommit.NewMetrics("postgres")
	if opts.GroupCommit {
		committers := opts.Committers
		if committers <= 0 {
			committers = DefaultCommitters
		}
		// Each committer holds a connection while it commits: leave the
		// requests at least half of the pool.
		committers = max(1, min(committers, int(cfg.MaxConns)/2))
		s.commits = groupcommit.New(s.execSaves, groupcommit.Options{Metrics: s.batches, Timeout: batchTimeout, Committers: committers})
	}
	return s, nil
}

// batchTimeout bounds one group commit of signal saves. A caller waits for
// the commit holding its save however its own context ends (so that nil
// means durable), so this is also the longest a save can hold a request or
// a shutdown when the database stops answering: the 10 s a request's
// store calls get (app.StoreCallTimeout).
const batchTimeout = 10 * time.Second

// Pool is the underlying pgxpool, for wiring that needs it (benchmarks, checks).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Ping checks that the database answers a query.
func (s *Store) Ping(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, ";")
	return s.wrap(ctx, "ping", err)
}

// Close commits the writes already queued and closes the pool. Every
// acknowledged write was committed by PostgreSQL before it was
// acknowledged. Safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.commits != nil {
			s.commits.Close()
		}
		s.pool.Close()
	})
	return nil
}

// Collector exports pgxpool.Stat() as hal9_db_pool_* with db="postgres",
// and hal9_db_batch_size / hal9_db_commit_duration_seconds (observed only
// with Options.GroupCommit).
func (s *Store) Collector() prometheus.Collector {
	return poolmetrics.Join(append(s.batches.Collectors(), s.poolCollector())...)
}

func (s *Store) poolCollector() prometheus.Collector {
	return poolmetrics.New("postgres", func() poolmetrics.Stats {
		st := s.pool.Stat()
		acq, empty := st.AcquireCount(), st.EmptyAcquireCount()
		return poolmetrics.Stats{
			Acquired:           int64(st.AcquiredConns()),
			Idle:               int64(st.IdleConns()),
			Total:              int64(st.TotalConns()),
			Max:                int64(st.MaxConns()),
			Acquires:           &acq,
			EmptyAcquires:      &empty,
			AcquireWaitSeconds: st.EmptyAcquireWaitTime().Seconds(),
		}
	})
}

// wrap names the operation and maps the error to the store's sentinels.
func (s *Store) wrap(ctx context.Context, what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("postgres %s %s: %w", s.addr, what, mapErr(ctx, err))
}

// mapErr maps pgx errors to store.ErrNotFound, ErrConflict and
// ErrUnavailable, keeping the original message.
func mapErr(ctx context.Context, err error) error {
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		// The caller gave up (client gone, deadline): not the database's fault.
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505": // unique_violation
			return &store.ConflictError{Field: uniqueColumn(pe), Detail: err.Error()}
		case pe.Code == "23503": // foreign_key_violation: the referenced record is missing
			return fmt.Errorf("%w: referenced record: %v", store.ErrNotFound, err)
		case unavailableCode(pe.Code):
			return fmt.Errorf("%w: %v", store.ErrUnavailable, err)
		}
		return err
	}
	if unavailable(err) {
		return fmt.Errorf("%w: %v", store.ErrUnavailable, err)
	}
	return err
}

// uniqueColumn is the column of a violated UNIQUE constraint from its name:
// PostgreSQL names a column's constraint <table>_<column>_key (a primary
// key, <table>_pkey, gives "").
func uniqueColumn(pe *pgconn.PgError) string {
	col, ok := strings.CutPrefix(pe.ConstraintName, pe.TableName+"_")
	if !ok || pe.TableName == "" {
		return ""
	}
	col, ok = strings.CutSuffix(col, "_key")
	if !ok {
		return ""
	}
	return col
}

// unavailableCode: SQLSTATEs meaning "the server cannot serve you right now".
func unavailableCode(code string) bool {
	switch code {
	case "57P01", // admin_shutdown (fast shutdown, pg_terminate_backend)
		"57P02", // crash_shutdown
		"57P03", // cannot_connect_now (starting up, shutting down)
		"53300", // too_many_connections
		"58030": // io_error
		return true
	}
	return strings.HasPrefix(code, "08") // connection_exception class
}

// unavailable recognises the client-side shapes of a database that went
// away: refused dials, reset or closed sockets, a pool closed under us.
func unavailable(err error) bool {
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.As(err, &ce),
		errors.Is(err, puddle.ErrClosedPool),
		errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.As(err, &ne),
		pgconn.SafeToRetry(err):
		return true
	}
	// pgx reports some lost connections only as text.
	msg := err.Error()
	return strings.Contains(msg, "conn closed") || strings.Contains(msg, "closed pool") ||
		strings.Contains(msg, "unexpected EOF") || strings.Contains(msg, "connection reset")
}

const userCols = `id, username, email, password_hash, created_at`

func scanUser(r pgx.Row) (store.User, error) {
	var u store.User
	err := r.Scan(&u.ID, &u.Username, &u.Email, &u.PasswordHash, &u.CreatedAt)
	u.CreatedAt = u.CreatedAt.UTC()
	return u, err
}

// CreateUser inserts u; ErrConflict when the id, username or email is taken.
func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO users (`+userCols+`) VALUES ($1, $2, $3, $4, $5)`,
		u.ID, u.Username, u.Email, u.PasswordHash, u.CreatedAt)
	return s.wrap(ctx, "create user "+u.Username, err)
}

// UserByID returns the user or ErrNotFound.
func (s *Store) UserByID(ctx context.Context, id string) (store.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = $1`, id))
	return u, s.wrap(ctx, "user "+id, err)
}

// UserByUsername returns the user or ErrNotFound.
func (s *Store) UserByUsername(ctx context.Context, username string) (store.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE username = $1`, username))
	return u, s.wrap(ctx, "user "+username, err)
}

const keyCols = `id, user_id, name, prefix, hash, created_at, last_used_at`

func scanKey(r pgx.Row) (store.APIKey, error) {
	var k store.APIKey
	var used *time.Time
	err := r.Scan(&k.ID, &k.UserID, &k.Name, &k.Prefix, &k.Hash, &k.CreatedAt, &used)
	k.CreatedAt = k.CreatedAt.UTC()
	if used != nil {
		k.LastUsedAt = used.UTC()
	}
	return k, err
}

// nullTime stores the zero time as NULL.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// CreateAPIKey inserts k; ErrConflict on a duplicate id or hash, ErrNotFound
// when the user does not exist.
func (s *Store) CreateAPIKey(ctx context.Context, k store.APIKey) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO api_keys (`+keyCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		k.ID, k.UserID, k.Name, k.Prefix, k.Hash, k.CreatedAt, nullTime(k.LastUsedAt))
	return s.wrap(ctx, "create api key "+k.ID, err)
}

// APIKeyByHash returns the key with that hash or ErrNotFound.
func (s *Store) APIKeyByHash(ctx context.Context, hash string) (store.APIKey, error) {
	k, err := scanKey(s.pool.QueryRow(ctx, `SELECT `+keyCols+` FROM api_keys WHERE hash = $1`, hash))
	return k, s.wrap(ctx, "api key by hash", err)
}

// ListAPIKeys returns the user's keys, oldest first.
func (s *Store) ListAPIKeys(ctx context.Context, userID string) ([]store.APIKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+keyCols+` FROM api_keys WHERE user_id = $1 ORDER BY created_at, id`, userID)
	if err != nil {
		return nil, s.wrap(ctx, "list api keys", err)
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.APIKey, error) { return scanKey(r) })
	return keys, s.wrap(ctx, "list api keys", err)
}

// DeleteAPIKey deletes the user's key; ErrNotFound when the key does not
// exist or belongs to someone else.
func (s *Store) DeleteAPIKey(ctx context.Context, userID, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM api_keys WHERE id = $1 AND user_id = $2`, id, userID)
	return s.wrap(ctx, "delete api key "+id, affected(tag, err))
}

// TouchAPIKey records when the key was last used; ErrNotFound when unknown.
func (s *Store) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE api_keys SET last_used_at = $2 WHERE id = $1`, id, at)
	return s.wrap(ctx, "touch api key "+id, affected(tag, err))
}

func affected(tag pgconn.CommandTag, err error) error {
	if err == nil && tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return err
}

// UpsertNeurons inserts or updates the neurons in one round trip.
func (s *Store) UpsertNeurons(ctx context.Context, ns []store.Neuron) error {
	if len(ns) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, n := range ns {
		b.Queue(`INSERT INTO neurons (id, layer, state, updated_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (id) DO UPDATE SET layer = EXCLUDED.layer, state = EXCLUDED.state, updated_at = EXCLUDED.updated_at`,
			n.ID, n.Layer, n.State, n.UpdatedAt)
	}
	return s.wrap(ctx, "upsert neurons", s.pool.SendBatch(ctx, b).Close())
}

// ListNeurons returns every neuron ordered by id.
func (s *Store) ListNeurons(ctx context.Context) ([]store.Neuron, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, layer, state, updated_at FROM neurons ORDER BY id`)
	if err != nil {
		return nil, s.wrap(ctx, "list neurons", err)
	}
	ns, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Neuron, error) {
		var n store.Neuron
		err := r.Scan(&n.ID, &n.Layer, &n.State, &n.UpdatedAt)
		n.UpdatedAt = n.UpdatedAt.UTC()
		return n, err
	})
	return ns, s.wrap(ctx, "list neurons", err)
}

const (
	sqlUpsertSignal = `INSERT INTO signals (id, user_id, layer, neuron_id, content, output, status, error,
		tokens_in, tokens_out, cost_usd, duration_ms, created_at, completed_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
		ON CONFLICT (id, created_at) DO UPDATE SET user_id = EXCLUDED.user_id, layer = EXCLUDED.layer,
		neuron_id = EXCLUDED.neuron_id, content = EXCLUDED.content, output = EXCLUDED.output,
		status = EXCLUDED.status, error = EXCLUDED.error, tokens_in = EXCLUDED.tokens_in,
		tokens_out = EXCLUDED.tokens_out, cost_usd = EXCLUDED.cost_usd, duration_ms = EXCLUDED.duration_ms,
		completed_at = EXCLUDED.completed_at`
	sqlInsertHop = `INSERT INTO signal_hops (signal_id, seq, neuron_id, layer, cache, tokens_in, tokens_out,
		cost_usd, duration_ms, error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`
	sqlClearSignal = `WITH stale AS (DELETE FROM signals WHERE id = $1 AND created_at <> $2),
		old_hops AS (DELETE FROM signal_hops WHERE signal_id = $1)
		DELETE FROM memories WHERE signal_id = $1`
	// Rows as arrays, one statement per table.
	sqlInsertHops = `INSERT INTO signal_hops (signal_id, seq, neuron_id, layer, cache, tokens_in, tokens_out, cost_usd, duration_ms, error)
		SELECT $1, * FROM unnest($2::int[], $3::text[], $4::text[], $5::text[], $6::int[], $7::int[], $8::float8[], $9::float8[], $10::text[])`
	sqlInsertMemories = `INSERT INTO memories (user_id, signal_id, neuron_id, layer, content, created_at)
		SELECT $1, $2, * FROM unnest($3::text[], $4::text[], $5::text[], $6::timestamptz[])`
)

// SaveSignal inserts or replaces the signal with its hops and memories.
// Everything goes to the server as ONE pgx.Batch: one network round trip
// however many hops, and atomic, because a batch outside an explicit
// transaction runs in a single implicit transaction (up to its Sync). A
// signal whose month has no partition yet gets one, then the save is retried.
func (s *Store) SaveSignal(ctx context.Context, sg store.Signal, hops []store.Hop, mems []store.Memory) error {
	var err error
	if s.commits != nil {
		err = s.commits.Do(ctx, signalSave{sg, hops, mems}, signalSize(sg, hops, mems))
	} else {
		err = s.saveSignal(ctx, sg, hops, mems)
	}
	return s.wrap(ctx, "save signal "+sg.ID, err)
}

// saveSignal is one save on its own: one batch, one implicit transaction
// (errors unwrapped: SaveSignal names them).
func (s *Store) saveSignal(ctx context.Context, sg store.Signal, hops []store.Hop, mems []store.Memory) error {
	err := s.pool.SendBatch(ctx, signalBatch(sg, hops, mems)).Close()
	if isNoPartition(err) {
		if perr := s.ensurePartition(ctx, sg.CreatedAt); perr != nil {
			return perr
		}
		err = s.pool.SendBatch(ctx, signalBatch(sg, hops, mems)).Close()
	}
	return err
}

func signalBatch(sg store.Signal, hops []store.Hop, mems []store.Memory) *pgx.Batch {
	b := &pgx.Batch{}
	queueSignal(b, sg, hops, mems)
	return b
}

// queueSignal adds one signal's save to b.
func queueSignal(b *pgx.Batch, sg store.Signal, hops []store.Hop, mems []store.Memory) {
	// Four statements whatever the number of hops: every statement costs
	// the database CPU, and PostgreSQL shares the machine with the server.
	// (id, created_at) is the key; the first drops a copy saved under
	// another created_at (so that an id names one signal, as in SQLite) and
	// the hops and memories of an earlier save (the tables differ, so the
	// deletes cannot interfere).
	b.Queue(sqlClearSignal, sg.ID, sg.CreatedAt)
	b.Queue(sqlUpsertSignal, sg.ID, sg.UserID, sg.Layer, sg.NeuronID, sg.Content, sg.Output, sg.Status, sg.Error,
		sg.TokensIn, sg.TokensOut, sg.CostUSD, sg.DurationMS, sg.CreatedAt, nullTime(sg.CompletedAt))
	if len(hops) > 0 {
		var (
			seq, in, out            = make([]int32, len(hops)), make([]int32, len(hops)), make([]int32, len(hops))
			neuron, layer, cch, msg = make([]string, len(hops)), make([]string, len(hops)), make([]string, len(hops)), make([]string, len(hops))
			cost, dur               = make([]float64, len(hops)), make([]float64, len(hops))
		)
		for i, h := range hops {
			seq[i], neuron[i], layer[i], cch[i], in[i], out[i] = int32(h.Seq), h.NeuronID, h.Layer, h.Cache, int32(h.TokensIn), int32(h.TokensOut)
			cost[i], dur[i], msg[i] = h.CostUSD, h.DurationMS, h.Error
		}
		b.Queue(sqlInsertHops, sg.ID, seq, neuron, layer, cch, in, out, cost, dur, msg)
	}
	if len(mems) > 0 {
		neuron, layer, content, at := make([]string, len(mems)), make([]string, len(mems)), make([]string, len(mems)), make([]time.Time, len(mems))
		for i, m := range mems {
			neuron[i], layer[i], content[i], at[i] = m.NeuronID, m.Layer, ftsquery.Clean(m.Content), m.CreatedAt
			if at[i].IsZero() {
				at[i] = time.Now()
			}
		}
		b.Queue(sqlInsertMemories, sg.UserID, sg.ID, neuron, layer, content, at)
	}
}

// signalSave is one SaveSignal queued for a group commit.
type signalSave struct {
	sg   store.Signal
	hops []store.Hop
	mems []store.Memory
}

func signalSize(sg store.Signal, hops []store.Hop, mems []store.Memory) int {
	n := 256 + len(sg.Content) + len(sg.Output) + len(sg.Error) + 128*len(hops)
	for _, m := range mems {
		n += 64 + len(m.Content)
	}
	return n
}

// execSaves commits a group of signal saves as one pgx.Batch: one round
// trip, one implicit transaction, one commit. A statement that fails aborts
// that transaction and nothing of the batch is written, so the saves are
// then retried one by one: only the bad one fails.
func (s *Store) execSaves(ctx context.Context, saves []signalSave) []error {
	errs := make([]error, len(saves))
	if len(saves) > 1 {
		b := &pgx.Batch{}
		for _, sv := range saves {
			queueSignal(b, sv.sg, sv.hops, sv.mems)
		}
		if s.pool.SendBatch(ctx, b).Close() == nil {
			return errs
		}
		s.batches.Split()
	}
	for i, sv := range saves {
		errs[i] = s.saveSignal(ctx, sv.sg, sv.hops, sv.mems)
	}
	return errs
}

func isNoPartition(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23514" && strings.Contains(pe.Message, "no partition")
}

// GetSignal returns the signal and its hops ordered by Seq, or ErrNotFound.
// The id alone does not name a partition, so PostgreSQL probes each
// partition's primary-key index (id leads it): one index lookup per month
// kept, cheap for the handful of months the table holds.
func (s *Store) GetSignal(ctx context.Context, id string) (store.Signal, []store.Hop, error) {
	b := &pgx.Batch{}
	var sg store.Signal
	var completed *time.Time
	b.Queue(`SELECT id, user_id, layer, neuron_id, content, output, status, error, tokens_in, tokens_out,
		cost_usd, duration_ms, created_at, completed_at FROM signals WHERE id = $1 ORDER BY created_at DESC LIMIT 1`, id).
		QueryRow(func(r pgx.Row) error {
			return r.Scan(&sg.ID, &sg.UserID, &sg.Layer, &sg.NeuronID, &sg.Content, &sg.Output, &sg.Status, &sg.Error,
				&sg.TokensIn, &sg.TokensOut, &sg.CostUSD, &sg.DurationMS, &sg.CreatedAt, &completed)
		})
	var hops []store.Hop
	b.Queue(`SELECT signal_id, seq, neuron_id, layer, cache, tokens_in, tokens_out, cost_usd, duration_ms, error
		FROM signal_hops WHERE signal_id = $1 ORDER BY seq`, id).
		Query(func(rows pgx.Rows) error {
			var err error
			hops, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Hop, error) {
				var h store.Hop
				err := r.Scan(&h.SignalID, &h.Seq, &h.NeuronID, &h.Layer, &h.Cache, &h.TokensIn, &h.TokensOut,
					&h.CostUSD, &h.DurationMS, &h.Error)
				return h, err
			})
			return err
		})
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return store.Signal{}, nil, s.wrap(ctx, "signal "+id, err)
	}
	sg.CreatedAt = sg.CreatedAt.UTC()
	if completed != nil {
		sg.CompletedAt = completed.UTC()
	}
	return sg, hops, nil
}

// FailPendingSignals marks signals pending since before `before` failed.
func (s *Store) FailPendingSignals(ctx context.Context, before time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE signals SET status = 'failed', error = $1, completed_at = now()
		WHERE status = 'pending' AND created_at < $2`, store.InterruptedError, before)
	if err != nil {
		return 0, s.wrap(ctx, "fail pending signals", err)
	}
	return int(tag.RowsAffected()), nil
}

// FailSignals marks the given signals failed if they are still pending.
func (s *Store) FailSignals(ctx context.Context, ids []string) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	tag, err := s.pool.Exec(ctx, `UPDATE signals SET status = 'failed', error = $1, completed_at = now()
		WHERE status = 'pending' AND id = ANY($2)`, store.InterruptedError, ids)
	if err != nil {
		return 0, s.wrap(ctx, "fail signals", err)
	}
	return int(tag.RowsAffected()), nil
}

// SearchMemories runs userID's memories through websearch_to_tsquery (which accepts any
// text: quotes make phrases, "or" alternatives, a leading "-" excludes) and
// ranks matches by ts_rank, best first. A query without words returns nothing.
func (s *Store) SearchMemories(ctx context.Context, userID, query string, limit int) ([]store.Memory, error) {
	q := ftsquery.Clean(query)
	if q == "" || userID == "" {
		return nil, ctx.Err()
	}
	if limit <= 0 {
		limit = DefaultSearchLimit
	}
	limit = min(limit, MaxSearchLimit)
	rows, err := s.pool.Query(ctx, `SELECT m.id, m.user_id, m.neuron_id, m.layer, m.signal_id, m.content, m.created_at,
		ts_rank(m.tsv, q)::float8 AS rank
		FROM memories m, websearch_to_tsquery('english', $1) q
		WHERE m.tsv @@ q AND m.user_id = $3 ORDER BY rank DESC, m.id DESC LIMIT $2`, q, limit, userID)
	if err != nil {
		return nil, s.wrap(ctx, "search memories", err)
	}
	ms, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Memory, error) {
		var m store.Memory
		err := r.Scan(&m.ID, &m.UserID, &m.NeuronID, &m.Layer, &m.SignalID, &m.Content, &m.CreatedAt, &m.Rank)
		m.CreatedAt = m.CreatedAt.UTC()
		return m, err
	})
	return ms, s.wrap(ctx, "search memories", err)
}
