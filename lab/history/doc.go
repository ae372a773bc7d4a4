// Package history keeps the lab's numbers night after night in a database
// and finds where they changed.
//
// The store (Open) is an SQLite file (sqlite://PATH, reports/history.db by
// default) or a PostgreSQL database (postgres://…) for a team, with one
// schema and its migrations for both. A Run is one lab run, gate or
// baseline update (FromSummary) or one night of an imported CSV (ReadCSV):
// when, at which commit, on which machine, and its values, one per leg ×
// scenario × op × metric and repetition. Values are absolute, or, for a gate
// that ran --against REF, also the candidate's ratio to the reference run
// interleaved with it, which does not depend on the machine.
//
// Check builds one series per metric (BuildSeries: absolute values per
// machine, ratios per reference; a night judged by its ratio is left out of
// its absolute series) and looks for change points with E-divisive means
// (Matteson & James 2014, EDivisive) and a permutation test seeded from the
// data. Trend renders trend.html with report.html's chart code.
package history
