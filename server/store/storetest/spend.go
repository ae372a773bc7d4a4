package storetest

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/server/store"
)

// testLLMSpend: rows add up per (scope, kind, start) across writes, one
// write holds many rows, expired rows are neither read nor kept.
func testLLMSpend(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	t0 := now().Truncate(time.Hour)
	row := func(scope, kind string, start time.Time, life time.Duration, n int64) store.LLMSpend {
		return store.LLMSpend{Scope: scope, Kind: kind, Start: start, Expires: start.Add(life), NanoUSD: n}
	}
	mustNoErr(t, s.AddLLMSpend(ctx, nil), "AddLLMSpend of nothing")
	mustNoErr(t, s.AddLLMSpend(ctx, []store.LLMSpend{
		row("", "minute", t0, time.Hour, 500),
		row("", "hour", t0, 25*time.Hour, 500),
		row("alice", "minute", t0, time.Hour, 300),
		row("", "minute", t0.Add(-2*time.Hour), time.Hour, 999), // already expired at t0
	}), "AddLLMSpend")
	mustNoErr(t, s.AddLLMSpend(ctx, []store.LLMSpend{
		row("", "minute", t0, time.Hour, -200), // a settlement: the call cost less than reserved
		row("alice", "minute", t0, time.Hour, 7),
		row("alice", "minute", t0.Add(time.Minute), time.Hour, 11),
	}), "AddLLMSpend again")

	everyone, err := s.LLMSpend(ctx, t0, false)
	mustNoErr(t, err, "LLMSpend of everyone")
	for _, r := range everyone {
		if r.Scope != "" {
			t.Fatalf("LLMSpend without users returned %+v", r)
		}
	}
	if len(everyone) != 2 {
		t.Fatalf("LLMSpend without users: %d rows, want 2", len(everyone))
	}
	rows, err := s.LLMSpend(ctx, t0, true)
	mustNoErr(t, err, "LLMSpend")
	got := make([]string, len(rows))
	for i, r := range rows {
		got[i] = r.Scope + "/" + r.Kind + "/" + r.Start.Sub(t0).String() + "=" + strconv.FormatInt(r.NanoUSD, 10)
		if !r.Start.Equal(r.Start.UTC()) || r.Expires.Before(r.Start) {
			t.Errorf("row %+v: times not kept", r)
		}
	}
	slices.Sort(got)
	want := []string{"/hour/0s=500", "/minute/0s=300", "alice/minute/0s=307", "alice/minute/1m0s=11"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("LLMSpend: %v, want %v", got, want)
	}
	n, err := s.DeleteLLMSpend(ctx, t0.Add(61*time.Minute))
	mustNoErr(t, err, "DeleteLLMSpend")
	if n != 4 { // the three minute rows of t0 and t0+1m expire within 61 min, and the one expired before
		t.Fatalf("DeleteLLMSpend removed %d rows, want 4", n)
	}
	rows, err = s.LLMSpend(ctx, t0, true)
	mustNoErr(t, err, "LLMSpend after delete")
	if len(rows) != 1 || rows[0].Kind != "hour" || rows[0].NanoUSD != 500 {
		t.Fatalf("after deleting the expired rows: %+v, want the hour row alone", rows)
	}
}
