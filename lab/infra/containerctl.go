package infra

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// What a program that runs its own servers in a session needs beyond
// Run and Stop: signals, the exit, the output as it comes, the host pid
// (for /proc numbers), removal of one container.

// Local tells whether the engine runs on this machine: published ports
// are on 127.0.0.1, bind mounts name this machine's paths, and Gateway is
// this machine's address on the session's network.
func (s *ContainerSession) Local() bool { return s.local }

// Signal sends sig ("SIGTERM", "SIGKILL", …) to the container's main
// process.
func (c *Container) Signal(ctx context.Context, sig string) error {
	if _, err := c.sess.cli.ContainerKill(ctx, c.ID, client.ContainerKillOptions{Signal: sig}); err != nil {
		return fmt.Errorf("send %s to container %s: %w", sig, c.Name, err)
	}
	return nil
}

// Wait blocks until the container is not running and returns its exit
// code (as the engine reports it: 137 after SIGKILL).
func (c *Container) Wait(ctx context.Context) (int, error) {
	res := c.sess.cli.ContainerWait(ctx, c.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case r := <-res.Result:
		if r.Error != nil && r.Error.Message != "" {
			return int(r.StatusCode), fmt.Errorf("wait for container %s: %s", c.Name, r.Error.Message)
		}
		return int(r.StatusCode), nil
	case err := <-res.Error:
		return -1, fmt.Errorf("wait for container %s: %w", c.Name, err)
	case <-ctx.Done():
		return -1, ctx.Err()
	}
}

// HostPID is the container's main process as this machine's /proc sees
// it (a local engine), 0 when it is not running.
func (c *Container) HostPID(ctx context.Context) (int, error) {
	ins, err := c.sess.cli.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
	if err != nil {
		return 0, fmt.Errorf("inspect container %s: %w", c.Name, err)
	}
	if ins.Container.State == nil {
		return 0, nil
	}
	return ins.Container.State.Pid, nil
}

// FollowLogs copies the container's output (stdout and stderr, from its
// start) to w as it comes, until the container stops or ctx ends.
func (c *Container) FollowLogs(ctx context.Context, w io.Writer) error {
	rc, err := c.sess.cli.ContainerLogs(ctx, c.ID, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: true})
	if err != nil {
		return fmt.Errorf("logs of container %s: %w", c.Name, err)
	}
	defer rc.Close()
	if _, err := stdcopy.StdCopy(w, w, rc); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("logs of container %s: %w", c.Name, err)
	}
	return nil
}

// Remove removes the container (stopping it first, SIGKILL after 5 s):
// for a session that runs many short-lived containers. Close removes
// what is left.
func (c *Container) Remove(ctx context.Context) error {
	return c.sess.remove(ctx, c)
}

// BuildFromDir is the package's BuildFromDir on the session's engine.
func (s *ContainerSession) BuildFromDir(ctx context.Context, dockerfile, contextDir, tag string, labels map[string]string) error {
	return buildFromDir(ctx, s.cli, dockerfile, contextDir, tag, labels, s.log)
}
