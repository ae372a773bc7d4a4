//go:build race

package cache

// raceEnabled: the race detector makes sync.Pool drop items on purpose,
// which starves ristretto's lossy read buffers (frequency sketch).
const raceEnabled = true
