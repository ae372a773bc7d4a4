package lab

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/faults"
	"github.com/hal9-lab/hal9-lab/lab/ledger"
	"github.com/hal9-lab/hal9-lab/lab/report"
	"github.com/hal9-lab/hal9-lab/lab/serve"
)

// portTaken plays the timeline's `server port-taken` faults before the
// first server starts: with its API port held by another listener, the
// server must exit at once with an error naming the address, and leave
// the leg's fresh database untouched (it binds before it opens the store).
func (fx *legFaults) portTaken(ctx context.Context) {
	l := fx.l
	for _, sp := range l.s.plans {
		for _, f := range sp.faults {
			if f.Target == faults.Server && f.Kind == "port-taken" {
				l.out.Faults = append(l.out.Faults, fx.playPortTaken(ctx, f))
			}
		}
	}
}

func (fx *legFaults) playPortTaken(ctx context.Context, spec faults.Spec) report.FaultResult {
	l := fx.l
	res := report.FaultResult{Name: spec.Name(), Target: spec.Target, Kind: spec.Kind, CacheHitBefore: -1, CacheHitDuring: -1}
	ln, err := listenFree()
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer ln.Close()
	addr := ln.Addr().String()
	opts := serve.Options{Bin: l.spec.bin, DatabaseURL: fx.dbURL, RedisURL: fx.redis, DataDir: l.dataDir, Addr: addr, Shutdown: l.s.opts.Drain,
		LogPath: l.logPath("port-taken")}
	start := time.Now()
	res.Start = start.UnixMilli()
	srv, err := serve.Start(ctx, opts)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	code, exited := srv.WaitExit(15 * time.Second)
	if !exited {
		srv.Kill()
		<-srv.Done()
	}
	took := time.Since(start)
	res.Healed = time.Now().UnixMilli()
	logText, _ := os.ReadFile(opts.LogPath)
	res.Checks = append(res.Checks,
		report.FaultCheck{Name: "exited at once with an error", OK: code != 0 && code != -1 && took < 10*time.Second, Detail: fmt.Sprintf("exit code %d after %s", code, took.Round(time.Millisecond))},
		report.FaultCheck{Name: "the message names the taken address", OK: strings.Contains(string(logText), addr), Detail: strings.TrimSpace(lastLine(string(logText)))})
	untouched, detail := databaseUntouched(ctx, l.db.DatabaseURL)
	res.Checks = append(res.Checks, report.FaultCheck{Name: "the database was not touched (bind before the store)", OK: untouched, Detail: detail})
	l.s.prog.step("fault %s: exit %d in %s", spec.Name(), code, took.Round(time.Millisecond))
	return res
}

// databaseUntouched: the leg's fresh database at u has no schema yet.
func databaseUntouched(ctx context.Context, u string) (bool, string) {
	if strings.HasPrefix(u, "sqlite://") {
		path := strings.TrimPrefix(u, "sqlite://")
		if _, err := os.Stat(path); err == nil {
			return false, path + " exists: the store was opened before the bind"
		}
		return true, path + " was not created"
	}
	d, err := ledger.OpenDB(ctx, u)
	if err != nil {
		return false, err.Error()
	}
	defer d.Close()
	has, err := d.HasSchema(ctx)
	if err != nil {
		return false, err.Error()
	}
	if has {
		return false, "schema_migrations exists: the store was migrated before the bind"
	}
	return true, "no schema_migrations table: nothing was migrated"
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}

func listenFree() (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("take a port for the port-taken fault: %w", err)
	}
	return ln, nil
}
