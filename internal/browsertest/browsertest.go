// Package browsertest opens the lab's self-contained HTML pages (report.html,
// trend.html) in headless Chromium for tests: Debian's chromium package, no
// driver, no network. Without a browser a test is skipped with the reason;
// with HAL9_REQUIRE_INFRA=1 (CI) it fails instead.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Chromium returns the path of a headless-capable browser.
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
	t.Skip("chromium not found: install Debian's chromium package to check the lab's HTML pages in a real browser")
	return ""
}

// Args are the flags of a headless, offline, throw-away browser profile,
// then extra.
func Args(t testing.TB, extra ...string) []string {
	return append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--user-data-dir=" + t.TempDir()}, extra...)
}

// DumpDOM loads the file at path (file://) in bin, lets its scripts run
// for up to 5 s of virtual time and returns the DOM they left.
func DumpDOM(t testing.TB, bin, path string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, Args(t, "--virtual-time-budget=5000", "--window-size=1500,1000", "--dump-dom", "file://"+path)...).Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom %s: %v", path, err)
	}
	return string(out)
}

// Screenshot saves a picture of the page at path into png.
func Screenshot(t testing.TB, bin, path, png string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, bin, Args(t, "--virtual-time-budget=5000", "--hide-scrollbars",
		"--window-size=1500,2600", "--screenshot="+png, "file://"+path)...).CombinedOutput(); err != nil {
		t.Errorf("screenshot: %v\n%s", err, out)
	}
}

// Rendered reads the pages' <body data-rendered="N charts"> marker: the
// number of charts the script drew, and whether it finished at all.
func Rendered(dom string) (int, bool) {
	m := regexp.MustCompile(`<body[^>]*data-rendered="(\d+) charts"`).FindStringSubmatch(dom)
	if m == nil {
		return 0, false
	}
	n, _ := strconv.Atoi(m[1])
	return n, true
}

// Errors returns the script errors the page caught: the text of its
// #errors element, and whether <body data-errors> is still "0".
func Errors(dom string) (string, bool) {
	box := "(no #errors element)"
	if m := regexp.MustCompile(`id="errors"[^>]*>([^<]*)<`).FindStringSubmatch(dom); m != nil {
		box = strings.TrimSpace(m[1])
	}
	return box, strings.Contains(dom, `data-errors="0"`)
}

// Head is the first n bytes of s, for failure messages.
func Head(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
