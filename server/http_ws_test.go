package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/ciplat/ciplat/server/httpapi"
)

// wsConn is a test WebSocket client of /v1/ws.
type wsConn struct {
	t    *testing.T
	conn *websocket.Conn
	// last is the highest index seen.
	last uint64
}

func dialWS(t *testing.T, ts *testServer, sub httpapi.WSSubscribe, dialer *websocket.Dialer) *wsConn {
	t.Helper()
	if dialer == nil {
		dialer = websocket.DefaultDialer
	}
	url := "ws" + strings.TrimPrefix(ts.web.URL, "http") + "/v1/ws"
	conn, resp, err := dialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v (%v)", url, err, resp)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.WriteJSON(sub); err != nil {
		t.Fatal(err)
	}
	c := &wsConn{t: t, conn: conn}
	if m := c.read(); m.Type != "subscribed" {
		t.Fatalf("first message = %+v, want subscribed", m)
	}
	return c
}

// read returns the next message (10s at most).
func (c *wsConn) read() *httpapi.WSMessage {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var m httpapi.WSMessage
	if err := c.conn.ReadJSON(&m); err != nil {
		c.t.Fatalf("read: %v", err)
	}
	c.last = max(c.last, m.Index)
	return &m
}

// until reads messages until cond holds for one, and returns all read.
func (c *wsConn) until(cond func(*httpapi.WSMessage) bool) []*httpapi.WSMessage {
	c.t.Helper()
	var out []*httpapi.WSMessage
	for {
		m := c.read()
		out = append(out, m)
		if cond(m) {
			return out
		}
	}
}

func pipelineDone(id string) func(*httpapi.WSMessage) bool {
	return func(m *httpapi.WSMessage) bool {
		return m.Type == "pipeline" && m.Pipeline.ID == id && m.Pipeline.State == "SUCCEEDED"
	}
}

var allTopics = []string{"pipelines", "jobs", "nodes", "events"}

func TestWS_ManyClients(t *testing.T) {
	ts := newLiveServer(t, nil)
	registerNode(ts, "n1")
	const n = 40
	clients := make([]*wsConn, n)
	for i := range clients {
		clients[i] = dialWS(t, ts, httpapi.WSSubscribe{Subscribe: allTopics}, nil)
	}
	if got := ts.srv.live.hub.ClientCount(); got != n {
		t.Fatalf("hub has %d clients, want %d", got, n)
	}
	p := runPipeline(ts, "n1", twoJobs)
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func(c *wsConn) {
			defer wg.Done()
			var last uint64
			types := map[string]int{}
			for _, m := range c.until(pipelineDone(p.ID)) {
				types[m.Type]++
				if m.Type == "event" {
					if m.Event.Index < last {
						t.Errorf("event %s after index %d: out of order", m.Event.ID(), last)
					}
					last = m.Event.Index
				}
			}
			for _, typ := range []string{"event", "pipeline", "job", "node"} {
				if types[typ] == 0 {
					t.Errorf("client got no %s message: %v", typ, types)
				}
			}
		}(c)
	}
	wg.Wait()
}

func TestWS_PipelineFilterAndTopics(t *testing.T) {
	ts := newLiveServer(t, nil)
	registerNode(ts, "n1")
	p1, _ := submit(ts, twoJobs, nil)
	jobsOnly := dialWS(t, ts, httpapi.WSSubscribe{Subscribe: []string{"jobs"}, Pipeline: p1.ID}, nil)
	p2, _ := submit(ts, twoJobs, nil)
	ts.do("POST", "/v1/pipelines/"+p1.ID+"/cancel", nil, nil, nil)
	msgs := jobsOnly.until(func(m *httpapi.WSMessage) bool { return m.Type == "job" && m.Job.State == "CANCELLED" })
	for _, m := range msgs {
		if m.Type != "job" || m.Job.PipelineID != p1.ID {
			t.Fatalf("a jobs-only client of %s got %s %+v", p1.ID, m.Type, m)
		}
	}
	_ = p2
}

func TestWS_ReconnectResumes(t *testing.T) {
	ts := newLiveServer(t, nil)
	registerNode(ts, "n1")
	c := dialWS(t, ts, httpapi.WSSubscribe{Subscribe: allTopics}, nil)
	p1 := runPipeline(ts, "n1", twoJobs)
	c.until(pipelineDone(p1.ID))
	seen := c.last
	c.conn.Close()

	// While disconnected, another pipeline runs.
	p2 := runPipeline(ts, "n1", twoJobs)
	c2 := dialWS(t, ts, httpapi.WSSubscribe{Subscribe: allTopics, Index: seen}, nil)
	msgs := c2.until(pipelineDone(p2.ID))
	events := 0
	for _, m := range msgs {
		if m.Type == "event" {
			events++
			if m.Event.Index <= seen {
				t.Fatalf("resumed client got event %s at or before index %d", m.Event.ID(), seen)
			}
		}
		if m.Type == "pipeline" && m.Pipeline.ID == p1.ID {
			t.Fatalf("resumed client got pipeline %s again", p1.ID)
		}
	}
	want := 0
	evs, _ := ts.srv.State().EventsAfter(nil, seen, 1<<64-1, 0)
	for _, e := range evs {
		if e.Index <= c2.last {
			want++
		}
	}
	if events != want {
		t.Fatalf("resumed client got %d events, want the %d after index %d", events, want, seen)
	}
}

func TestWS_ResyncWhenIndexPruned(t *testing.T) {
	ts := newLiveServer(t, nil)
	ts.srv.State().SetEventLimit(3)
	registerNode(ts, "n1")
	runPipeline(ts, "n1", twoJobs)
	c := dialWS(t, ts, httpapi.WSSubscribe{Subscribe: allTopics, Index: 1}, nil)
	if m := c.read(); m.Type != "resync" {
		t.Fatalf("got %+v, want resync", m)
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := c.conn.ReadMessage()
	if !websocket.IsCloseError(err, httpapi.WSCloseResync) {
		t.Fatalf("after resync: %v, want close %d", err, httpapi.WSCloseResync)
	}
}

// TestWS_SlowClientDropped connects a client that stops reading: its queue
// fills, it gets a resync message and is dropped, while a client that
// reads gets everything.
func TestWS_SlowClientDropped(t *testing.T) {
	ts := newLiveServer(t, nil)
	// A long write timeout: the slow client's blocked write must wait
	// until the test reads, however loaded the machine.
	ts.srv.live.hub.SetOptions(func(o *httpapi.FeedOptions) { o.QueueLen = 2; o.SockBuffer = 4096; o.WriteTimeout = time.Minute })
	small := &websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tcp, ok := c.(*net.TCPConn); ok {
			_ = tcp.SetReadBuffer(4096)
		}
		return c, err
	}, ReadBufferSize: 1024}
	slow := dialWS(t, ts, httpapi.WSSubscribe{Subscribe: allTopics}, small)
	fast := dialWS(t, ts, httpapi.WSSubscribe{Subscribe: allTopics}, nil)

	var fastJobs atomic.Int64
	fastDone := make(chan error, 1)
	const pipelines = 150
	go func() {
		seen := map[string]bool{}
		for {
			_ = fast.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			var m httpapi.WSMessage
			if err := fast.conn.ReadJSON(&m); err != nil {
				fastDone <- err
				return
			}
			if m.Type == "resync" {
				fastDone <- fmt.Errorf("the fast client got a resync")
				return
			}
			if m.Type == "job" && !seen[m.Job.ID] {
				seen[m.Job.ID] = true
				if fastJobs.Add(1) == 2*pipelines {
					fastDone <- nil
					return
				}
			}
		}
	}()
	for i := 0; i < pipelines; i++ {
		if _, code := submit(ts, twoJobs, nil); code != http.StatusCreated {
			t.Fatalf("submit: HTTP %d", code)
		}
	}
	if err := <-fastDone; err != nil {
		t.Fatalf("fast client: %v (after %d jobs)", err, fastJobs.Load())
	}
	// The slow client now reads what was buffered, then the resync.
	for {
		_ = slow.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		var m httpapi.WSMessage
		if err := slow.conn.ReadJSON(&m); err != nil {
			t.Fatalf("slow client closed without a resync: %v", err)
		}
		if m.Type == "resync" {
			if !strings.Contains(m.Reason, "too slow") {
				t.Fatalf("resync reason %q", m.Reason)
			}
			break
		}
	}
	waitFor(t, "the slow client to be dropped", func() bool { return ts.srv.live.hub.ClientCount() == 1 })
}

func TestWS_PingKeepalive(t *testing.T) {
	ts := newLiveServer(t, nil)
	ts.srv.live.hub.SetOptions(func(o *httpapi.FeedOptions) { o.PingEvery = 30 * time.Millisecond })
	c := dialWS(t, ts, httpapi.WSSubscribe{Subscribe: []string{"nodes"}}, nil)
	pings := make(chan struct{}, 16)
	c.conn.SetPingHandler(func(data string) error {
		select {
		case pings <- struct{}{}:
		default:
		}
		return c.conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	go func() {
		for {
			if _, _, err := c.conn.ReadMessage(); err != nil {
				return
			}
		}
	}()
	for i := 0; i < 3; i++ {
		select {
		case <-pings:
		case <-time.After(5 * time.Second):
			t.Fatalf("ping %d did not come", i+1)
		}
	}
	// Still connected after several ping periods: pongs keep it alive.
	if ts.srv.live.hub.ClientCount() != 1 {
		t.Fatal("client was dropped although it answered pings")
	}
}

func TestWS_BadRequests(t *testing.T) {
	ts := newLiveServer(t, nil)
	if r := ts.do("GET", "/v1/ws", nil, nil, nil); r.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("plain GET /v1/ws = HTTP %d, want 426", r.StatusCode)
	}
	url := "ws" + strings.TrimPrefix(ts.web.URL, "http") + "/v1/ws"
	conn, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.WriteJSON(map[string]any{"subscribe": []string{"widgets"}})
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err = conn.ReadMessage()
	if !websocket.IsCloseError(err, websocket.ClosePolicyViolation) || !strings.Contains(err.Error(), "widgets") {
		t.Fatalf("unknown topic: %v, want a policy-violation close naming it", err)
	}
}
