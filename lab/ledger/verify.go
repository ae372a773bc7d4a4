package ledger

import (
	"context"
	"fmt"
	"sort"
)

// Lookup finds acknowledged writes where they must be: the database
// (DB) or the API (API).
type Lookup interface {
	// Find returns, for each entry's id, the owner (username) of every
	// row found with that id: none means lost, two means duplicated.
	Find(ctx context.Context, kind string, entries []Entry) (map[string][]string, error)
	// Describe names the source ("database", "api") and what a match
	// proves ("durability", "visibility").
	Describe() (source, checks string)
}

// sampleSize is how many lost or duplicated entries a verdict names.
const sampleSize = 10

// Verify looks every entry up and counts. An entry acknowledged twice
// (the same kind and id in the ledger twice) counts as duplicated too.
// A row owned by another user than the one acknowledged does not count
// as found.
func Verify(ctx context.Context, entries []Entry, lk Lookup) Verdict {
	v := Verdict{ByKind: map[string]Counts{}}
	v.Source, v.Checks = lk.Describe()
	byKind := map[string][]Entry{}
	seen := map[string]int{}
	for _, e := range entries {
		k := e.Kind + "\x00" + e.ID
		seen[k]++
		c := v.ByKind[e.Kind]
		c.Acknowledged++
		if seen[k] > 1 {
			c.Duplicated++
			v.Duplicated++
			v.DuplicatedSample = sample(v.DuplicatedSample, e.Kind+" "+e.ID+" (acknowledged twice)")
			v.ByKind[e.Kind] = c
			v.Acknowledged++
			v.Found++ // the first acknowledgement's lookup decides lost or found
			c = v.ByKind[e.Kind]
			c.Found++
			v.ByKind[e.Kind] = c
			continue
		}
		v.ByKind[e.Kind] = c
		v.Acknowledged++
		byKind[e.Kind] = append(byKind[e.Kind], e)
	}
	kinds := make([]string, 0, len(byKind))
	for k := range byKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, kind := range kinds {
		es := byKind[kind]
		found, err := lk.Find(ctx, kind, es)
		if err != nil {
			v.Error = fmt.Sprintf("look up %d %s entries: %v", len(es), kind, err)
			return v
		}
		c := v.ByKind[kind]
		for _, e := range es {
			owned := 0
			for _, o := range found[e.ID] {
				if o == e.Owner() {
					owned++
				}
			}
			switch {
			case owned == 0:
				c.Lost++
				v.Lost++
				what := kind + " " + e.ID
				if len(found[e.ID]) > 0 {
					what += fmt.Sprintf(" (found, but owned by %q, not %q)", found[e.ID][0], e.Owner())
				}
				v.LostSample = sample(v.LostSample, what)
			default:
				c.Found++
				v.Found++
				if owned > 1 {
					c.Duplicated++
					v.Duplicated++
					v.DuplicatedSample = sample(v.DuplicatedSample, fmt.Sprintf("%s %s (%d rows)", kind, e.ID, owned))
				}
			}
		}
		v.ByKind[kind] = c
	}
	return v
}

func sample(s []string, x string) []string {
	if len(s) < sampleSize {
		s = append(s, x)
	}
	return s
}
