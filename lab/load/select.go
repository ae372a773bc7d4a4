package load

import (
	"errors"
	"fmt"
	"time"
)

// Values computes the summary values (k6's: avg, med, p(95), p(99),
// rate, count, …) of a metric key, with an optional sub-metric selector
// ("http_req_duration{scenario:measure,expected_response:true}"), from the
// raw state the summary carries. A summary holds only the sub-metrics its
// thresholds name; this answers any selector after the run. Counter rates
// are per second of the whole test. ok is false when the metric had no
// samples under the selector.
func (s *Summary) Values(key string) (v map[string]float64, ok bool, err error) {
	if s == nil || s.Hal9Lab == nil || s.Hal9Lab.Raw == nil {
		return nil, false, errors.New("summary has no hal9lab.raw section")
	}
	name, filter, err := parseMetricKey(key)
	if err != nil {
		return nil, false, err
	}
	st := newState()
	if err := st.addRaw(s.Hal9Lab.Raw); err != nil {
		return nil, false, err
	}
	a, m := st.selectAgg(name, filter)
	if m == nil {
		return nil, false, fmt.Errorf("no metric %q in the summary", name)
	}
	if a == nil {
		return map[string]float64{}, false, nil
	}
	dur := time.Duration(s.Hal9Lab.Raw.DurationMs * float64(time.Millisecond))
	return values(m, a, dur), a.count > 0, nil
}
