// Package browsertest opens the lab's self-contained pages (report.html,
// trend.html, flame graphs) in a real headless Chromium, so tests check
// what a person would see: that the page's script ran and drew its content.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"
)

// Chromium finds Debian's headless-capable browser; the test skips without
// one unless HAL9_REQUIRE_INFRA=1 (CI installs it).
func Chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("HAL9_REQUIRE_INFRA") == "1" {
		t.Fatal("chromium not found and HAL9_REQUIRE_INFRA=1: install Debian's chromium package")
	}
	t.Skip("chromium not found: install Debian's chromium package to check the lab's pages in a real browser")
	return ""
}

// Args are the flags every headless run gets: no sandbox (tests run as
// root in CI), no GPU, and none of the background networking a closed
// network refuses; a fresh profile directory per test.
func Args(t testing.TB, extra ...string) []string {
	return append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--user-data-dir=" + t.TempDir()}, extra...)
}

// DumpDOM loads url (file://...) and returns the DOM after its scripts ran
// (up to 5 s of virtual time).
func DumpDOM(t testing.TB, url string) string {
	t.Helper()
	bin := Chromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, Args(t, "--virtual-time-budget=5000", "--window-size=1500,1000", "--dump-dom", url)...).Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom %s: %v", url, err)
	}
	return string(out)
}

// Screenshot writes a PNG of url to path (for a person to look at).
func Screenshot(t testing.TB, url, path, size string) {
	t.Helper()
	bin := Chromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, bin, Args(t, "--virtual-time-budget=5000", "--hide-scrollbars",
		"--window-size="+size, "--screenshot="+path, url)...).CombinedOutput(); err != nil {
		t.Errorf("screenshot of %s: %v\n%s", url, err, out)
	}
}
