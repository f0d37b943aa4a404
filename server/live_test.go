package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ciplat/ciplat/api"
	"github.com/ciplat/ciplat/fsm/structs"
	"github.com/ciplat/ciplat/server/events"
)

// newLiveServer is newTestServer with the config changed by mod (an event
// bus, shorter WebSocket timings).
func newLiveServer(t *testing.T, mod func(*Config)) *testServer {
	t.Helper()
	cfg := Config{
		DataDir:   t.TempDir(),
		RaftAddr:  "127.0.0.1:0",
		Bootstrap: true,
		Dev:       true,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.WaitForLeader(ctx); err != nil {
		t.Fatal(err)
	}
	ts := &testServer{t: t, srv: s, web: httptest.NewServer(s.HTTPHandler()), dir: cfg.DataDir}
	t.Cleanup(ts.stop)
	return ts
}

// withNATS embeds a NATS server on a free port.
func withNATS(c *Config) { c.Events = &events.Config{Addr: "127.0.0.1:-1"} }

// runPipeline submits spec and plays a client agent that runs every job
// successfully (each step reported), until the pipeline ends.
func runPipeline(ts *testServer, nodeID, spec string) *api.Pipeline {
	ts.t.Helper()
	p, code := submit(ts, spec, nil)
	if code != http.StatusCreated {
		ts.t.Fatalf("submit: HTTP %d", code)
	}
	for done := 0; done < len(p.JobIDs); done++ {
		allocs := nodeAllocs(ts, nodeID, func(as []*api.Allocation) bool {
			for _, a := range as {
				if a.PipelineID == p.ID && a.ClientStatus == api.AllocClientPending {
					return true
				}
			}
			return false
		})
		var a *api.Allocation
		for _, x := range allocs {
			if x.PipelineID == p.ID && x.ClientStatus == api.AllocClientPending {
				a = x
			}
		}
		now := time.Now().UTC()
		exit0 := 0
		var steps []api.StepStatus
		for _, s := range a.Job.Steps {
			steps = append(steps, api.StepStatus{Name: s.Name, State: api.StateSucceeded, ExitCode: &exit0, StartedAt: now, FinishedAt: now})
		}
		report(ts, &api.AllocUpdate{AllocID: a.ID, ClientStatus: api.AllocClientRunning, JobState: api.StateRunning})
		report(ts, &api.AllocUpdate{AllocID: a.ID, ClientStatus: api.AllocClientComplete, JobState: api.StateSucceeded, Steps: steps})
	}
	return getPipeline(ts, p.ID)
}

// stateEventIDs lists the IDs of every event in the server's state.
func stateEventIDs(t *testing.T, s *Server) []string {
	t.Helper()
	evs, err := s.State().EventsAfter(nil, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.ID()
	}
	return ids
}

// jetStreamIDs reads CIPLAT_EVENTS as a NATS tool would: an ordered
// consumer on domain.>, every message's Nats-Msg-Id in stream order.
func jetStreamIDs(t *testing.T, url string, want int) []string {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := js.OrderedConsumer(ctx, events.StreamName, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"domain.>"}})
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	var ids []string
	for len(ids) < want {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			break
		}
		ids = append(ids, m.Headers().Get(jetstream.MsgIDHeader))
	}
	return ids
}

func TestServer_EventsPublishedToJetStream(t *testing.T) {
	ts := newLiveServer(t, withNATS)
	registerNode(ts, "n1")
	for i := 0; i < 3; i++ {
		if p := runPipeline(ts, "n1", twoJobs); p.State != api.StateSucceeded {
			t.Fatalf("pipeline %d ended %s", i, p.State)
		}
	}
	want := stateEventIDs(t, ts.srv)
	pub := ts.srv.EventPublisher()
	last := want[len(want)-1]
	waitFor(t, "the publisher to reach "+last, func() bool {
		st := pub.Status()
		return fmt.Sprintf("%d-%d", st.Last.Index, st.Last.Seq) == last
	})
	got := jetStreamIDs(t, ts.srv.EventBus().ClientURL(), len(want))
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("stream holds\n  %v\nthe state\n  %v", got, want)
	}
	// Three pipelines of two jobs: every subject of a successful run is there.
	topics := map[string]int{}
	evs, _ := ts.srv.State().EventsAfter(nil, 0, 0, 0)
	for _, e := range evs {
		topics[e.Topic]++
	}
	for _, topic := range []string{structs.TopicJobRequested, structs.TopicJobStarted, structs.TopicJobCompleted,
		structs.TopicStepStarted, structs.TopicStepCompleted, structs.TopicOfferCreated, structs.TopicAssignmentCreated,
		structs.TopicCapacityUpdated, structs.TopicWorkerCreated, structs.TopicWorkerTerminated} {
		if topics[topic] == 0 {
			t.Errorf("no %s event in %v", topic, topics)
		}
	}
	if topics[structs.TopicJobRequested] != 6 || topics[structs.TopicJobCompleted] != 6 {
		t.Errorf("job events %v: want 6 requested and 6 completed", topics)
	}
}

func TestServer_StartsWithoutEventBus(t *testing.T) {
	ts := newTestServer(t, "")
	if ts.srv.EventBus() != nil || ts.srv.EventPublisher() != nil {
		t.Fatal("a server without Events config has a bus")
	}
	registerNode(ts, "n1")
	if n := ts.srv.State().EventCount(); n != 1 {
		t.Fatalf("events table holds %d events, want the node's capacity event", n)
	}
}

// readNDJSON reads event lines from r until n events (heartbeats skipped)
// or the deadline.
func readEvents(t *testing.T, r *bufio.Reader, n int) []*structs.Event {
	t.Helper()
	var out []*structs.Event
	for len(out) < n {
		line, err := r.ReadBytes('\n')
		if err != nil {
			t.Fatalf("read event %d: %v (got %d)", len(out)+1, err, len(out))
		}
		if s := strings.TrimSpace(string(line)); s == "" || s == "{}" {
			continue
		}
		var e structs.Event
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		out = append(out, &e)
	}
	return out
}

func openStream(t *testing.T, ts *testServer, query string, hdr map[string]string) (*http.Response, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.web.URL+"/v1/event/stream"+query, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("event stream: %v", err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		cancel()
		t.Fatalf("event stream: HTTP %d %s", resp.StatusCode, b)
	}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	return resp, cancel
}

func TestEventStream_NDJSON(t *testing.T) {
	ts := newLiveServer(t, nil)
	registerNode(ts, "n1")
	p := runPipeline(ts, "n1", twoJobs)
	all := stateEventIDs(t, ts.srv)

	// From the start: every event, in order.
	resp, _ := openStream(t, ts, "?index=0", nil)
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Fatalf("Content-Type = %q", ct)
	}
	evs := readEvents(t, bufio.NewReader(resp.Body), len(all))
	for i, e := range evs {
		if e.ID() != all[i] {
			t.Fatalf("event %d = %s, want %s", i, e.ID(), all[i])
		}
	}

	// Filtered by topic and key, resumed from an index, then live.
	from := evs[3].Index
	resp, _ = openStream(t, ts, fmt.Sprintf("?topic=domain.pipeline.job&key=%s&index=%d", p.ID, from), nil)
	r := bufio.NewReader(resp.Body)
	got := readEvents(t, r, 2)
	for _, e := range got {
		if !strings.HasPrefix(e.Topic, "domain.pipeline.job.") || e.PipelineID != p.ID || e.Index <= from {
			t.Fatalf("filtered stream sent %s %s at %d", e.Topic, e.PipelineID, e.Index)
		}
	}
	p2, _ := submit(ts, twoJobs, nil) // another pipeline: not this key
	cancelled := ts.do("POST", "/v1/pipelines/"+p2.ID+"/cancel", nil, nil, nil)
	if cancelled.StatusCode != 200 {
		t.Fatalf("cancel: HTTP %d", cancelled.StatusCode)
	}
	p3 := runPipeline(ts, "n1", twoJobs)
	// The stream only carries p's job events: nothing more arrives for it
	// except heartbeats; a new stream keyed on p3 sees p3's.
	resp, _ = openStream(t, ts, "?topic=domain.pipeline.job.completed&key="+p3.ID, nil)
	got = readEvents(t, bufio.NewReader(resp.Body), 2)
	for _, e := range got {
		if e.Topic != structs.TopicJobCompleted || e.PipelineID != p3.ID {
			t.Fatalf("got %s of %s", e.Topic, e.PipelineID)
		}
	}
}

func TestEventStream_SSEResumesWithLastEventID(t *testing.T) {
	ts := newLiveServer(t, nil)
	registerNode(ts, "n1")
	runPipeline(ts, "n1", twoJobs)
	all := stateEventIDs(t, ts.srv)

	resp, _ := openStream(t, ts, "", map[string]string{"Accept": "text/event-stream", "Last-Event-ID": all[4]})
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type = %q", ct)
	}
	r := bufio.NewReader(resp.Body)
	var ids []string
	for len(ids) < len(all)-5 {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if id, ok := strings.CutPrefix(strings.TrimSpace(line), "id: "); ok {
			ids = append(ids, id)
		}
	}
	if strings.Join(ids, " ") != strings.Join(all[5:], " ") {
		t.Fatalf("SSE ids %v, want %v", ids, all[5:])
	}
}

func TestEventStream_TruncatedAndBadInput(t *testing.T) {
	ts := newLiveServer(t, nil)
	ts.srv.State().SetEventLimit(4)
	registerNode(ts, "n1")
	runPipeline(ts, "n1", twoJobs)
	resp, _ := openStream(t, ts, "?index=1", nil)
	if got := resp.Header.Get(eventsTruncatedHeader); got == "" {
		t.Fatalf("no %s header on a stream from a pruned index", eventsTruncatedHeader)
	}
	evs := readEvents(t, bufio.NewReader(resp.Body), 4)
	if oldest, _ := ts.srv.State().OldestEvent(); evs[0].ID() != oldest.ID() {
		t.Fatalf("truncated stream starts with %s, want the oldest kept %s", evs[0].ID(), oldest.ID())
	}
	for _, q := range []string{"?index=x", "?topic=a%20b", "?stale&index=-1"} {
		if r := ts.do("GET", "/v1/event/stream"+q, nil, nil, nil); r.StatusCode != 400 {
			t.Errorf("GET /v1/event/stream%s = HTTP %d, want 400", q, r.StatusCode)
		}
	}
}

func TestServer_LogsPublishedToNATS(t *testing.T) {
	ts := newLiveServer(t, withNATS)
	bus := ts.srv.EventBus()
	waitFor(t, "the log stream", func() bool {
		_, err := bus.JetStream().Stream(context.Background(), events.LogStreamName)
		return err == nil
	})
	nc, err := nats.Connect(bus.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("ciplat.logs.>")
	if err != nil {
		t.Fatal(err)
	}
	// The server registers a subscription asynchronously: a flush's PONG
	// says it has, so the lines published next are not missed.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// Logs are taken only for a job that exists and has not ended.
	p, code := submit(ts, "name: n\njobs:\n  a: { steps: [ { name: unit tests, run: 'true' } ] }\n", nil)
	if code != 201 || len(p.JobIDs) != 1 {
		t.Fatalf("submit: HTTP %d, %d jobs", code, len(p.JobIDs))
	}
	jobID := p.JobIDs[0]
	entries := []*api.LogEntry{
		{JobID: jobID, Step: "unit tests", Stream: "stdout", Line: "ok 1", Time: time.Now()},
		{JobID: jobID, Step: "unit tests", Stream: "stdout", Line: "ok 2", Time: time.Now()},
	}
	b, _ := json.Marshal(entries)
	if r := ts.do("POST", "/v1/client/logs", b, nil, nil); r.StatusCode != 200 {
		t.Fatalf("push logs: HTTP %d", r.StatusCode)
	}
	for i, want := range []string{"ok 1", "ok 2"} {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		var e api.LogEntry
		if err := json.Unmarshal(m.Data, &e); err != nil || e.Line != want || m.Subject != "ciplat.logs."+jobID+".unit_tests" {
			t.Fatalf("line %d: %s %s (%v)", i, m.Subject, m.Data, err)
		}
	}
	st, _ := bus.JetStream().Stream(context.Background(), events.LogStreamName)
	waitFor(t, "the lines kept in "+events.LogStreamName, func() bool {
		info, err := st.Info(context.Background())
		return err == nil && info.State.Msgs == 2
	})
}

// TestServer_NATSCLISeesEvents reads the events with the nats CLI
// (natscli, as an operator would): `nats sub 'domain.>' --all` on
// CIPLAT_EVENTS delivers every committed event's subject, in order. CI
// installs natscli; elsewhere the test skips without it.
func TestServer_NATSCLISeesEvents(t *testing.T) {
	natsCLI, err := exec.LookPath("nats")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("the nats CLI is not installed: CI needs it (go install github.com/nats-io/natscli/nats@v0.5.0; .ci/run does)")
		}
		t.Skip("the nats CLI is not installed (go install github.com/nats-io/natscli/nats@v0.5.0)")
	}
	ts := newLiveServer(t, withNATS)
	registerNode(ts, "n1")
	runPipeline(ts, "n1", twoJobs)
	evs, _ := ts.srv.State().EventsAfter(nil, 0, 0, 0)
	last := evs[len(evs)-1]
	waitFor(t, "the publisher", func() bool { return ts.srv.EventPublisher().Status().Last.Index == last.Index })

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, natsCLI, "--server", ts.srv.EventBus().ClientURL(), "sub", "domain.>",
		"--all", "--count", strconv.Itoa(len(evs)), "--headers-only")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("nats sub: %v\n%s", err, out)
	}
	var ids []string
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Nats-Msg-Id: "); ok {
			ids = append(ids, v)
		}
	}
	if want := stateEventIDs(t, ts.srv); strings.Join(ids, " ") != strings.Join(want, " ") {
		t.Fatalf("nats sub saw %v\nwant %v\noutput:\n%s", ids, want, out)
	}
}

// eventsTruncatedHeader is the header httpapi sets on an event stream that
// starts past pruned events.
const eventsTruncatedHeader = "X-Ciplat-Events-Truncated"
