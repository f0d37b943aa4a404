package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ciplat/ciplat/api"
)

// docker runs the docker CLI and returns its trimmed stdout.
func docker(t *testing.T, stdin []byte, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		return strings.TrimSpace(out.String()), fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

func mustDocker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := docker(t, nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// requireDocker skips the test when no Docker engine answers, except under
// CI=true, where a missing engine is a failure.
func requireDocker(t *testing.T) {
	t.Helper()
	_, err := exec.LookPath("docker")
	if err == nil {
		_, err = docker(t, nil, "version", "--format", "{{.Server.Version}}")
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the Docker engine is required under CI: %v", err)
		}
		t.Skipf("no Docker engine: %v", err)
	}
}

// dockerServer is one server container of the partition test.
type dockerServer struct {
	name, node, ip string
}

// httpAddr is the server's HTTP API as published on the host's loopback
// (it changes when the container is reconnected).
func (d *dockerServer) httpAddr(t *testing.T) string {
	out, err := docker(t, nil, "port", d.name, "4680/tcp")
	if err != nil {
		return ""
	}
	return strings.Split(out, "\n")[0]
}

// get reads a JSON answer from the container's published HTTP API.
func (d *dockerServer) get(t *testing.T, path string, out any) error {
	addr := d.httpAddr(t)
	if addr == "" {
		return fmt.Errorf("%s publishes no HTTP port", d.name)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: HTTP %d", path, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// submit posts a pipeline through the container's published port.
func (d *dockerServer) submit(t *testing.T, name string) error {
	addr := d.httpAddr(t)
	if addr == "" {
		return fmt.Errorf("%s publishes no HTTP port", d.name)
	}
	c, err := api.NewClient(&api.Config{Address: "http://" + addr, HTTPClient: &http.Client{Timeout: 10 * time.Second}})
	if err != nil {
		return err
	}
	_, err = c.SubmitPipeline(context.Background(), pipelineSpec(name), &api.SubmitOptions{IdempotencyKey: name})
	return err
}

// TestCluster_DockerPartition runs three servers in containers (an image
// FROM scratch holding the static binary) on a user-defined network, cuts
// the leader off with `docker network disconnect`, and checks: the
// majority elects a new leader and takes writes, the isolated server
// refuses them (no split brain), and after reconnecting all three hold the
// same pipelines.
func TestCluster_DockerPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("docker partition test")
	}
	requireDocker(t)
	tag := fmt.Sprintf("ciplat-part-%d-%d", os.Getpid(), rand.IntN(1<<20))

	// The image: FROM scratch, the static binary only.
	ctxDir := t.TempDir()
	bin, err := os.ReadFile(binPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "ciplat"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	dockerfile := "FROM scratch\nCOPY ciplat /ciplat\nENTRYPOINT [\"/ciplat\"]\n"
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	image := tag + ":test"
	mustDocker(t, "build", "-q", "-t", image, ctxDir)
	t.Cleanup(func() { _, _ = docker(t, nil, "rmi", "-f", image) })

	// A user-defined network with its own subnet, so a reconnected
	// container gets its address back (Raft peers are addresses).
	var subnet string
	for try := 0; ; try++ {
		subnet = fmt.Sprintf("10.%d.%d", 200+rand.IntN(50), rand.IntN(256))
		if _, err := docker(t, nil, "network", "create", "--subnet", subnet+".0/24", tag); err == nil {
			break
		} else if try == 5 {
			t.Fatal(err)
		}
	}
	var servers []*dockerServer
	t.Cleanup(func() {
		for _, s := range servers {
			if t.Failed() {
				logs, _ := docker(t, nil, "logs", "--tail", "30", s.name)
				t.Logf("%s logs:\n%s", s.name, logs)
			}
			_, _ = docker(t, nil, "rm", "-f", s.name)
		}
		_, _ = docker(t, nil, "network", "rm", tag)
	})
	for i := 1; i <= 3; i++ {
		s := &dockerServer{name: fmt.Sprintf("%s-s%d", tag, i), node: fmt.Sprintf("s%d", i), ip: fmt.Sprintf("%s.%d", subnet, 10+i)}
		servers = append(servers, s)
		mustDocker(t, "run", "-d", "--name", s.name, "--hostname", s.node, "--network", tag, "--ip", s.ip,
			"-p", "127.0.0.1::4680", image,
			"agent", "-server", "-bootstrap-expect", "3", "-node", s.node, "-data-dir", "/data",
			"-bind", "0.0.0.0", "-advertise", s.ip,
			"-retry-join", subnet+".11", "-retry-join", subnet+".12", "-retry-join", subnet+".13", "-retry-interval", "200ms",
			"-raft-heartbeat-timeout", "500ms", "-raft-election-timeout", "500ms", "-log-level", "warn")
	}
	leaderOf := func(from []*dockerServer) *dockerServer {
		for _, s := range from {
			var addr string
			if s.get(t, "/v1/status/leader", &addr) != nil || addr == "" {
				continue
			}
			for _, o := range servers {
				if strings.HasPrefix(addr, o.ip+":") {
					return o
				}
			}
		}
		return nil
	}
	waitUntil := func(what string, d time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(d)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out after %s waiting for %s", d, what)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	var leader *dockerServer
	waitUntil("a leader", 60*time.Second, func() bool { leader = leaderOf(servers); return leader != nil })
	waitUntil("a first write", 30*time.Second, func() bool { return servers[0].submit(t, "before") == nil })

	// Cut the leader off.
	majority := slices.DeleteFunc(slices.Clone(servers), func(s *dockerServer) bool { return s == leader })
	mustDocker(t, "network", "disconnect", tag, leader.name)
	start := time.Now()
	var newLeader *dockerServer
	waitUntil("the majority to elect a new leader", 30*time.Second, func() bool {
		newLeader = leaderOf(majority)
		return newLeader != nil && newLeader != leader
	})
	waitUntil("a write on the majority side", 30*time.Second, func() bool { return majority[0].submit(t, "during") == nil })
	t.Logf("leader %s cut off; %s leads and takes writes after %s", leader.node, newLeader.node, time.Since(start).Round(time.Millisecond))

	// The isolated server refuses writes (through its loopback, from
	// inside its container: it has no network left).
	out, err := docker(t, pipelineSpec("isolated"), "exec", "-i", leader.name, "/ciplat", "pipeline", "run", "-detach",
		"-address", "http://127.0.0.1:4680", "-idempotency-key", "isolated", "-")
	if err == nil || !strings.Contains(err.Error(), "no cluster leader") {
		t.Fatalf("the isolated server accepted a write (split brain?): %s %v", out, err)
	}

	// Heal: every server converges on the same pipelines.
	mustDocker(t, "network", "connect", "--ip", leader.ip, tag, leader.name)
	names := func(s *dockerServer) string {
		var stubs []*api.PipelineStub
		if s.get(t, "/v1/pipelines?stale", &stubs) != nil {
			return ""
		}
		var ns []string
		for _, p := range stubs {
			ns = append(ns, p.Name)
		}
		slices.Sort(ns)
		return strings.Join(ns, ",")
	}
	waitUntil("all three to converge", 60*time.Second, func() bool {
		for _, s := range servers {
			if names(s) != "before,during" {
				return false
			}
		}
		return true
	})
	waitUntil("a write through the healed server", 30*time.Second, func() bool { return leader.submit(t, "after") == nil })
}
