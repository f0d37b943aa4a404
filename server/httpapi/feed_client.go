package httpapi

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

// wsClient is one connected WebSocket.
type wsClient struct {
	hub  *Feed
	conn *websocket.Conn
	opts FeedOptions

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

func (c *wsClient) subscribe(sub *WSSubscribe) error {
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
func (a *API) handleWS(w http.ResponseWriter, r *http.Request) (any, error) {
	if !websocket.IsWebSocketUpgrade(r) {
		return nil, &HTTPError{Code: http.StatusUpgradeRequired, Msg: "GET /v1/ws is a WebSocket: connect with a WebSocket client and send {\"subscribe\": [\"pipelines\", \"jobs\", \"nodes\", \"events\"], \"index\": N}"}
	}
	hub := a.b.Feed()
	opts := hub.options()
	if !hub.admit(opts.MaxClients) {
		w.Header().Set("Retry-After", "5")
		return nil, &HTTPError{Code: http.StatusServiceUnavailable, Msg: fmt.Sprintf(
			"this server already serves %d WebSocket clients (-ws-max-clients): retry later or connect to another server", opts.MaxClients)}
	}
	conn, err := wsUpgrader.Upgrade(w, r, nil)
	if err != nil {
		hub.release()
		return Streamed{}, nil // the upgrader answered the client
	}
	if tcp, ok := conn.NetConn().(*net.TCPConn); ok && opts.SockBuffer > 0 {
		_ = tcp.SetWriteBuffer(opts.SockBuffer)
	}
	c := &wsClient{hub: hub, conn: conn, opts: opts, send: make(chan []*wsOut, opts.QueueLen), kicked: make(chan struct{})}
	go c.serve()
	return Streamed{}, nil
}

// serve runs one client: subscribe, catch up, then write what the hub
// queues while a reader goroutine handles pongs and re-subscriptions.
func (c *wsClient) serve() {
	defer c.hub.release()
	defer func() { _ = c.conn.Close() }()
	c.conn.SetReadLimit(64 << 10)
	_ = c.conn.SetReadDeadline(time.Now().Add(max(2*c.opts.PingEvery, 10*time.Second)))
	var sub WSSubscribe
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

	_ = c.write(&WSMessage{Type: "subscribed", Index: max(live.index, sub.Index), Topics: sub.Subscribe})
	// Catch up from the client's index to where the hub is.
	st := hub.state()
	if sub.Index > 0 && sub.Index < live.index {
		if pruned := st.EventsPrunedThrough(); pruned > sub.Index {
			c.kick(fmt.Sprintf("events after index %d are no longer kept", sub.Index))
		} else if evs, err := catchUp(st, sub.Index, live, c.opts.MaxCatchUp); err != nil {
			c.kick(err.Error())
		} else if len(evs) > 0 {
			c.offerFront(buildWSBatch(st, evs))
		}
	}

	done := make(chan struct{})
	go c.readLoop(done)
	ping := time.NewTicker(c.opts.PingEvery)
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
			if err := c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.opts.WriteTimeout)); err != nil {
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
	_ = c.write(&WSMessage{Type: "resync", Index: index, Reason: reason})
	c.closeWith(WSCloseResync, "resync")
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
	wait := max(2*c.opts.PingEvery, 5*time.Second)
	_ = c.conn.SetReadDeadline(time.Now().Add(wait))
	c.conn.SetPongHandler(func(string) error {
		return c.conn.SetReadDeadline(time.Now().Add(wait))
	})
	for {
		var sub WSSubscribe
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

func (c *wsClient) write(m *WSMessage) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return c.writeRaw(b)
}

func (c *wsClient) writeRaw(b []byte) error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout))
	return c.conn.WriteMessage(websocket.TextMessage, b)
}

func (c *wsClient) closeWith(code int, text string) {
	_ = c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
}
