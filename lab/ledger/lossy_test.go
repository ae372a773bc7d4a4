package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// A server that answers before its store write (the test-only lossytest
// build: it writes a second later), killed with SIGKILL right after its
// answers, loses acknowledged signals: the ledger check must say so. This
// is the check shown failing when it should; the lab's end-to-end run
// shows it passing against the real server.
func TestLedgerCatchesLossyServer(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds and runs a server")
	}
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	dir := t.TempDir()
	bin := filepath.Join(dir, "hal9-lossy")
	build := exec.Command("go", "build", "-tags", "lossytest", "-o", bin, "./cmd/hal9")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -tags lossytest: %v\n%s", err, out)
	}
	free := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	api, admin, db := free(), free(), filepath.Join(dir, "hal9.db")
	var log bytes.Buffer
	srv := exec.Command(bin, "serve", "--addr", api, "--admin-addr", admin, "--database-url", "sqlite://"+db,
		"--llm-latency-scale", "0", "--bcrypt-cost", "4", "--rate-limit", "0", "--log-level", "warn")
	srv.Stdout, srv.Stderr = &log, &log
	srv.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Process.Kill()
	base := "http://" + api
	post := func(path, tok string, body any) (int, map[string]any) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPost, base+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil
		}
		defer res.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(res.Body).Decode(&m)
		return res.StatusCode, m
	}
	for i := 0; ; i++ {
		if res, err := http.Get("http://" + admin + "/readyz"); err == nil && res.StatusCode == 200 {
			res.Body.Close()
			break
		}
		if i > 200 {
			t.Fatalf("the lossy server did not get ready:\n%s", log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var acks Memory
	if code, m := post("/api/v1/auth/register", "", map[string]string{"username": "lossy", "email": "l@x.invalid", "password": "password-123"}); code == 201 {
		u := m["user"].(map[string]any)
		acks.Record(Entry{Kind: KindUser, ID: u["id"].(string), Username: "lossy"})
	}
	_, m := post("/api/v1/auth/login", "", map[string]string{"username": "lossy", "password": "password-123"})
	tok, _ := m["access_token"].(string)
	if tok == "" {
		t.Fatalf("login failed:\n%s", log.String())
	}
	for i := 0; i < 20; i++ {
		if code, m := post("/api/v1/signals", tok, map[string]string{"content": fmt.Sprintf("lossy %d", i), "layer": "L1"}); code == 200 {
			acks.Record(Entry{Kind: KindSignal, ID: m["signal_id"].(string), User: "lossy", Status: 200})
		}
	}
	// SIGKILL at once: the writes promised for a second from now never happen.
	if err := srv.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = srv.Wait()
	if len(acks.Entries) < 10 {
		t.Fatalf("only %d acknowledged writes:\n%s", len(acks.Entries), log.String())
	}
	v := VerifyDB(context.Background(), "sqlite://"+db, acks.Entries)
	t.Logf("lossy server: %s", v.Line())
	if v.OK() || v.Lost == 0 || v.ByKind[KindSignal].Lost == 0 || v.ByKind[KindUser].Lost != 0 {
		t.Fatalf("the ledger check missed the loss: %+v", v)
	}
	if _, err := os.Stat(db); err != nil {
		t.Fatal(err)
	}
}
