package app

import (
	"context"
	"time"

	"github.com/hal9-lab/hal9-lab/server/llm"
	"github.com/hal9-lab/hal9-lab/server/llm/redisspend"
	"github.com/hal9-lab/hal9-lab/server/store"
)

// openLedger builds the LLM cost ledger: its spend lives in Redis when the
// server has one (every replica reserves from the same buckets, each
// reservation one atomic script), else in the database, counted in memory
// and written in aggregate every llm.SyncEvery and at Close (a crash loses
// at most that interval's spend). Either way a restart keeps the spend.
func (a *Server) openLedger(ctx, bg context.Context, lm *llm.Metrics) (*llm.Ledger, error) {
	cfg := a.cfg
	enforce, _ := cfg.BudgetEnforced()
	opts := llm.LedgerOptions{
		Budgets: llm.Budgets{HourlyUSD: cfg.LLMBudgetHourly, DailyUSD: cfg.LLMBudgetDaily, Enforce: enforce,
			UserShare: cfg.LLMBudgetPerUser, UserCalls: cfg.LLMCallsPerUser},
		Metrics: lm, Logger: a.log,
		Lease: cfg.LLMTimeout + 30*time.Second, // a call in flight holds its user's cap at most this long
	}
	if a.Redis != nil {
		opts.Shared = redisspend.New(a.Redis.Client())
		return llm.NewLedger(opts), nil
	}
	st, err := llm.NewStoredSpend(ctx, spendStore{a.Store}, a.log, time.Now())
	if err != nil {
		return nil, err
	}
	a.spend = st
	opts.Local = st
	a.bg.Add(1)
	go func() { defer a.bg.Done(); st.Run(bg, llm.SyncEvery) }()
	return llm.NewLedger(opts), nil
}

// syncSpend writes what the ledger counted since its last sync (Close).
func (a *Server) syncSpend(ctx context.Context) error {
	if a.spend == nil {
		return nil
	}
	return a.spend.Sync(ctx, time.Now())
}

// spendStore adapts store.Store to llm.SpendStore.
type spendStore struct{ st store.Store }

var _ llm.SpendStore = spendStore{}

func (s spendStore) AddLLMSpend(ctx context.Context, rows []llm.SpendRow) error {
	out := make([]store.LLMSpend, len(rows))
	for i, r := range rows {
		out[i] = store.LLMSpend(r)
	}
	return s.st.AddLLMSpend(ctx, out)
}

func (s spendStore) LLMSpend(ctx context.Context, now time.Time, users bool) ([]llm.SpendRow, error) {
	rows, err := s.st.LLMSpend(ctx, now, users)
	out := make([]llm.SpendRow, len(rows))
	for i, r := range rows {
		out[i] = llm.SpendRow(r)
	}
	return out, err
}

func (s spendStore) DeleteLLMSpend(ctx context.Context, now time.Time) (int, error) {
	return s.st.DeleteLLMSpend(ctx, now)
}
