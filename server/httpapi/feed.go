package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
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

// WSCloseResync is the close code after a resync message (the UI reconnects
// from the index it names).
const WSCloseResync = 4000

// FeedOptions tune the feed; tests shorten them.
type FeedOptions struct {
	// QueueLen is how many batches a client may have waiting.
	QueueLen int
	// PingEvery is the keepalive ping period; a client that has not
	// answered (pong or any message) within 2×PingEvery (at least 5s) is
	// dropped.
	PingEvery time.Duration
	// WriteTimeout bounds one write to a client.
	WriteTimeout time.Duration
	// MaxCatchUp is how many events a reconnecting client may replay
	// before it is told to resync instead.
	MaxCatchUp int
	// Batch is how many events the hub reads at once.
	Batch int
	// SockBuffer, when set, shrinks the socket's send buffer (tests make a
	// slow client's writes block sooner).
	SockBuffer int
	// MaxClients caps the connected clients (Config.MaxWSClients);
	// negative means no cap.
	MaxClients int
}

func defaultFeedOptions() FeedOptions {
	return FeedOptions{QueueLen: 64, PingEvery: 20 * time.Second, WriteTimeout: 10 * time.Second,
		MaxCatchUp: 20_000, Batch: 2000}
}

// WSSubscribe is what a client sends, first and whenever it changes its
// mind: the topics, the index to resume after (the index of the last
// message it saw, or the index of the aggregated read it rendered), and
// optionally a pipeline ID that limits events and jobs to one pipeline.
type WSSubscribe struct {
	Subscribe []string `json:"subscribe"`
	Index     uint64   `json:"index"`
	Pipeline  string   `json:"pipeline,omitempty"`
}

// WSMessage is what the server sends. Type is "subscribed", "event",
// "pipeline", "job", "node" or "resync".
type WSMessage struct {
	Type     string         `json:"type"`
	Index    uint64         `json:"index"`
	Topics   []string       `json:"topics,omitempty"`
	Reason   string         `json:"reason,omitempty"`
	Event    *structs.Event `json:"event,omitempty"`
	Pipeline *pipelineRow   `json:"pipeline,omitempty"`
	Job      *jobView       `json:"job,omitempty"`
	Node     *uiNodeRow     `json:"node,omitempty"`
}

// wsOut is one encoded message and what a client filters it by.
type wsOut struct {
	topic      string
	pipelineID string
	data       []byte
}

// Feed fans out the events table to the WebSocket clients of one server.
//
// Concurrency: Run is the one goroutine that reads the table and fills
// queues; register/unregister are called by client goroutines; mu guards
// clients, the cursor and opts. Stats, ClientCount and SetOptions may be
// called from any goroutine.
type Feed struct {
	state func() *state.StateStore
	log   *slog.Logger

	mu      sync.Mutex
	opts    FeedOptions
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
func (h *Feed) admit(max int) bool {
	if n := h.conns.Add(1); max > 0 && n > int64(max) {
		h.conns.Add(-1)
		h.rejected.Add(1)
		return false
	}
	return true
}

func (h *Feed) release() { h.conns.Add(-1) }

// FeedStats are the feed's counters, for GET /v1/metrics.
type FeedStats struct {
	// Conns counts the connections admitted and not yet closed.
	Conns int64
	// MaxClients is the cap (-ws-max-clients; negative: no cap).
	MaxClients int
	// Rejected counts the upgrades refused with 503 at the cap.
	Rejected uint64
}

// Stats reads the feed's counters.
func (h *Feed) Stats() FeedStats {
	return FeedStats{Conns: h.conns.Load(), MaxClients: h.options().MaxClients, Rejected: h.rejected.Load()}
}

// NewFeed returns the feed of one server over its state store (st is
// called for every read: a snapshot restore swaps the store). maxClients
// caps the connected clients (-ws-max-clients; negative: no cap). Run it
// with Run.
func NewFeed(st func() *state.StateStore, log *slog.Logger, maxClients int) *Feed {
	h := &Feed{state: st, log: log.With("component", "ws"), opts: defaultFeedOptions(), clients: map[*wsClient]struct{}{}}
	h.opts.MaxClients = maxClients
	if e, _ := st().LatestEvent(); e != nil {
		h.cursor = eventCursor{e.Index, e.Seq}
	}
	return h
}

// options returns the current options.
func (h *Feed) options() FeedOptions {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.opts
}

// SetOptions changes the options for clients that connect afterwards
// (tests shorten them).
func (h *Feed) SetOptions(fn func(*FeedOptions)) {
	h.mu.Lock()
	fn(&h.opts)
	h.mu.Unlock()
}

// ClientCount is how many clients are connected.
func (h *Feed) ClientCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// Run reads new events and hands them out until ctx ends, then closes
// every client.
func (h *Feed) Run(ctx context.Context) {
	defer h.closeAll()
	var seen uint64
	for ctx.Err() == nil {
		h.mu.Lock()
		cur, batch := h.cursor, h.opts.Batch
		h.mu.Unlock()
		var evs []*structs.Event
		var view *state.StateStore
		idx, err := h.state().BlockingQuery(ctx, seen, 5*time.Minute, func(ws memdb.WatchSet, st *state.StateStore) (uint64, error) {
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
func (h *Feed) register(c *wsClient) eventCursor {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clients[c] = struct{}{}
	return h.cursor
}

func (h *Feed) unregister(c *wsClient) {
	h.mu.Lock()
	delete(h.clients, c)
	h.mu.Unlock()
}

func (h *Feed) closeAll() {
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
		out = append(out, encodeWS(wsTopicEvents, e.PipelineID, &WSMessage{Type: "event", Index: e.Index, Event: e}))
		add(&pipelines, e.PipelineID)
		add(&jobs, e.JobID)
		add(&nodes, e.NodeID)
	}
	for _, id := range pipelines {
		if p, _ := st.PipelineByID(nil, id); p != nil {
			out = append(out, encodeWS(wsTopicPipelines, id, &WSMessage{Type: "pipeline", Index: index, Pipeline: newPipelineRow(st, p)}))
		}
	}
	for _, id := range jobs {
		if j, _ := st.JobByID(nil, id); j != nil {
			out = append(out, encodeWS(wsTopicJobs, j.PipelineID, &WSMessage{Type: "job", Index: index, Job: newJobView(j)}))
		}
	}
	for _, id := range nodes {
		if n, _ := st.NodeByID(nil, id); n != nil {
			if row, err := uiNodeOf(st, n); err == nil {
				out = append(out, encodeWS(wsTopicNodes, "", &WSMessage{Type: "node", Index: index, Node: row}))
			}
		}
	}
	return out
}

func encodeWS(topic, pipelineID string, m *WSMessage) *wsOut {
	b, _ := json.Marshal(m)
	return &wsOut{topic: topic, pipelineID: pipelineID, data: b}
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
