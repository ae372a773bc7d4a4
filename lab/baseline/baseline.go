// Package baseline stores the per-run values of lab metrics as committed
// baseline files and compares new runs against them: a Mann-Whitney U test
// (as benchstat does) AND a minimum effect size per metric, so noise alone
// never fails the gate and a statistically "significant" 1 % wobble does
// not either.
package baseline

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

// FormatVersion is written into every file; Load rejects other versions.
// 2: keys carry the operation (Key.Op), per-operation series beside the
// aggregate ones.
const FormatVersion = 2

// File is reports/baselines/<profile>.json.
type File struct {
	Version   int       `json:"version"`
	Profile   string    `json:"profile"`
	CreatedAt time.Time `json:"created_at"`
	Commit    string    `json:"commit,omitempty"`
	Runs      int       `json:"runs"`
	Machine   Machine   `json:"machine"`
	Series    []Series  `json:"series"`
}

// Machine describes where a baseline was measured; numbers from another
// machine are not comparable, and the comparison says so.
type Machine struct {
	CPUModel  string `json:"cpu_model"`
	Cores     int    `json:"cores"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	// Kernel is the release (uname -r); empty off Linux and in files
	// written before it was recorded.
	Kernel string `json:"kernel,omitempty"`
}

// Key names one metric of one scenario of one leg; Op is "" for the
// scenario's aggregate, else the operation the series is about ("signal",
// or "signal:L3" for one layer of it).
type Key struct {
	Leg      string `json:"leg"`
	Scenario string `json:"scenario"`
	Op       string `json:"op,omitempty"`
	Metric   string `json:"metric"`
}

// String is leg/scenario/metric, or leg/scenario/op/metric for an
// operation's series (lab/history's Key.String is the same).
func (k Key) String() string { return k.Leg + "/" + k.Scenario + "/" + k.Name() }

// Name is the metric for an aggregate series and op/metric for an
// operation's: the last part of String, and what --min-effect patterns
// match (Rules.ForKey).
func (k Key) Name() string {
	if k.Op == "" {
		return k.Metric
	}
	return k.Op + "/" + k.Metric
}

// Series holds the per-run values of one metric (one value per run).
type Series struct {
	Key
	Unit   string    `json:"unit,omitempty"`
	Values []float64 `json:"values"`
}

// Samples maps each metric to its per-run values: what a set of runs
// produces and what a File stores.
type Samples map[Key][]float64

// Add appends one run's value.
func (s Samples) Add(k Key, v float64) { s[k] = append(s[k], v) }

// Keys returns the keys sorted by leg, scenario, metric.
func (s Samples) Keys() []Key {
	keys := make([]Key, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sortKeys(keys)
	return keys
}

func sortKeys(keys []Key) {
	sort.Slice(keys, func(i, j int) bool { return keyLess(keys[i], keys[j]) })
}

func keyLess(a, b Key) bool {
	if a.Leg != b.Leg {
		return a.Leg < b.Leg
	}
	if a.Scenario != b.Scenario {
		return a.Scenario < b.Scenario
	}
	if a.Op != b.Op {
		return a.Op < b.Op
	}
	return a.Metric < b.Metric
}

// Samples returns the file's series as Samples.
func (f *File) Samples() Samples {
	s := Samples{}
	for _, ser := range f.Series {
		s[ser.Key] = append([]float64(nil), ser.Values...)
	}
	return s
}

// New builds a File from samples measured on this machine.
func New(profile, commit string, runs int, s Samples, units func(metric string) string) *File {
	f := &File{Version: FormatVersion, Profile: profile, CreatedAt: time.Now().UTC().Truncate(time.Second),
		Commit: commit, Runs: runs, Machine: DescribeMachine()}
	for _, k := range s.Keys() {
		ser := Series{Key: k, Values: s[k]}
		if units != nil {
			ser.Unit = units(k.Metric)
		}
		f.Series = append(f.Series, ser)
	}
	return f
}

// Path is the baseline file of a profile under dir (reports/baselines).
func Path(dir, profile string) string { return filepath.Join(dir, profile+".json") }

// ErrNoBaseline is returned by Load when the file does not exist.
var ErrNoBaseline = errors.New("no baseline")

// Load reads and validates a baseline file.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w at %s: write one with `hal9-lab baseline update --profile P --runs N`", ErrNoBaseline, path)
	}
	if err != nil {
		return nil, fmt.Errorf("read baseline: %w", err)
	}
	// The version first: an old file's fields may not decode into File.
	var head struct {
		Version int    `json:"version"`
		Profile string `json:"profile"`
		Runs    int    `json:"runs"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("parse baseline %s: %w", path, err)
	}
	if head.Version != FormatVersion {
		return nil, fmt.Errorf("baseline %s has format version %d, this lab reads %d (per-operation series since 2): regenerate it on this machine with `%s`",
			path, head.Version, FormatVersion, RegenerateCommand(path, head.Profile, head.Runs))
	}
	var f File
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("parse baseline %s: %w", path, err)
	}
	for _, s := range f.Series {
		if s.Leg == "" || s.Scenario == "" || s.Metric == "" {
			return nil, fmt.Errorf("baseline %s: a series lacks leg, scenario or metric (%+v)", path, s.Key)
		}
	}
	return &f, nil
}

// RegenerateCommand is the command that writes the baseline at path again
// (profile and runs as the old file had them; at least MinRuns).
func RegenerateCommand(path, profile string, runs int) string {
	if profile == "" {
		profile = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	runs = max(runs, MinRuns(Alpha))
	return fmt.Sprintf("hal9-lab baseline update --profile %s --runs %d --file %s", profile, runs, path)
}

// Save writes the file (indented, stable order) atomically.
func (f *File) Save(path string) error {
	sortSeries(f.Series)
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("encode baseline: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create baseline dir: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write baseline: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write baseline %s: %w", path, err)
	}
	return nil
}

func sortSeries(s []Series) {
	sort.Slice(s, func(i, j int) bool { return keyLess(s[i].Key, s[j].Key) })
}

// DescribeMachine reads the CPU model from /proc/cpuinfo and the kernel
// release from /proc/sys/kernel/osrelease (both empty elsewhere).
func DescribeMachine() Machine {
	return Machine{CPUModel: cpuModel("/proc/cpuinfo"), Cores: runtime.NumCPU(),
		GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH, Kernel: kernelRelease("/proc/sys/kernel/osrelease")}
}

func kernelRelease(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func cpuModel(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// SameMachine tells whether two descriptions are comparable, and why not:
// CPU model, cores, Go version and kernel (when both know theirs).
func SameMachine(a, b Machine) (bool, string) {
	var diffs []string
	if a.CPUModel != b.CPUModel {
		diffs = append(diffs, fmt.Sprintf("CPU %q vs %q", a.CPUModel, b.CPUModel))
	}
	if a.Cores != b.Cores {
		diffs = append(diffs, fmt.Sprintf("%d vs %d cores", a.Cores, b.Cores))
	}
	if a.GoVersion != b.GoVersion {
		diffs = append(diffs, fmt.Sprintf("%s vs %s", a.GoVersion, b.GoVersion))
	}
	if a.Kernel != "" && b.Kernel != "" && a.Kernel != b.Kernel {
		diffs = append(diffs, fmt.Sprintf("kernel %s vs %s", a.Kernel, b.Kernel))
	}
	if len(diffs) == 0 {
		return true, ""
	}
	return false, strings.Join(diffs, ", ")
}
