package docker_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/volume"

	"github.com/ciplat/ciplat/drivers"
	"github.com/ciplat/ciplat/drivers/docker"
	"github.com/ciplat/ciplat/drivers/drivertest"
)

func TestDriver_Conformance(t *testing.T) {
	needEngine(t)
	drivertest.Run(t, func(t *testing.T) drivers.Driver {
		// Every driver talks to the same engine: a second call in one
		// subtest is a restarted agent.
		return newDriver(t, docker.Config{KillGrace: 500 * time.Millisecond})
	}, drivertest.Options{Image: testImage})
}

// randID returns a worker ID unique across test runs.
func randID(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// create creates a worker from cfg, destroyed at cleanup.
func create(t *testing.T, d *docker.Driver, cfg drivers.WorkerConfig) *drivers.WorkerHandle {
	t.Helper()
	h, err := d.CreateWorker(t.Context(), cfg)
	if err != nil {
		t.Fatalf("CreateWorker(%s): %v", cfg.ID, err)
	}
	t.Cleanup(func() { d.DestroyWorker(context.Background(), h) })
	return h
}

func TestDriver_CreateWorker_missingImage(t *testing.T) {
	needEngine(t)
	d := newDriver(t, docker.Config{})
	// .invalid never resolves (RFC 2606): no registry can answer.
	const img = "registry.ciplat.invalid/nothing:here"
	start := time.Now()
	_, err := d.CreateWorker(t.Context(), drivers.WorkerConfig{ID: randID("missing"), Image: img})
	took := time.Since(start)
	want := `image "` + img + `" not found locally and no registry reachable`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("CreateWorker with a missing image: %v; want an error containing %q", err, want)
	}
	if took > 35*time.Second {
		t.Errorf("CreateWorker took %v to fail; want it bounded by the pull stall timeout", took)
	}
	t.Logf("failed after %v: %v", took, err)

	_, err = d.CreateWorker(t.Context(), drivers.WorkerConfig{ID: randID("noimage")})
	if err == nil || !strings.Contains(err.Error(), "image:") {
		t.Errorf("CreateWorker without an image: %v; want an error saying to set image:", err)
	}
}

func TestDriver_CreateWorker_labelsAndLimits(t *testing.T) {
	needEngine(t)
	d := newDriver(t, docker.Config{})
	cfg := drivers.WorkerConfig{
		ID: randID("limits"), JobID: "job-1", JobName: "build", PipelineID: "pipe-1", NodeID: "node-1",
		Image: testImage, CPU: 250, MemoryMB: 64,
		Env:    map[string]string{"FROM_WORKER": "yes"},
		Labels: map[string]string{"team": "platform", "ciplat.managed": "overridden?"},
	}
	h := create(t, d, cfg)
	if h.State["container"] != "ciplat-"+cfg.ID || h.State["volume"] != "ciplat-"+cfg.ID+"-ws" {
		t.Errorf("handle state = %v", h.State)
	}
	cli := rawClient()
	defer cli.Close()
	info, err := cli.ContainerInspect(t.Context(), "ciplat-"+cfg.ID)
	if err != nil {
		t.Fatalf("inspect container: %v", err)
	}
	wantLabels := map[string]string{
		"ciplat.managed": "true", "ciplat.alloc_id": cfg.ID, "ciplat.job_id": "job-1",
		"ciplat.node_id": "node-1", "ciplat.pipeline_id": "pipe-1", "team": "platform",
	}
	for k, v := range wantLabels {
		if got := info.Config.Labels[k]; got != v {
			t.Errorf("container label %s = %q, want %q", k, got, v)
		}
	}
	if q, p := info.HostConfig.CPUQuota, info.HostConfig.CPUPeriod; q != 250_000 || p != 1_000_000 {
		t.Errorf("CPUQuota/CPUPeriod = %d/%d µs, want 250000/1000000 (250 millicores)", q, p)
	}
	if got := info.HostConfig.Memory; got != 64<<20 {
		t.Errorf("Memory = %d, want %d (64 MiB)", got, 64<<20)
	}
	if !info.State.Running {
		t.Errorf("container state %s, want running", info.State.Status)
	}
	if !slices.Contains(info.Config.Env, "FROM_WORKER=yes") || !slices.Contains(info.Config.Env, "CIPLAT_WORKSPACE=/workspace") {
		t.Errorf("container env %q lacks the worker's env or CIPLAT_WORKSPACE", info.Config.Env)
	}
	var ws bool
	for _, m := range info.Mounts {
		if m.Destination == "/workspace" && m.Name == "ciplat-"+cfg.ID+"-ws" && m.RW {
			ws = true
		}
	}
	if !ws {
		t.Errorf("mounts %+v: want volume ciplat-%s-ws read-write at /workspace", info.Mounts, cfg.ID)
	}
	v, err := cli.VolumeInspect(t.Context(), "ciplat-"+cfg.ID+"-ws")
	if err != nil {
		t.Fatalf("inspect volume: %v", err)
	}
	if v.Labels["ciplat.managed"] != "true" || v.Labels["ciplat.alloc_id"] != cfg.ID {
		t.Errorf("volume labels = %v", v.Labels)
	}

	// The limits hold inside: the cgroup says 64 MiB.
	rec := drivertest.NewRecorder()
	res, err := d.RunStep(t.Context(), h, drivers.StepConfig{Name: "cgroup",
		Run: "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes"}, rec)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("cgroup step: exit %d, err %v; output:%s", res.ExitCode, err, rec)
	}
	if got := rec.Texts(drivers.Stdout); len(got) != 1 || got[0] != "67108864" {
		t.Errorf("memory limit seen inside = %q, want 67108864", got)
	}

	if _, err := d.CreateWorker(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second CreateWorker with the same ID: %v; want 'already exists'", err)
	}
	for _, id := range []string{"", "-x", "a/b", "a b", strings.Repeat("a", 129)} {
		if _, err := d.CreateWorker(t.Context(), drivers.WorkerConfig{ID: id, Image: testImage}); err == nil {
			t.Errorf("CreateWorker(ID %q) succeeded", id)
		}
	}
}

func TestDriver_DestroyWorker_leavesNothing(t *testing.T) {
	needEngine(t)
	d := newDriver(t, docker.Config{})
	h := create(t, d, drivers.WorkerConfig{ID: randID("destroy"), Image: testImage})
	rec := drivertest.NewRecorder()
	if res, err := d.RunStep(t.Context(), h, drivers.StepConfig{Name: "fill", Run: "echo data > file; mkdir -p a/b"}, rec); err != nil || res.ExitCode != 0 {
		t.Fatalf("exit %d, err %v; output:%s", res.ExitCode, err, rec)
	}
	if err := d.DestroyWorker(t.Context(), h); err != nil {
		t.Fatalf("DestroyWorker: %v", err)
	}
	cli := rawClient()
	defer cli.Close()
	// At once: the worker's name is free and no step can run in it.
	if _, err := cli.ContainerInspect(t.Context(), "ciplat-"+h.ID); !cerrdefs.IsNotFound(err) {
		t.Errorf("container after DestroyWorker: err %v, want not found", err)
	}
	if _, err := d.RunStep(t.Context(), h, drivers.StepConfig{Name: "late", Run: "true"}, nil); !errors.Is(err, drivers.ErrWorkerNotFound) {
		t.Errorf("RunStep after DestroyWorker: %v, want ErrWorkerNotFound", err)
	}
	if err := d.DestroyWorker(t.Context(), h); err != nil {
		t.Errorf("second DestroyWorker: %v", err)
	}
	// Once the background removal is over (Close waits for it), nothing is left.
	d.Close()
	for _, name := range []string{"ciplat-" + h.ID, "ciplat-" + h.ID + "-removing"} {
		if _, err := cli.ContainerInspect(t.Context(), name); !cerrdefs.IsNotFound(err) {
			t.Errorf("container %s after DestroyWorker and Close: err %v, want not found", name, err)
		}
	}
	if _, err := cli.VolumeInspect(t.Context(), "ciplat-"+h.ID+"-ws"); !cerrdefs.IsNotFound(err) {
		t.Errorf("volume after DestroyWorker and Close: err %v, want not found", err)
	}
}

// TestDriver_DestroyWorker_retiredOrphan: an agent that died after
// retiring a worker (renamed, not yet removed) leaves it to the next one,
// whose ListWorkers finds it by label and whose DestroyWorker removes it.
func TestDriver_DestroyWorker_retiredOrphan(t *testing.T) {
	needEngine(t)
	node := randID("node")
	d := newDriver(t, docker.Config{NodeID: node})
	h := create(t, d, drivers.WorkerConfig{ID: randID("retired"), NodeID: node, Image: testImage})
	cli := rawClient()
	defer cli.Close()
	// What DestroyWorker does before its background removal: the agent "dies" here.
	if err := cli.ContainerRename(t.Context(), "ciplat-"+h.ID, "ciplat-"+h.ID+"-removing"); err != nil {
		t.Fatal(err)
	}
	restarted := newDriver(t, docker.Config{NodeID: node})
	hs, err := restarted.ListWorkers(t.Context())
	if err != nil || len(hs) != 1 || hs[0].ID != h.ID {
		t.Fatalf("ListWorkers = %v, %v; want the retired worker %s", hs, err, h.ID)
	}
	if err := restarted.DestroyWorker(t.Context(), hs[0]); err != nil {
		t.Fatalf("DestroyWorker: %v", err)
	}
	restarted.Close()
	if _, err := cli.ContainerInspect(t.Context(), "ciplat-"+h.ID+"-removing"); !cerrdefs.IsNotFound(err) {
		t.Errorf("retired container after the restarted agent's DestroyWorker: err %v, want not found", err)
	}
	if hs, err := newDriver(t, docker.Config{NodeID: node}).ListWorkers(t.Context()); err != nil || len(hs) != 0 {
		t.Errorf("ListWorkers after DestroyWorker = %v, %v; want none", hs, err)
	}
}

// TestDriver_ListWorkers_orphans: a restarted agent finds by label the
// containers of its node, and a volume whose container is gone (a create
// or destroy cut short), and destroying them leaves nothing.
func TestDriver_ListWorkers_orphans(t *testing.T) {
	needEngine(t)
	node := randID("node")
	before := newDriver(t, docker.Config{NodeID: node})
	a := create(t, before, drivers.WorkerConfig{ID: randID("orphan"), NodeID: node, Image: testImage})
	// As the agent does: the driver knows its node by name (Config.NodeID)
	// while the client passes its node UUID; the worker is still this node's.
	b := create(t, before, drivers.WorkerConfig{ID: randID("orphan"), NodeID: randID("uuid"), Image: testImage})
	elsewhere := newDriver(t, docker.Config{NodeID: randID("node")})
	other := create(t, elsewhere, drivers.WorkerConfig{ID: randID("other"), NodeID: node, Image: testImage})

	cli := rawClient()
	defer cli.Close()
	volOnly := randID("volonly")
	_, err := cli.VolumeCreate(t.Context(), volume.CreateOptions{
		Name:   "ciplat-" + volOnly + "-ws",
		Labels: map[string]string{"ciplat.managed": "true", "ciplat.alloc_id": volOnly, "ciplat.node_id": node},
	})
	if err != nil {
		t.Fatalf("create orphan volume: %v", err)
	}
	t.Cleanup(func() { cli.VolumeRemove(context.Background(), "ciplat-"+volOnly+"-ws", true) })

	after := newDriver(t, docker.Config{NodeID: node}) // the restarted agent
	hs, err := after.ListWorkers(t.Context())
	if err != nil {
		t.Fatalf("ListWorkers: %v", err)
	}
	var ids []string
	for _, h := range hs {
		ids = append(ids, h.ID)
		if h.Driver != "docker" {
			t.Errorf("handle %s: Driver %q", h.ID, h.Driver)
		}
	}
	want := []string{a.ID, b.ID, volOnly}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("ListWorkers = %v, want %v (not %s, another node's)", ids, want, other.ID)
	}
	for _, h := range hs {
		if err := after.DestroyWorker(t.Context(), h); err != nil {
			t.Errorf("DestroyWorker(%s): %v", h.ID, err)
		}
	}
	if hs, _ := after.ListWorkers(t.Context()); len(hs) != 0 {
		t.Errorf("%d workers left after destroying the orphans", len(hs))
	}
	if err := after.RecoverWorker(t.Context(), other); err != nil {
		t.Errorf("the other node's worker was touched: %v", err)
	}
	after.Close() // waits for the background removals
	f := filters.NewArgs(filters.Arg("label", "ciplat.node_id="+node))
	if vs, _ := cli.VolumeList(t.Context(), volume.ListOptions{Filters: f}); len(vs.Volumes) != 0 {
		t.Errorf("%d volumes of node %s left", len(vs.Volumes), node)
	}
}

// TestDriver_RunStep_killsLeftovers: what a step leaves running in the
// background is gone when the next step starts, and did not hold the step.
func TestDriver_RunStep_killsLeftovers(t *testing.T) {
	needEngine(t)
	d := newDriver(t, docker.Config{})
	h := create(t, d, drivers.WorkerConfig{ID: randID("leftover"), Image: testImage})
	start := time.Now()
	rec := drivertest.NewRecorder()
	res, err := d.RunStep(t.Context(), h, drivers.StepConfig{Name: "bg", Run: "sleep 297 &\necho started"}, rec)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("exit %d, err %v; output:%s", res.ExitCode, err, rec)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("a step with a background child took %v", took)
	}
	rec = drivertest.NewRecorder()
	res, err = d.RunStep(t.Context(), h, drivers.StepConfig{Name: "ps",
		Run: `for p in /proc/[0-9]*; do tr '\0' ' ' < $p/cmdline 2>/dev/null; echo; done`}, rec)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("exit %d, err %v; output:%s", res.ExitCode, err, rec)
	}
	if strings.Contains(rec.String(), "sleep 297") {
		t.Errorf("the background child of the previous step is alive:%s", rec)
	}
}

// TestDriver_RunStep_exitBySignal: a shell killed by signal n exits 128+n.
func TestDriver_RunStep_exitBySignal(t *testing.T) {
	needEngine(t)
	d := newDriver(t, docker.Config{})
	h := create(t, d, drivers.WorkerConfig{ID: randID("signal"), Image: testImage})
	res, err := d.RunStep(t.Context(), h, drivers.StepConfig{Name: "kill", Run: "kill -9 $$"}, nil)
	if err != nil || res.ExitCode != 137 {
		t.Errorf("exit %d, err %v; want 137", res.ExitCode, err)
	}
}

// TestDriver_RunStep_containerGone: a worker whose container was removed
// behind the driver's back is not found.
func TestDriver_RunStep_containerGone(t *testing.T) {
	needEngine(t)
	d := newDriver(t, docker.Config{})
	h := create(t, d, drivers.WorkerConfig{ID: randID("gone"), Image: testImage})
	cli := rawClient()
	defer cli.Close()
	if err := cli.ContainerKill(t.Context(), "ciplat-"+h.ID, "KILL"); err != nil {
		t.Fatal(err)
	}
	if err := d.RecoverWorker(t.Context(), h); !errors.Is(err, drivers.ErrWorkerNotFound) {
		t.Errorf("RecoverWorker of a stopped container: %v, want ErrWorkerNotFound", err)
	}
	if _, err := d.RunStep(t.Context(), h, drivers.StepConfig{Name: "s", Run: "true"}, nil); !errors.Is(err, drivers.ErrWorkerNotFound) {
		t.Errorf("RunStep in a stopped container: %v, want ErrWorkerNotFound", err)
	}
	hs, err := d.ListWorkers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(hs, func(x *drivers.WorkerHandle) bool { return x.ID == h.ID }) {
		t.Errorf("ListWorkers does not list the stopped worker, so nobody would reap it")
	}
}

// faultyProxy forwards a unix socket to the engine's, or drops every
// connection while broken is set.
type faultyProxy struct {
	path   string
	broken atomic.Bool

	mu    sync.Mutex
	conns map[net.Conn]bool // open client connections
}

// setBroken breaks or mends the proxy; breaking also cuts the open
// connections, so pooled keep-alive connections cannot hide it.
func (p *faultyProxy) setBroken(b bool) {
	p.broken.Store(b)
	if !b {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

// startProxy serves a faultyProxy in front of the engine until the test
// ends. It returns nil when the engine is not on a local unix socket.
func startProxy(t *testing.T) *faultyProxy {
	t.Helper()
	cli := rawClient()
	host := cli.DaemonHost()
	cli.Close()
	target, ok := strings.CutPrefix(host, "unix://")
	if !ok {
		t.Skipf("the engine is at %s, not a unix socket: the fault proxy needs one", host)
	}
	p := &faultyProxy{path: filepath.Join(t.TempDir(), "docker.sock"), conns: map[net.Conn]bool{}}
	l, err := net.Listen("unix", p.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if p.broken.Load() {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c] = true
			p.mu.Unlock()
			go func() {
				defer func() {
					c.Close()
					p.mu.Lock()
					delete(p.conns, c)
					p.mu.Unlock()
				}()
				e, err := net.Dial("unix", target)
				if err != nil {
					return
				}
				defer e.Close()
				go io.Copy(e, c)
				io.Copy(c, e)
			}()
		}
	}()
	return p
}

// TestDriver_breaker: an engine that stops answering opens the circuit
// after the threshold; calls then fail fast and Fingerprint says why; after
// the cooldown one probe closes it again once the engine is back.
func TestDriver_breaker(t *testing.T) {
	needEngine(t)
	p := startProxy(t)
	var now atomic.Int64
	now.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	d := newDriver(t, docker.Config{
		Host: "unix://" + p.path, BreakerThreshold: 3, BreakerCooldown: time.Minute,
		Retries: -1, Now: clock,
	})
	if fp := d.Fingerprint(t.Context()); !fp.Healthy {
		t.Fatalf("through the proxy: %+v", fp)
	}

	p.setBroken(true)
	for i := range 3 {
		fp := d.Fingerprint(t.Context())
		if fp.Healthy || !fp.Detected {
			t.Fatalf("broken engine, fingerprint #%d = %+v; want detected, unhealthy", i+1, fp)
		}
	}
	fp := d.Fingerprint(t.Context())
	if !strings.Contains(fp.Reason, "circuit open after 3 consecutive failures") {
		t.Errorf("reason after 3 failures = %q, want the circuit open", fp.Reason)
	}
	start := time.Now()
	_, err := d.ListWorkers(t.Context())
	if !errors.Is(err, docker.ErrEngineUnavailable) {
		t.Errorf("ListWorkers with the circuit open: %v, want ErrEngineUnavailable", err)
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("a refused call took %v; want it to fail fast", took)
	}

	// The engine is back, but the circuit stays open until the cooldown.
	p.setBroken(false)
	if fp := d.Fingerprint(t.Context()); fp.Healthy {
		t.Errorf("healthy before the cooldown: %+v", fp)
	}
	now.Add(int64(time.Minute))
	if fp := d.Fingerprint(t.Context()); !fp.Healthy {
		t.Errorf("after the cooldown, the probe should close the circuit: %+v", fp)
	}
	if _, err := d.ListWorkers(t.Context()); err != nil {
		t.Errorf("ListWorkers after the circuit closed: %v", err)
	}

	// A failed probe opens it for another cooldown.
	p.setBroken(true)
	for range 3 {
		d.Fingerprint(t.Context())
	}
	now.Add(int64(time.Minute))
	if fp := d.Fingerprint(t.Context()); fp.Healthy || !strings.Contains(fp.Reason, "does not answer") {
		t.Errorf("failed probe: %+v", fp)
	}
	if fp := d.Fingerprint(t.Context()); !strings.Contains(fp.Reason, "circuit open after 4 consecutive failures") {
		t.Errorf("after a failed probe: %q, want the circuit open again", fp.Reason)
	}
}

// TestDriver_Fingerprint_noEngine: an engine that is not there is reported
// with what to do, without any engine at all.
func TestDriver_Fingerprint_noEngine(t *testing.T) {
	d := newDriver(t, docker.Config{Host: "unix://" + filepath.Join(t.TempDir(), "none.sock"), Retries: -1})
	fp := d.Fingerprint(t.Context())
	if fp.Healthy || fp.Detected || !strings.Contains(fp.Reason, "start the Docker daemon") {
		t.Errorf("Fingerprint = %+v; want not detected, unhealthy, saying what to do", fp)
	}
}
