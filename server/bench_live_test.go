package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ciplat/ciplat/fsm/structs"
	"github.com/ciplat/ciplat/jobspec"
	"github.com/ciplat/ciplat/server/events"
	"github.com/ciplat/ciplat/server/httpapi"
)

// The live-state benchmarks (make bench) measure what issue 7 asks:
// event latency from commit to JetStream and to a WebSocket client, the
// WebSocket fan-out to 500 clients, and the UI's aggregated read with
// 10,000 pipelines. Each runs a fixed amount of work per b.N iteration and
// reports percentiles as custom metrics; run with -benchtime 1x.

func benchServer(b *testing.B, mod func(*Config)) (*Server, *httptest.Server) {
	b.Helper()
	cfg := Config{DataDir: b.TempDir(), RaftAddr: "127.0.0.1:0", Bootstrap: true, Dev: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.WaitForLeader(ctx); err != nil {
		b.Fatal(err)
	}
	web := httptest.NewServer(s.HTTPHandler())
	b.Cleanup(func() { web.Close(); _ = s.Shutdown() })
	return s, web
}

func livePct(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := min(len(s)-1, int(p*float64(len(s))))
	return float64(s[i].Microseconds()) / 1000
}

func registerPipeline(b *testing.B, s *Server, id string) {
	b.Helper()
	spec, err := jobspec.ParsePipelineSpec([]byte(strings.Replace(twoJobs, "name: two", "name: "+id, 1)))
	if err != nil {
		b.Fatal(err)
	}
	p, jobs := httpapi.NewPipeline(spec, "")
	p.ID = id
	for _, j := range jobs {
		j.PipelineID = id
	}
	p.JobIDs = nil
	for _, j := range jobs {
		p.JobIDs = append(p.JobIDs, j.ID)
	}
	if _, _, err := s.apply(structs.PipelineRegisterRequestType, &structs.PipelineRegisterRequest{
		WriteRequest: structs.WriteRequest{Timestamp: s.now()}, Pipeline: p, Jobs: jobs}); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkEvents_Latency: a pipeline is registered (one Raft entry, two
// job.requested events); the clock starts when the leader's Raft apply
// returns (committed and applied) and stops when the first event of the
// entry reaches (a) a JetStream consumer of CIPLAT_EVENTS, (b) a WebSocket
// client of /v1/ws.
func BenchmarkEvents_Latency(b *testing.B) {
	s, web := benchServer(b, withNATS)
	const rounds = 200

	type arrival struct {
		pipeline string
		at       time.Time
	}
	jsCh := make(chan arrival, rounds*4)
	nc, err := nats.Connect(s.EventBus().ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if _, err := s.EventBus().EnsureStream(ctx); err != nil {
		b.Fatal(err)
	}
	cons, err := js.OrderedConsumer(ctx, events.StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{structs.TopicJobRequested}, DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		b.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		var e structs.Event
		_ = json.Unmarshal(m.Data(), &e)
		if e.Seq == 0 {
			jsCh <- arrival{e.PipelineID, time.Now()}
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Stop()

	wsCh := make(chan arrival, rounds*4)
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(web.URL, "http")+"/v1/ws", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	_ = conn.WriteJSON(httpapi.WSSubscribe{Subscribe: []string{"events"}})
	go func() {
		for {
			var m httpapi.WSMessage
			if err := conn.ReadJSON(&m); err != nil {
				return
			}
			if m.Type == "event" && m.Event.Topic == structs.TopicJobRequested && m.Event.Seq == 0 {
				wsCh <- arrival{m.Event.PipelineID, time.Now()}
			}
		}
	}()

	var jsLat, wsLat []time.Duration
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		for i := 0; i < rounds; i++ {
			id := fmt.Sprintf("lat-%d-%d", n, i)
			registerPipeline(b, s, id)
			committed := time.Now()
			for got := 0; got < 2; {
				select {
				case a := <-jsCh:
					if a.pipeline == id {
						jsLat = append(jsLat, max(0, a.at.Sub(committed)))
						got++
					}
				case a := <-wsCh:
					if a.pipeline == id {
						wsLat = append(wsLat, max(0, a.at.Sub(committed)))
						got++
					}
				case <-time.After(10 * time.Second):
					b.Fatalf("event of %s not delivered", id)
				}
			}
		}
	}
	b.ReportMetric(livePct(jsLat, .50), "js-p50-ms")
	b.ReportMetric(livePct(jsLat, .95), "js-p95-ms")
	b.ReportMetric(livePct(wsLat, .50), "ws-p50-ms")
	b.ReportMetric(livePct(wsLat, .95), "ws-p95-ms")
}

// BenchmarkWS_FanOut500: 500 WebSocket clients subscribed to events and
// jobs; 100 pipelines are registered as fast as Raft takes them; measured
// until every client got every event. Reports messages delivered per
// second and the process's CPU time (server and the 500 in-process
// clients together).
func BenchmarkWS_FanOut500(b *testing.B) {
	s, web := benchServer(b, nil)
	s.live.hub.SetOptions(func(o *httpapi.FeedOptions) { o.QueueLen = 1024 })
	const clients, pipelines = 500, 100
	url := "ws" + strings.TrimPrefix(web.URL, "http") + "/v1/ws"
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		var conns []*websocket.Conn
		for i := 0; i < clients; i++ {
			c, _, err := websocket.DefaultDialer.Dial(url, nil)
			if err != nil {
				b.Fatal(err)
			}
			_ = c.WriteJSON(httpapi.WSSubscribe{Subscribe: []string{"events", "jobs"}})
			var m httpapi.WSMessage
			if err := c.ReadJSON(&m); err != nil || m.Type != "subscribed" {
				b.Fatalf("subscribe: %v %+v", err, m)
			}
			conns = append(conns, c)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		delivered := 0
		prefix := fmt.Sprintf("fan-%d-", n)
		for _, c := range conns {
			wg.Add(1)
			go func(c *websocket.Conn) {
				defer wg.Done()
				events, msgs := 0, 0
				for events < 2*pipelines {
					_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
					var m httpapi.WSMessage
					if err := c.ReadJSON(&m); err != nil {
						b.Errorf("client: %v after %d events", err, events)
						return
					}
					msgs++
					if m.Type == "event" && strings.HasPrefix(m.Event.PipelineID, prefix) {
						events++
					}
				}
				mu.Lock()
				delivered += msgs
				mu.Unlock()
			}(c)
		}
		cpu0 := cpuTime()
		start := time.Now()
		b.StartTimer()
		for i := 0; i < pipelines; i++ {
			registerPipeline(b, s, fmt.Sprintf("%s%d", prefix, i))
		}
		wg.Wait()
		b.StopTimer()
		elapsed := time.Since(start)
		cpu := cpuTime() - cpu0
		b.ReportMetric(float64(delivered)/elapsed.Seconds(), "msgs/s")
		b.ReportMetric(cpu.Seconds(), "cpu-s")
		b.ReportMetric(float64(elapsed.Milliseconds()), "wall-ms")
		for _, c := range conns {
			c.Close()
		}
		b.StartTimer()
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkUIPipelines_10k: GET /v1/ui/pipelines over HTTP with 10,000
// pipelines (20,000 jobs) in state: the first page, and a filtered page.
func BenchmarkUIPipelines_10k(b *testing.B) {
	s, web := benchServer(b, nil)
	seedPipelines(b, s.State(), 100000, 10000)
	for _, q := range []string{"", "?state=RUNNING&name=api&per_page=100"} {
		name := "first-page"
		if q != "" {
			name = "filtered"
		}
		b.Run(name, func(b *testing.B) {
			var lat []time.Duration
			for n := 0; n < b.N; n++ {
				for i := 0; i < 200; i++ {
					t0 := time.Now()
					resp, err := http.Get(web.URL + "/v1/ui/pipelines" + q)
					if err != nil {
						b.Fatal(err)
					}
					var page httpapi.UIPipelinePage
					if err := json.NewDecoder(resp.Body).Decode(&page); err != nil || page.Total == 0 {
						b.Fatalf("decode: %v (total %d)", err, page.Total)
					}
					resp.Body.Close()
					lat = append(lat, time.Since(t0))
				}
			}
			b.ReportMetric(livePct(lat, .50), "p50-ms")
			b.ReportMetric(livePct(lat, .95), "p95-ms")
		})
	}
}
