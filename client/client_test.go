package client

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ciplat/ciplat/api"
	"github.com/ciplat/ciplat/drivers"
	"github.com/ciplat/ciplat/drivers/exec"
	"github.com/ciplat/ciplat/drivers/mock"
)

// harness runs a Client against a fakeServer until the test ends.
type harness struct {
	t      *testing.T
	srv    *fakeServer
	c      *Client
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// startClient builds a Client over drivers ds and runs it; the test's
// cleanup stops it and checks that Run returns.
// Each setup function may adjust the Client before Run.
func startClient(t *testing.T, srv *fakeServer, dataDir string, ds map[string]drivers.Driver, setup ...func(*Client)) *harness {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	c, err := New(Config{
		Name:    "build-1",
		DataDir: dataDir,
		API:     srv.api,
		Drivers: ds,
		Labels:  map[string]string{"zone": "a"},
		Logger:  testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range setup {
		f(c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, srv: srv, c: c, cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- c.Run(ctx) }()
	t.Cleanup(h.stop)
	select {
	case <-c.Ready():
	case err := <-h.done:
		t.Fatalf("Run returned before the node registered: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("node not registered")
	}
	return h
}

// stop cancels Run and waits for it to return; later calls do nothing.
func (h *harness) stop() {
	h.t.Helper()
	h.once.Do(func() {
		h.cancel()
		select {
		case err := <-h.done:
			if err != nil {
				h.t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			h.t.Fatal("Run did not return after its ctx ended")
		}
	})
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func newExec(t *testing.T) *exec.Driver {
	return exec.New(exec.Config{Root: t.TempDir(), KillGrace: 200 * time.Millisecond})
}

// testAlloc is a pending allocation of a one-attempt job with these steps.
func testAlloc(nodeID, id, driver string, steps ...api.StepSpec) *api.Allocation {
	status := make([]api.StepStatus, len(steps))
	for i, s := range steps {
		status[i] = api.StepStatus{Name: s.Name, State: api.StepPending}
	}
	return &api.Allocation{
		ID:            id,
		JobID:         "job-" + id,
		PipelineID:    "pipe-1",
		NodeID:        nodeID,
		Attempt:       1,
		Resources:     api.Resources{CPU: 100, MemoryMB: 64},
		DesiredStatus: api.AllocDesiredRun,
		ClientStatus:  api.AllocClientPending,
		Job: &api.Job{
			ID:         "job-" + id,
			PipelineID: "pipe-1",
			Name:       "build",
			State:      api.StateScheduled,
			Attempt:    1,
			Env:        map[string]string{"GREETING": "hello"},
			Steps:      status,
			Spec:       &api.JobSpec{Name: "build", Driver: driver, Steps: steps},
		},
	}
}

func stepStates(u *api.AllocUpdate) string {
	var b strings.Builder
	for i, s := range u.Steps {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%s", s.Name, s.State)
		if s.ExitCode != nil {
			fmt.Fprintf(&b, "(%d)", *s.ExitCode)
		}
	}
	return b.String()
}

func TestNew_NodeIDIsStable(t *testing.T) {
	srv := newFakeServer(t)
	dir := t.TempDir()
	cfg := Config{DataDir: dir, API: srv.api, Drivers: map[string]drivers.Driver{"mock": mock.New(mock.Config{})}}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if a.NodeID() != b.NodeID() || !validUUID(a.NodeID()) {
		t.Fatalf("node IDs %q and %q: want one stable UUID", a.NodeID(), b.NodeID())
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "client", "node-id")); strings.TrimSpace(string(got)) != a.NodeID() {
		t.Fatalf("node-id file holds %q, want %q", got, a.NodeID())
	}
	if _, err := New(Config{DataDir: dir, API: srv.api}); err == nil {
		t.Fatal("New without drivers succeeded")
	}
}

func TestClient_Run_RegistersFingerprint(t *testing.T) {
	srv := newFakeServer(t)
	sick := mock.New(mock.Config{Name: "sick"})
	sick.SetHealthy(false, "daemon down")
	h := startClient(t, srv, "", map[string]drivers.Driver{"exec": newExec(t), "sick": sick})

	srv.mu.Lock()
	n := srv.nodes[0]
	srv.mu.Unlock()
	if n.ID != h.c.NodeID() || n.Name != "build-1" || n.Status != api.NodeStatusReady || !n.Eligible {
		t.Fatalf("node %+v: want ID %s, name build-1, ready and eligible", n, h.c.NodeID())
	}
	if n.Resources.CPU != runtime.NumCPU()*1000 || n.Resources.MemoryMB <= 0 {
		t.Fatalf("resources %+v: want %d millicores and the host's memory", n.Resources, runtime.NumCPU()*1000)
	}
	host, _ := os.Hostname()
	want := map[string]string{
		"os":          runtime.GOOS,
		"arch":        runtime.GOARCH,
		"hostname":    host,
		"cpu.cores":   strconv.Itoa(runtime.NumCPU()),
		"label.zone":  "a",
		"driver.exec": "true",
		"driver.sick": "false",
	}
	for k, v := range want {
		if n.Attributes[k] != v {
			t.Errorf("attribute %s = %q, want %q", k, n.Attributes[k], v)
		}
	}
	if d := n.Drivers["exec"]; d == nil || !d.Healthy || !d.Detected {
		t.Errorf("drivers[exec] = %+v, want detected and healthy", d)
	}
	if d := n.Drivers["sick"]; d == nil || d.Healthy || d.Reason != "daemon down" {
		t.Errorf("drivers[sick] = %+v, want unhealthy with its reason", d)
	}
}

func TestClient_Run_RunsStepsInOrder(t *testing.T) {
	srv := newFakeServer(t)
	h := startClient(t, srv, "", map[string]drivers.Driver{"exec": newExec(t)})
	a := testAlloc(h.c.NodeID(), "a1", "",
		api.StepSpec{Name: "one", Run: `echo "$GREETING 1"; echo "attempt $CIPLAT_ATTEMPT"`},
		api.StepSpec{Name: "two", Run: "for i in $(seq 1 300); do echo line $i; done"},
		api.StepSpec{Name: "three", Run: "echo three", Timeout: "1m0s"},
	)
	srv.addAlloc(a)
	final := srv.waitFinal(t, "a1")

	ups := srv.updates("a1")
	var got []string
	for _, u := range ups {
		got = append(got, u.ClientStatus+"/"+u.JobState+" "+stepStates(u))
	}
	want := []string{
		"running/RUNNING one=RUNNING two=PENDING three=PENDING",
		"running/RUNNING one=SUCCEEDED(0) two=RUNNING three=PENDING",
		"running/RUNNING one=SUCCEEDED(0) two=SUCCEEDED(0) three=RUNNING",
		"complete/SUCCEEDED one=SUCCEEDED(0) two=SUCCEEDED(0) three=SUCCEEDED(0)",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("reports:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if final.Reason != "" {
		t.Errorf("reason %q on success", final.Reason)
	}
	for _, s := range final.Steps {
		if s.StartedAt.IsZero() || s.FinishedAt.Before(s.StartedAt) {
			t.Errorf("step %s: started %v, finished %v", s.Name, s.StartedAt, s.FinishedAt)
		}
	}

	// Every line, in order, before the report that ended its step.
	srv.mu.Lock()
	logs := slices.Clone(srv.logs)
	atCall := slices.Clone(srv.logsAtCall)
	srv.mu.Unlock()
	var lines []string
	for _, e := range logs {
		lines = append(lines, e.Step+": "+e.Line)
		if e.JobID != "job-a1" || e.JobName != "build" || e.Attempt != 1 || e.Stream != "stdout" || e.Time.IsZero() {
			t.Fatalf("log entry %+v: want job-a1/build attempt 1 on stdout with a time", e)
		}
	}
	wantLines := []string{"one: hello 1", "one: attempt 1"}
	for i := 1; i <= 300; i++ {
		wantLines = append(wantLines, fmt.Sprintf("two: line %d", i))
	}
	wantLines = append(wantLines, "three: three")
	if !slices.Equal(lines, wantLines) {
		t.Fatalf("got %d log lines, want %d in order; first lines %q", len(lines), len(wantLines), lines[:min(5, len(lines))])
	}
	if atCall[1] < 2 || atCall[2] < 302 || atCall[3] != 303 {
		t.Fatalf("log lines received before each report: %v; want every step's lines before its end", atCall)
	}

	// The handle is gone once the job ended.
	h.stop()
	if ents, _ := os.ReadDir(h.c.allocsDir()); len(ents) != 0 {
		t.Fatalf("handle files left after the job ended: %v", ents)
	}
}

func TestClient_Run_FailingStepSkipsTheRest(t *testing.T) {
	srv := newFakeServer(t)
	h := startClient(t, srv, "", map[string]drivers.Driver{"exec": newExec(t)})
	srv.addAlloc(testAlloc(h.c.NodeID(), "a1", "exec",
		api.StepSpec{Name: "build", Run: "echo ok"},
		api.StepSpec{Name: "test", Run: "echo failing >&2\nexit 3"},
		api.StepSpec{Name: "deploy", Run: "echo never"},
	))
	final := srv.waitFinal(t, "a1")
	if final.ClientStatus != api.AllocClientFailed || final.JobState != api.StateFailed || final.Reason != "step test exited 3" {
		t.Fatalf("final %s/%s %q: want failed/FAILED \"step test exited 3\"", final.ClientStatus, final.JobState, final.Reason)
	}
	if got := stepStates(final); got != "build=SUCCEEDED(0) test=FAILED(3) deploy=SKIPPED" {
		t.Fatalf("steps %s", got)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if n := len(srv.logs); n != 2 || srv.logs[1].Stream != "stderr" || srv.logs[1].Line != "failing" {
		t.Fatalf("logs %d, want the two lines (the second on stderr)", n)
	}
}

func TestClient_Run_StepTimeout(t *testing.T) {
	srv := newFakeServer(t)
	h := startClient(t, srv, "", map[string]drivers.Driver{"exec": newExec(t)})
	srv.addAlloc(testAlloc(h.c.NodeID(), "a1", "",
		api.StepSpec{Name: "slow", Run: "echo start; sleep 30", Timeout: "300ms"},
		api.StepSpec{Name: "after", Run: "echo never"},
	))
	final := srv.waitFinal(t, "a1")
	if final.Reason != "step slow timed out after 300ms" || final.JobState != api.StateFailed {
		t.Fatalf("final %s %q: want FAILED \"step slow timed out after 300ms\"", final.JobState, final.Reason)
	}
	if got := stepStates(final); got != "slow=FAILED after=SKIPPED" {
		t.Fatalf("steps %s", got)
	}
}

func TestClient_Run_JobTimeout(t *testing.T) {
	srv := newFakeServer(t)
	h := startClient(t, srv, "", map[string]drivers.Driver{"exec": newExec(t)})
	a := testAlloc(h.c.NodeID(), "a1", "",
		api.StepSpec{Name: "quick", Run: "true"},
		api.StepSpec{Name: "slow", Run: "sleep 30", Timeout: "1m"},
	)
	a.Job.Spec.Timeout = "2s"
	srv.addAlloc(a)
	final := srv.waitFinal(t, "a1")
	if final.Reason != "job timed out after 2s" || stepStates(final) != "quick=SUCCEEDED(0) slow=FAILED" {
		t.Fatalf("final %q %s: want \"job timed out after 2s\", slow FAILED", final.Reason, stepStates(final))
	}
}

// waitLogs waits until the server holds n log lines.
func (s *fakeServer) waitLogs(t *testing.T, n int) {
	t.Helper()
	s.waitFor(t, fmt.Sprintf("%d log lines", n), func() bool { return len(s.logs) >= n })
}

func TestClient_Run_DesiredStopDestroysWorker(t *testing.T) {
	srv := newFakeServer(t)
	d := mock.New(mock.Config{})
	h := startClient(t, srv, "", map[string]drivers.Driver{"mock": d})
	srv.addAlloc(testAlloc(h.c.NodeID(), "a1", "",
		api.StepSpec{Name: "wait", Run: "echo waiting\nsleep 1h"},
		api.StepSpec{Name: "after", Run: "echo never"},
	))
	srv.waitLogs(t, 1)
	srv.setAlloc("a1", func(a *api.Allocation) { a.DesiredStatus = api.AllocDesiredStop })
	final := srv.waitFinal(t, "a1")
	if final.ClientStatus != api.AllocClientComplete || final.JobState != "" {
		t.Fatalf("final %s/%q: want complete with no job state (the servers cancelled the job)", final.ClientStatus, final.JobState)
	}
	if st := d.Stats(); st.Created != 1 || st.Destroyed != 1 || st.Running != 0 {
		t.Fatalf("driver stats %+v: want the one worker destroyed and no step running", st)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.logs) != 1 || srv.logs[0].Line != "waiting" {
		t.Fatalf("logs %v: want the line before the stop", srv.logs)
	}
}

func TestClient_Run_DesiredStopKillsExecStep(t *testing.T) {
	srv := newFakeServer(t)
	h := startClient(t, srv, "", map[string]drivers.Driver{"exec": newExec(t)})
	srv.addAlloc(testAlloc(h.c.NodeID(), "a1", "", api.StepSpec{Name: "wait", Run: "echo started; sleep 60"}))
	srv.waitFor(t, "the step's first line", func() bool { return len(srv.logs) > 0 })
	start := time.Now()
	srv.setAlloc("a1", func(a *api.Allocation) { a.DesiredStatus = api.AllocDesiredStop })
	if final := srv.waitFinal(t, "a1"); final.ClientStatus != api.AllocClientComplete {
		t.Fatalf("final %s, want complete", final.ClientStatus)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("stop took %s", d)
	}
}

func TestClient_Run_NoAllocRunsTwice(t *testing.T) {
	srv := newFakeServer(t)
	d := mock.New(mock.Config{})
	h := startClient(t, srv, "", map[string]drivers.Driver{"mock": d})
	srv.addAlloc(testAlloc(h.c.NodeID(), "a1", "", api.StepSpec{Name: "wait", Run: "echo started\nsleep 1h"}))
	srv.waitLogs(t, 1)
	// The same list, delivered again and again while the alloc runs, even
	// showing it pending.
	for range 3 {
		srv.setAlloc("a1", func(a *api.Allocation) { a.ClientStatus = api.AllocClientPending })
	}
	srv.setAlloc("a1", func(a *api.Allocation) { a.DesiredStatus = api.AllocDesiredStop })
	srv.waitFinal(t, "a1")

	// A stale list that shows the ended alloc as pending again.
	srv.setAlloc("a1", func(a *api.Allocation) {
		a.DesiredStatus, a.ClientStatus = api.AllocDesiredRun, api.AllocClientPending
	})
	srv.mu.Lock()
	idx := srv.index
	srv.mu.Unlock()
	srv.waitFor(t, "the client to read the stale list", func() bool { return srv.lastWaitIndex() >= idx })
	if st := d.Stats(); st.Created != 1 {
		t.Fatalf("%d workers created for one allocation", st.Created)
	}
}

func TestClient_Run_UnknownDriverFails(t *testing.T) {
	srv := newFakeServer(t)
	h := startClient(t, srv, "", map[string]drivers.Driver{"mock": mock.New(mock.Config{})})
	srv.addAlloc(testAlloc(h.c.NodeID(), "a1", "docker", api.StepSpec{Name: "s", Run: "echo hi"}))
	final := srv.waitFinal(t, "a1")
	if final.Reason != `driver "docker" is not enabled on node build-1 (enabled: mock)` || final.Cause != api.CauseCreateFailed {
		t.Fatalf("reason %q cause %q", final.Reason, final.Cause)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	// RUNNING and FAILED in one call: the job may reach FAILED only through RUNNING.
	if len(srv.calls) != 1 || len(srv.calls[0]) != 2 || srv.calls[0][0].JobState != api.StateRunning || stepStates(srv.calls[0][1]) != "s=SKIPPED" {
		t.Fatalf("calls %d: want one call with RUNNING then FAILED", len(srv.calls))
	}
}

// TestClient_Run_ImageWithoutContainerDriver: a job with an image placed on
// a node whose container driver has gone since is a fault the servers
// reschedule (cause create-failed), not a failure of the build.
func TestClient_Run_ImageWithoutContainerDriver(t *testing.T) {
	srv := newFakeServer(t)
	h := startClient(t, srv, "", map[string]drivers.Driver{"mock": mock.New(mock.Config{})})
	a := testAlloc(h.c.NodeID(), "a1", "", api.StepSpec{Name: "s", Run: "echo hi"})
	a.Job.Spec.Image = "busybox:1"
	srv.addAlloc(a)
	final := srv.waitFinal(t, "a1")
	if !strings.Contains(final.Reason, `job has image "busybox:1" but no container driver`) || final.Cause != api.CauseCreateFailed {
		t.Fatalf("reason %q cause %q, want the missing container driver as create-failed", final.Reason, final.Cause)
	}
}

func TestClient_Run_UnhealthyDriverFails(t *testing.T) {
	srv := newFakeServer(t)
	d := mock.New(mock.Config{})
	d.SetHealthy(false, "disk full")
	h := startClient(t, srv, "", map[string]drivers.Driver{"mock": d})
	srv.addAlloc(testAlloc(h.c.NodeID(), "a1", "", api.StepSpec{Name: "s", Run: "echo hi"}))
	if final := srv.waitFinal(t, "a1"); final.Reason != `driver "mock" is unhealthy on node build-1: disk full` || final.Cause != api.CauseCreateFailed {
		t.Fatalf("reason %q cause %q", final.Reason, final.Cause)
	}
	if st := d.Stats(); st.Created != 0 {
		t.Fatalf("created %d workers on an unhealthy driver", st.Created)
	}
}

func TestClient_Run_ReportsSurviveServerErrors(t *testing.T) {
	srv := newFakeServer(t)
	srv.failUpdates, srv.failLogs = 2, 2
	h := startClient(t, srv, "", map[string]drivers.Driver{"mock": mock.New(mock.Config{})})
	srv.addAlloc(testAlloc(h.c.NodeID(), "a1", "", api.StepSpec{Name: "s", Run: "echo a\necho b"}))
	final := srv.waitFinal(t, "a1")
	if final.JobState != api.StateSucceeded {
		t.Fatalf("final %s", final.JobState)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.logs) != 2 || srv.logs[0].Line != "a" || srv.logs[1].Line != "b" {
		t.Fatalf("logs %d: want a, b", len(srv.logs))
	}
}

func TestClient_Run_RestartReportsLostJob(t *testing.T) {
	srv := newFakeServer(t)
	dir := t.TempDir()
	host := mock.NewHost()
	ctx := context.Background()
	// A previous run left workers, with handles, for a1 (still running on
	// the servers), a2 (ended there) and a3 (cancelled during the restart),
	// and an orphan no handle names.
	before := mock.New(mock.Config{Host: host})
	c, err := New(Config{DataDir: dir, API: srv.api, Drivers: map[string]drivers.Driver{"mock": before}})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a1", "a2", "a3", "orphan"} {
		wh, err := before.CreateWorker(ctx, drivers.WorkerConfig{ID: id, JobID: "job-" + id})
		if err != nil {
			t.Fatal(err)
		}
		if id != "orphan" {
			if err := c.saveHandle(&handleRecord{AllocID: id, JobID: "job-" + id, Driver: "mock", Handle: wh}); err != nil {
				t.Fatal(err)
			}
		}
	}
	a1 := testAlloc(c.NodeID(), "a1", "", api.StepSpec{Name: "s", Run: "echo hi"})
	a1.ClientStatus = api.AllocClientRunning
	a2 := testAlloc(c.NodeID(), "a2", "", api.StepSpec{Name: "s", Run: "echo hi"})
	a2.DesiredStatus, a2.ClientStatus = api.AllocDesiredStop, api.AllocClientComplete
	a3 := testAlloc(c.NodeID(), "a3", "", api.StepSpec{Name: "s", Run: "echo hi"})
	a3.DesiredStatus, a3.ClientStatus = api.AllocDesiredStop, api.AllocClientRunning
	srv.addAlloc(a1)
	srv.addAlloc(a2)
	srv.addAlloc(a3)

	after := mock.New(mock.Config{Host: host})
	h := startClient(t, srv, dir, map[string]drivers.Driver{"mock": after})
	final := srv.waitFinal(t, "a1")
	if final.ClientStatus != api.AllocClientFailed || final.JobState != api.StateFailed || final.Reason != "client restarted while the job ran" ||
		final.Cause != api.CauseWorkerLost {
		t.Fatalf("a1 reported %s/%s %q cause %q: want the worker lost (rescheduled, not retried)", final.ClientStatus, final.JobState, final.Reason, final.Cause)
	}
	srv.waitFor(t, "the watch to start (recovery is over)", func() bool { return srv.lastWaitIndex() > 0 })
	h.stop()
	if ents, _ := os.ReadDir(filepath.Join(dir, "client", "allocs")); len(ents) != 0 {
		t.Fatalf("handles left: %v", ents)
	}
	if ups := srv.updates("a2"); len(ups) != 0 {
		t.Fatalf("a2 (ended on the servers) was reported: %+v", ups)
	}
	if ups := srv.updates("a3"); len(ups) != 1 || ups[0].ClientStatus != api.AllocClientComplete || ups[0].JobState != "" {
		t.Fatalf("a3 reports %+v: want one, complete with no job state", ups)
	}
	left, _ := after.ListWorkers(ctx)
	if st := after.Stats(); st.Created != 0 || st.Destroyed != 4 || len(left) != 0 {
		t.Fatalf("stats %+v, %d workers left: want a1, a2, a3 and the orphan destroyed, nothing run", st, len(left))
	}
}

func TestClient_Run_ReportsRunningAllocItDoesNotKnow(t *testing.T) {
	srv := newFakeServer(t)
	d := mock.New(mock.Config{})
	// The servers think this node runs a1, but no handle says so (a crash
	// before the handle was written, or a wiped data dir).
	h := startClient(t, srv, "", map[string]drivers.Driver{"mock": d}, func(c *Client) {
		a := testAlloc(c.NodeID(), "a1", "", api.StepSpec{Name: "s", Run: "echo hi"})
		a.ClientStatus = api.AllocClientRunning
		srv.addAlloc(a)
	})
	if final := srv.waitFinal(t, "a1"); final.JobState != api.StateFailed || final.Reason != "client restarted while the job ran" ||
		final.Cause != api.CauseWorkerLost {
		t.Fatalf("final %s %q cause %q", final.JobState, final.Reason, final.Cause)
	}
	h.stop()
	if st := d.Stats(); st.Created != 0 {
		t.Fatalf("a lost allocation was run again here (%d workers)", st.Created)
	}
}

func TestClient_Run_ReregistersWhenDriverHealthChanges(t *testing.T) {
	srv := newFakeServer(t)
	d := mock.New(mock.Config{})
	startClient(t, srv, "", map[string]drivers.Driver{"mock": d}, func(c *Client) {
		c.fingerprintInterval = 10 * time.Millisecond
	})
	d.SetHealthy(false, "daemon down")
	srv.waitFor(t, "a re-registration with the driver unhealthy", func() bool {
		n := srv.nodes[len(srv.nodes)-1]
		return n.Attributes["driver.mock"] == "false" && n.Drivers["mock"].Reason == "daemon down"
	})
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.nodes) != 2 {
		t.Fatalf("%d registrations: want one at start and one on the change", len(srv.nodes))
	}
}

func TestClient_Run_ShutdownDestroysAndReports(t *testing.T) {
	srv := newFakeServer(t)
	d := mock.New(mock.Config{})
	h := startClient(t, srv, "", map[string]drivers.Driver{"mock": d})
	srv.addAlloc(testAlloc(h.c.NodeID(), "a1", "", api.StepSpec{Name: "wait", Run: "echo started\nsleep 1h"}))
	srv.waitLogs(t, 1)
	h.stop()
	if st := d.Stats(); st.Destroyed != 1 || st.Running != 0 {
		t.Fatalf("stats %+v: want a1's worker destroyed by shutdown", st)
	}
	final := srv.waitFinal(t, "a1")
	if final.JobState != api.StateFailed || final.Reason != "client shut down while the job ran" || stepStates(final) != "wait=FAILED" ||
		final.Cause != api.CauseWorkerLost {
		t.Fatalf("final %s %q %s cause %q", final.JobState, final.Reason, stepStates(final), final.Cause)
	}
}

func TestClient_Run_ShutdownWithServerGone(t *testing.T) {
	srv := newFakeServer(t)
	d := mock.New(mock.Config{})
	dir := t.TempDir()
	h := startClient(t, srv, dir, map[string]drivers.Driver{"mock": d})
	srv.addAlloc(testAlloc(h.c.NodeID(), "a1", "", api.StepSpec{Name: "wait", Run: "echo started\nsleep 1h"}))
	srv.waitLogs(t, 1)
	srv.close()
	start := time.Now()
	h.stop()
	if took := time.Since(start); took > 8*time.Second {
		t.Fatalf("shutdown took %s with the server gone", took)
	}
	if st := d.Stats(); st.Destroyed != 1 {
		t.Fatalf("stats %+v: want the worker destroyed", st)
	}
	// The final report could not be delivered: the handle stays for the next start.
	b, err := os.ReadFile(filepath.Join(dir, "client", "allocs", "a1.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec handleRecord
	if err := json.Unmarshal(b, &rec); err != nil || rec.Handle.ID != "a1" || rec.Driver != "mock" {
		t.Fatalf("handle %s (%v)", b, err)
	}
}
