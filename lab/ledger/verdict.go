package ledger

import (
	"fmt"
	"sort"
	"strings"
)

// Verdict is the acknowledgement-ledger check of one leg run (or one
// `hal9-lab load --ledger` run): every write the server acknowledged,
// looked up where it must be. A lost entry fails the run whatever else
// passed.
type Verdict struct {
	File string `json:"file,omitempty"` // the JSON Lines ledger
	// Source is where the entries were looked up: "database" (the lab's
	// own database, read directly) or "api" (read back through the API as
	// each entry's owner, caches bypassed).
	Source string `json:"source"`
	// Checks says what that proves: "durability" (the rows are in the
	// database) or "visibility" (the server shows them to their owner: a
	// server that keeps writes only in memory passes it).
	Checks       string            `json:"checks"`
	Acknowledged int               `json:"acknowledged"`
	Found        int               `json:"found"`
	Lost         int               `json:"lost"`
	Duplicated   int               `json:"duplicated"`
	ByKind       map[string]Counts `json:"by_kind,omitempty"`
	// LostSample and DuplicatedSample name up to ten entries each
	// ("signal 0192…").
	LostSample       []string `json:"lost_sample,omitempty"`
	DuplicatedSample []string `json:"duplicated_sample,omitempty"`
	// Error is set when the check could not run (then it fails).
	Error string `json:"error,omitempty"`
}

// Counts are one kind's numbers.
type Counts struct {
	Acknowledged int `json:"acknowledged"`
	Found        int `json:"found"`
	Lost         int `json:"lost"`
	Duplicated   int `json:"duplicated"`
}

// OK: the check ran and nothing acknowledged was lost. Duplicates are
// reported but do not fail it (the rule: a loss fails).
func (v *Verdict) OK() bool { return v == nil || (v.Error == "" && v.Lost == 0) }

// Line is the one-line summary every format prints.
func (v *Verdict) Line() string {
	if v == nil {
		return ""
	}
	if v.Error != "" {
		return "ledger check failed to run: " + v.Error
	}
	var kinds []string
	for k := range v.ByKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var parts []string
	for _, k := range kinds {
		c := v.ByKind[k]
		parts = append(parts, fmt.Sprintf("%s %d/%d", k, c.Found, c.Acknowledged))
	}
	verdict := "nothing lost"
	if v.Lost > 0 {
		verdict = fmt.Sprintf("%d LOST", v.Lost)
	}
	return fmt.Sprintf("%s: %d acknowledged, %d found, %d lost, %d duplicated (%s; checked in the %s: %s)",
		verdict, v.Acknowledged, v.Found, v.Lost, v.Duplicated, strings.Join(parts, ", "), v.Source, v.Checks)
}
