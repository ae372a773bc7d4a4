package infra

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/client"
)

// The container watchdog is Ryuk's job done without Ryuk's image: a copy of
// this very program, started with these variables, that holds the read end
// of a pipe (see startWatchdog). "done" on the pipe means we removed our
// containers ourselves; EOF without it means we died (SIGKILL, a crash, a
// test binary exiting without teardown), and the watchdog removes every
// container and network labelled with the session, through the engine
// API, then exits. Running our own binary (rather than sh, as the process
// watchdog does) gives it the engine client without any docker CLI.
const (
	envContainerReaper    = "HAL9_INFRA_CONTAINER_REAPER"      // the session ID to clean up
	envContainerReaperURL = "HAL9_INFRA_CONTAINER_REAPER_HOST" // the engine to clean it on
)

// containerReaperTimeout bounds the watchdog's cleanup.
const containerReaperTimeout = 60 * time.Second

func init() {
	// A watchdog is this program re-executed: it must do nothing else,
	// so it runs before main (or the test runner) ever starts.
	if id := os.Getenv(envContainerReaper); id != "" {
		os.Exit(runContainerReaper(id, os.Getenv(envContainerReaperURL), os.Stdin, os.Stderr))
	}
}

// startContainerReaper starts the watchdog of session id on the engine at host.
func startContainerReaper(id, host string) (*reaper, error) {
	exe := "/proc/self/exe" // still this program, even if the file was removed since
	if runtime.GOOS != "linux" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("start container watchdog: %w", err)
		}
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), envContainerReaper+"="+id, envContainerReaperURL+"="+host)
	return startWatchdog(cmd)
}

// runContainerReaper is the watchdog's main: it waits for "done" or EOF on
// in and returns its exit code.
func runContainerReaper(id, host string, in io.Reader, errOut io.Writer) int {
	// Ctrl-C and a closing terminal are for the lab, not for us.
	signal.Ignore(syscall.SIGINT, syscall.SIGHUP)
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "done" {
			return 0
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), containerReaperTimeout)
	defer cancel()
	opts := []client.Opt{client.FromEnv}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	cli, err := client.New(opts...)
	if err != nil {
		fmt.Fprintf(errOut, "hal9-lab container watchdog: session %s: %v\n", id, err)
		return 1
	}
	defer cli.Close()
	if err := removeByLabel(ctx, cli, LabelSession+"="+id, nil); err != nil {
		fmt.Fprintf(errOut, "hal9-lab container watchdog: session %s: %v\n", id, err)
		return 1
	}
	return 0
}
