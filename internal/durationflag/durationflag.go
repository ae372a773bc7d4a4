// Package durationflag is the one time.Duration flag of hal9 and hal9-lab:
// its errors say how to write a duration, where the standard library's
// flag.Duration reports a bare "60" only as "parse error". Both commands
// may import it; it imports neither.
package durationflag

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Hint ends every usage line of a duration flag.
const Hint = "(a duration with a unit: 500ms, 30s, 5m, 1h)"

// Value is a time.Duration flag.Value (and flag.Getter) that refuses a
// number without a unit and a negative duration, saying how to write one.
type Value time.Duration

// Var defines a duration flag name on fs, stored in p, with default def.
func Var(fs *flag.FlagSet, p *time.Duration, name string, def time.Duration, usage string) {
	*p = def
	fs.Var((*Value)(p), name, usage+" "+Hint)
}

// Set parses s.
func (d *Value) Set(s string) error {
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		if _, nerr := strconv.ParseFloat(strings.TrimSpace(s), 64); nerr == nil {
			return fmt.Errorf("%q has no unit: use a duration with a unit, e.g. 60s (or 500ms, 5m, 1h)", s)
		}
		return fmt.Errorf("%q is not a duration: use a duration with a unit, e.g. 60s (or 500ms, 5m, 1h)", s)
	}
	if v < 0 {
		return fmt.Errorf("%q must not be negative: use a duration with a unit, e.g. 60s", s)
	}
	*d = Value(v)
	return nil
}

func (d *Value) String() string { return time.Duration(*d).String() }

// Get makes it a flag.Getter: hal9 config prints durations as strings.
func (d *Value) Get() any { return time.Duration(*d) }
