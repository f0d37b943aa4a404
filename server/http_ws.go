package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hashicorp/go-memdb"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
	"github.com/ciplat/ciplat/server/httpapi"
)

// The WebSocket feed (/v1/ws) pushes what changed to the web UI: the client
// subscribes to topics and gets, for every batch of committed events, the
// events themselves and the new rows of the pipelines, jobs and nodes they
// touched. One hub goroutine per server reads the events table (a blocking
// query: no polling), encodes each message once and hands it to every
// subscribed client's bounded queue; a client whose queue is full is sent
// {"type":"resync"} and dropped, so a slow client never slows the others.

// WebSocket feed topics a client may subscribe to.
const (
	wsTopicEvents    = "events"
	wsTopicPipelines = "pipelines"
	wsTopicJobs      = "jobs"
	wsTopicNodes     = "nodes"
)

var wsTopics = []string{wsTopicEvents, wsTopicPipelines, wsTopicJobs, wsTopicNodes}

// wsCloseResync is the close code after a resync message.
const wsCloseResync = 4000

// wsOptions tune the feed; tests shorten them.
type wsOptions struct {
	// queueLen is how many batches a client may have waiting.
	queueLen int
	// pingEvery is the keepalive ping period; a client that has not
	// answered (pong or any message) within 2×pingEvery (at least 5s) is
	// dropped.
	pingEvery time.Duration
	// writeTimeout bounds one write to a client.
	writeTimeout time.Duration
	// maxCatchUp is how many events a reconnecting client may replay
	// before it is told to resync instead.
	maxCatchUp int
	// batch is how many events the hub reads at once.
	batch int
	// sockBuffer, when set, shrinks the socket's send buffer (tests make a
	// slow client's writes block sooner).
	sockBuffer int
	// maxClients caps the connected clients (Config.MaxWSClients);
	// negative means no cap.
	maxClients int
}

func defaultWSOptions() wsOptions {
	return wsOptions{queueLen: 64, pingEvery: 20 * time.Second, writeTimeout: 10 * time.Second,
		maxCatchUp: 20_000, batch: 2000}
}

// wsSubscribe is what a client sends, first and whenever it changes its
// mind: the topics, the index to resume after (the index of the last
// message it saw, or the index of the aggregated read it rendered), and
// optionally a pipeline ID that limits events and jobs to one pipeline.
type wsSubscribe struct {
	Subscribe []string `json:"subscribe"`
	Index     uint64   `json:"index"`
	Pipeline  string   `json:"pipeline,omitempty"`
}

// wsMessage is what the server sends. Type is "subscribed", "event",
// "pipeline", "job", "node" or "resync".
type wsMessage struct {
	Type     string           `json:"type"`
	Index    uint64           `json:"index"`
	Topics   []string         `json:"topics,omitempty"`
	Reason   string           `json:"reason,omitempty"`
	Event    *structs.Event   `json:"event,omitempty"`
	Pipeline *uiPipelineRow   `json:"pipeline,omitempty"`
	Job      *httpapi.JobView `json:"job,omitempty"`
	Node     *uiNodeRow       `json:"node,omitempty"`
}

// wsOut is one encoded message and what a client filters it by.
type wsOut struct {
	topic      string
	pipelineID string
	data       []byte
}

// wsHub fans out the events table to the WebSocket clients of one server.
//
// Concurrency: run is the one goroutine that reads the table and fills
// queues; register/unregister are called by client goroutines; mu guards
// clients, the cursor and opts.
type wsHub struct {
	s   *Server
	log *slog.Logger

	mu      sync.Mutex
	opts    wsOptions
	clients map[*wsClient]struct{}
	// cursor is the last event handed to the clients.
	cursor eventCursor

	// conns counts the connections handleWS admitted and not yet closed
	// (counted before the upgrade, so the cap holds under a burst);
	// rejected counts the upgrades refused with 503 at the cap.
	conns    atomic.Int64
	rejected atomic.Uint64
}

// admit takes one of max client slots; false means the cap is reached.
// Every true must be paired with a release.
func (h *wsHub) admit(max int) bool {
	if n := h.conns.Add(1); max > 0 && n > int64(max) {
		h.conns.Add(-1)
		h.rejected.Add(1)
		return false
	}
	return true
}

func (h *wsHub) release() { h.conns.Add(-1) }

// writeWSMetrics adds the WebSocket feed's gauges to GET /v1/metrics.
func (s *Server) writeWSMetrics(p promWriter) {
	hub := s.live.hub
	p.one("ciplat_ws_clients", "gauge", "WebSocket clients connected to this server.", float64(hub.conns.Load()))
	p.one("ciplat_ws_clients_max", "gauge", "Most WebSocket clients this server admits (-ws-max-clients; negative: no cap).", float64(hub.options().maxClients))
	p.one("ciplat_ws_rejected_total", "counter", "WebSocket upgrades refused with 503 because -ws-max-clients were connected.", float64(hub.rejected.Load()))
	if s.cfg.HTTPConns != nil {
		c := s.cfg.HTTPConns()
		p.one("ciplat_http_connections", "gauge", "Open connections of the agent's HTTP listener.", float64(c.Open))
		p.one("ciplat_http_connections_max", "gauge", "Most open HTTP connections the agent admits (-http-max-conns; 0: no cap).", float64(c.Max))
		p.one("ciplat_http_connections_rejected_total", "counter", "HTTP connections answered 503 and closed because -http-max-conns were open.", float64(c.Rejected))
	}
}

func newWSHub(s *Server) *wsHub {
	h := &wsHub{s: s, log: s.log.With("component", "ws"), opts: defaultWSOptions(), clients: map[*wsClient]struct{}{}}
	h.opts.maxClients = s.cfg.MaxWSClients
	if e, _ := s.State().LatestEvent(); e != nil {
		h.cursor = eventCursor{e.Index, e.Seq}
	}
	return h
}

// options returns the current options.
func (h *wsHub) options() wsOptions {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.opts
}

// setOptions changes the options for clients that connect afterwards.
func (h *wsHub) setOptions(fn func(*wsOptions)) {
	h.mu.Lock()
	fn(&h.opts)
	h.mu.Unlock()
}

// clientCount is how many clients are connected.
func (h *wsHub) clientCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// run reads new events and hands them out until ctx ends, then closes
// every client.
func (h *wsHub) run(ctx context.Context) {
	defer h.closeAll()
	var seen uint64
	for ctx.Err() == nil {
		h.mu.Lock()
		cur, batch := h.cursor, h.opts.batch
		h.mu.Unlock()
		var evs []*structs.Event
		var view *state.StateStore
		idx, err := h.s.State().BlockingQuery(ctx, seen, 5*time.Minute, func(ws memdb.WatchSet, st *state.StateStore) (uint64, error) {
			var err error
			evs, err = st.EventsAfter(ws, cur.index, cur.seq, batch)
			view = st
			idx := st.Index(state.TableEvents)
			if len(evs) > 0 && idx <= seen {
				idx = seen + 1
			}
			return idx, err
		})
		if err != nil {
			if ctx.Err() == nil {
				h.log.Error("read events", "err", err)
				sleepCtx(ctx, time.Second)
			}
			continue
		}
		seen = idx
		if len(evs) == batch {
			// Never split one index's events over two batches: a client
			// resumes by index, so it must have all of an index or none.
			cut := len(evs)
			for cut > 0 && evs[cut-1].Index == evs[len(evs)-1].Index {
				cut--
			}
			if cut > 0 {
				evs = evs[:cut]
			}
		}
		if len(evs) == 0 {
			continue
		}
		out := buildWSBatch(view, evs)
		last := evs[len(evs)-1]
		h.mu.Lock()
		h.cursor = eventCursor{last.Index, last.Seq}
		for c := range h.clients {
			c.offer(out)
		}
		h.mu.Unlock()
	}
}

// register adds a client and returns the cursor from which the hub will
// send it batches; everything up to the cursor is the client's catch-up.
func (h *wsHub) register(c *wsClient) eventCursor {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clients[c] = struct{}{}
	return h.cursor
}

func (h *wsHub) unregister(c *wsClient) {
	h.mu.Lock()
	delete(h.clients, c)
	h.mu.Unlock()
}

func (h *wsHub) closeAll() {
	h.mu.Lock()
	cs := make([]*wsClient, 0, len(h.clients))
	for c := range h.clients {
		cs = append(cs, c)
	}
	h.mu.Unlock()
	for _, c := range cs {
		c.kick("server shutting down")
	}
}

// buildWSBatch encodes the messages of a batch of events, read from the
// view: each event, then the current row of every pipeline, job and node
// the events touched (once each, in the order first touched).
func buildWSBatch(st *state.StateStore, evs []*structs.Event) []*wsOut {
	out := make([]*wsOut, 0, len(evs)*2)
	var pipelines, jobs, nodes []string
	add := func(list *[]string, id string) {
		if id != "" && !slices.Contains(*list, id) {
			*list = append(*list, id)
		}
	}
	index := evs[len(evs)-1].Index
	for _, e := range evs {
		out = append(out, encodeWS(wsTopicEvents, e.PipelineID, &wsMessage{Type: "event", Index: e.Index, Event: e}))
		add(&pipelines, e.PipelineID)
		add(&jobs, e.JobID)
		add(&nodes, e.NodeID)
	}
	for _, id := range pipelines {
		if p, _ := st.PipelineByID(nil, id); p != nil {
			out = append(out, encodeWS(wsTopicPipelines, id, &wsMessage{Type: "pipeline", Index: index, Pipeline: pipelineRow(st, p)}))
		}
	}
	for _, id := range jobs {
		if j, _ := st.JobByID(nil, id); j != nil {
			out = append(out, encodeWS(wsTopicJobs, j.PipelineID, &wsMessage{Type: "job", Index: index, Job: httpapi.NewJobView(j)}))
		}
	}
	for _, id := range nodes {
		if n, _ := st.NodeByID(nil, id); n != nil {
			if row, err := uiNodeOf(st, n); err == nil {
				out = append(out, encodeWS(wsTopicNodes, "", &wsMessage{Type: "node", Index: index, Node: row}))
			}
		}
	}
	return out
}

func encodeWS(topic, pipelineID string, m *wsMessage) *wsOut {
	b, _ := json.Marshal(m)
	return &wsOut{topic: topic, pipelineID: pipelineID, data: b}
}

// wsClient is one connected WebSocket.
type wsClient struct {
	hub  *wsHub
	conn *websocket.Conn
	opts wsOptions

	// send holds batches for the writer; full means the client is slow.
	send chan []*wsOut

	mu       sync.Mutex
	topics   map[string]bool
	pipeline string
	kicked   chan struct{}
	reason   string
}

// offer queues a batch without blocking; a full queue drops the client.
// Called with the hub's lock held.
func (c *wsClient) offer(batch []*wsOut) {
	c.mu.Lock()
	topics, pipeline := c.topics, c.pipeline
	c.mu.Unlock()
	mine := make([]*wsOut, 0, len(batch))
	for _, m := range batch {
		if topics[m.topic] && (pipeline == "" || m.topic == wsTopicNodes || m.pipelineID == pipeline) {
			mine = append(mine, m)
		}
	}
	if len(mine) == 0 {
		return
	}
	select {
	case c.send <- mine:
	default:
		c.kick("too slow: its send queue is full")
	}
}

// kick ends the client with a resync message; only the first reason counts.
func (c *wsClient) kick(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.kicked:
	default:
		c.reason = reason
		close(c.kicked)
	}
}

func (c *wsClient) subscribe(sub *wsSubscribe) error {
	topics := map[string]bool{}
	for _, t := range sub.Subscribe {
		if !slices.Contains(wsTopics, t) {
			return fmt.Errorf("unknown topic %q: subscribe to any of %v", t, wsTopics)
		}
		topics[t] = true
	}
	if len(topics) == 0 {
		return fmt.Errorf("subscribe to at least one of %v", wsTopics)
	}
	c.mu.Lock()
	c.topics, c.pipeline = topics, sub.Pipeline
	c.mu.Unlock()
	return nil
}

var wsUpgrader = websocket.Upgrader{
	ReadBufferSize:  4 << 10,
	WriteBufferSize: 16 << 10,
	// The UI is served by the same agent; other origins are refused by the
	// default same-origin check.
}

// handleWS is GET /v1/ws, the WebSocket feed.
func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) (any, error) {
	if !websocket.IsWebSocketUpgrade(r) {
		return nil, &httpapi.HTTPError{Code: http.StatusUpgradeRequired, Msg: "GET /v1/ws is a WebSocket: connect with a WebSocket client and send {\"subscribe\": [\"pipelines\", \"jobs\", \"nodes\", \"events\"], \"index\": N}"}
	}
	hub := s.live.hub
	opts := hub.options()
	if !hub.admit(opts.maxClients) {
		w.Header().Set("Retry-After", "5")
		return nil, &httpapi.HTTPError{Code: http.StatusServiceUnavailable, Msg: fmt.Sprintf(
			"this server already serves %d WebSocket clients (-ws-max-clients): retry later or connect to another server", opts.maxClients)}
	}
	conn, err := wsUpgrader.Upgrade(w, r, nil)
	if err != nil {
		hub.release()
		return httpapi.Streamed{}, nil // the upgrader answered the client
	}
	if tcp, ok := conn.NetConn().(*net.TCPConn); ok && opts.sockBuffer > 0 {
		_ = tcp.SetWriteBuffer(opts.sockBuffer)
	}
	c := &wsClient{hub: hub, conn: conn, opts: opts, send: make(chan []*wsOut, opts.queueLen), kicked: make(chan struct{})}
	go c.serve(s)
	return httpapi.Streamed{}, nil
}

// serve runs one client: subscribe, catch up, then write what the hub
// queues while a reader goroutine handles pongs and re-subscriptions.
func (c *wsClient) serve(s *Server) {
	defer c.hub.release()
	defer func() { _ = c.conn.Close() }()
	c.conn.SetReadLimit(64 << 10)
	_ = c.conn.SetReadDeadline(time.Now().Add(max(2*c.opts.pingEvery, 10*time.Second)))
	var sub wsSubscribe
	if err := c.conn.ReadJSON(&sub); err != nil {
		c.closeWith(websocket.CloseProtocolError, "send {\"subscribe\": [...], \"index\": N} first")
		return
	}
	if err := c.subscribe(&sub); err != nil {
		c.closeWith(websocket.ClosePolicyViolation, err.Error())
		return
	}
	hub := c.hub
	live := hub.register(c)
	defer hub.unregister(c)

	_ = c.write(&wsMessage{Type: "subscribed", Index: max(live.index, sub.Index), Topics: sub.Subscribe})
	// Catch up from the client's index to where the hub is.
	st := s.State()
	if sub.Index > 0 && sub.Index < live.index {
		if pruned := st.EventsPrunedThrough(); pruned > sub.Index {
			c.kick(fmt.Sprintf("events after index %d are no longer kept", sub.Index))
		} else if evs, err := catchUp(st, sub.Index, live, c.opts.maxCatchUp); err != nil {
			c.kick(err.Error())
		} else if len(evs) > 0 {
			c.offerFront(buildWSBatch(st, evs))
		}
	}

	done := make(chan struct{})
	go c.readLoop(done)
	ping := time.NewTicker(c.opts.pingEvery)
	defer ping.Stop()
	for {
		select {
		case <-c.kicked: // a kick wins over queued batches
			c.resync()
			return
		default:
		}
		select {
		case batch := <-c.send:
			for _, m := range batch {
				if err := c.writeRaw(m.data); err != nil {
					return
				}
			}
		case <-ping.C:
			if err := c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.opts.writeTimeout)); err != nil {
				return
			}
		case <-c.kicked:
			c.resync()
			return
		case <-done:
			return
		}
	}
}

// resync tells a kicked client to load the state again (from the index it
// names) and reconnect, then closes the connection.
func (c *wsClient) resync() {
	c.mu.Lock()
	reason := c.reason
	c.mu.Unlock()
	c.hub.mu.Lock()
	index := c.hub.cursor.index
	c.hub.mu.Unlock()
	_ = c.write(&wsMessage{Type: "resync", Index: index, Reason: reason})
	c.closeWith(wsCloseResync, "resync")
}

// catchUp reads the events after index up to (and including) the hub's
// cursor.
func catchUp(st *state.StateStore, index uint64, to eventCursor, limit int) ([]*structs.Event, error) {
	evs, err := st.EventsAfter(nil, index, math.MaxUint64, limit+1)
	if err != nil {
		return nil, err
	}
	end := len(evs)
	for i, e := range evs {
		if e.After(to.index, to.seq) {
			end = i
			break
		}
	}
	if end > limit {
		return nil, fmt.Errorf("more than %d events after index %d: load the state again", limit, index)
	}
	return evs[:end], nil
}

// offerFront writes a catch-up batch before anything the hub queued.
func (c *wsClient) offerFront(batch []*wsOut) {
	c.mu.Lock()
	topics, pipeline := c.topics, c.pipeline
	c.mu.Unlock()
	for _, m := range batch {
		if topics[m.topic] && (pipeline == "" || m.topic == wsTopicNodes || m.pipelineID == pipeline) {
			if err := c.writeRaw(m.data); err != nil {
				c.kick(err.Error())
				return
			}
		}
	}
}

// readLoop reads what the client sends (pongs, new subscriptions) and
// closes done when the connection ends or stays silent too long.
func (c *wsClient) readLoop(done chan struct{}) {
	defer close(done)
	wait := max(2*c.opts.pingEvery, 5*time.Second)
	_ = c.conn.SetReadDeadline(time.Now().Add(wait))
	c.conn.SetPongHandler(func(string) error {
		return c.conn.SetReadDeadline(time.Now().Add(wait))
	})
	for {
		var sub wsSubscribe
		if err := c.conn.ReadJSON(&sub); err != nil {
			return
		}
		_ = c.conn.SetReadDeadline(time.Now().Add(wait))
		if len(sub.Subscribe) > 0 {
			if err := c.subscribe(&sub); err != nil {
				c.kick(err.Error())
			}
		}
	}
}

func (c *wsClient) write(m *wsMessage) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return c.writeRaw(b)
}

func (c *wsClient) writeRaw(b []byte) error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(c.opts.writeTimeout))
	return c.conn.WriteMessage(websocket.TextMessage, b)
}

func (c *wsClient) closeWith(code int, text string) {
	_ = c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
}
