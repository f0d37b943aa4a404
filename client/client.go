// Package client is the client agent that runs on a build host: it
// fingerprints the host, registers it as a node with the servers, watches the
// node's allocations with a blocking query, and runs each allocated job in an
// ephemeral worker through a driver — steps in order, logs shipped, progress
// reported — then destroys the worker. It talks to the servers only through
// the api package and to workers only through drivers.Driver.
//
// One Client serves one node. Its goroutines:
//
//   - Run's goroutine: registration, restart recovery, then the watch loop;
//   - the re-fingerprint loop (driver health every 30 s);
//   - the heartbeat loop (heartbeat.go) and, with a gossip pool, the
//     gossip loop that publishes the node record (node_record_gossip.go);
//   - one allocRunner per allocation being run here (alloc_runner.go), each
//     with its own log shipper goroutine (log_shipper.go).
//
// The map of runners is guarded by Client.mu; an allocation is started at
// most once per Client (see reconcile).
package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ciplat/ciplat/api"
	"github.com/ciplat/ciplat/drivers"
)

// Timing of the client's conversations with servers.
const (
	// watchWait is how long one blocking query of the node's allocations
	// may wait on the server for a change.
	watchWait = 5 * time.Minute
	// fingerprintInterval is how often driver health is re-checked.
	fingerprintInterval = 30 * time.Second
	// finalReportTimeout bounds final reports and log flushes once the
	// client is shutting down, so Run returns even when the servers are gone.
	finalReportTimeout = 2 * time.Second
	// destroyTimeout bounds one DestroyWorker call.
	destroyTimeout = 30 * time.Second
)

// Config configures a Client.
type Config struct {
	// Name is the node's name (-node); default the hostname.
	Name string
	// DataDir holds the client's state in DataDir/client: the node-id file
	// and one handle file per running allocation. Required.
	DataDir string
	// API talks to a server (in -dev, the same process over loopback HTTP).
	// Required.
	API *api.Client
	// Drivers is the explicit registry of drivers by name. At least one is
	// required. A job that names no driver runs on "exec" if it is here,
	// else on the first healthy driver in name order.
	Drivers map[string]drivers.Driver
	// Labels become node attributes "label.<k>" (from -label k=v).
	Labels map[string]string
	// Reserved is capacity kept back for the host itself (-reserve-cpu,
	// -reserve-memory).
	Reserved api.Resources
	// Gossip, if set, is the capacity gossip member the node record is
	// published through (node_record_gossip.go); nil: the client talks only HTTP.
	Gossip GossipPool
	// Logger receives the client's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock for timestamps; nil means time.Now.
	Now func() time.Time
	// LogBufferBytes bounds the log lines one allocation holds while the
	// servers are slow or unreachable (-log-buffer-bytes); 0 means
	// DefaultLogBufferBytes. Past it new lines are dropped and counted
	// (log_shipper.go).
	LogBufferBytes int64
}

// Client is the client agent of one node. Build it with New and start it
// with Run, once.
type Client struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	after    func(time.Duration) <-chan time.Time // timer source for backoffs and batching
	nodeID   string
	hostname string
	memoryMB int

	// fingerprintInterval, watchWait and heartbeatInterval are fields so
	// tests can shorten them.
	fingerprintInterval time.Duration
	watchWait           time.Duration
	heartbeatInterval   time.Duration

	lastNode   atomic.Pointer[api.Node] // latest fingerprint, for the gossip record
	gossipKick chan struct{}            // cap 1: publish the gossip record now

	ready      chan struct{} // closed once the node is registered
	reregister chan struct{} // cap 1: the servers lost the node record
	started    atomic.Bool

	// runCtx is Run's ctx: it ends when the client shuts down.
	runCtx context.Context
	wg     sync.WaitGroup // runners and other goroutines Run waits for

	mu       sync.Mutex
	health   map[string]*api.DriverInfo // last driver fingerprint, by name
	runners  map[string]*allocRunner    // allocations running here, by ID
	finished map[string]struct{}        // allocations that ran (or were recovered) here
	closing  bool                       // shutting down: start nothing new
}

// New checks cfg and loads (or creates) the node's ID. It starts nothing.
func New(cfg Config) (*Client, error) {
	if cfg.API == nil {
		return nil, errors.New("client: Config.API is required")
	}
	if cfg.DataDir == "" {
		return nil, errors.New("client: Config.DataDir is required (-data-dir)")
	}
	if len(cfg.Drivers) == 0 {
		return nil, errors.New("client: no drivers configured: enable at least one driver (exec, docker, ...)")
	}
	for name, d := range cfg.Drivers {
		if d == nil {
			return nil, fmt.Errorf("client: driver %q is nil", name)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.LogBufferBytes <= 0 {
		cfg.LogBufferBytes = DefaultLogBufferBytes
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	if cfg.Name == "" {
		cfg.Name = host
	}
	c := &Client{
		cfg:                 cfg,
		log:                 cfg.Logger,
		now:                 cfg.Now,
		after:               time.After,
		hostname:            host,
		fingerprintInterval: fingerprintInterval,
		watchWait:           watchWait,
		heartbeatInterval:   defaultHeartbeatInterval,
		gossipKick:          make(chan struct{}, 1),
		ready:               make(chan struct{}),
		reregister:          make(chan struct{}, 1),
		runners:             map[string]*allocRunner{},
		finished:            map[string]struct{}{},
	}
	if err := os.MkdirAll(c.allocsDir(), 0o700); err != nil {
		return nil, fmt.Errorf("client: cannot create state directory: %w", err)
	}
	if c.nodeID, err = loadOrCreateNodeID(c.stateDir()); err != nil {
		return nil, fmt.Errorf("client: node ID: %w", err)
	}
	c.log = c.log.With("node_id", c.nodeID)
	if c.memoryMB, err = hostMemoryMB(); err != nil {
		c.memoryMB = defaultMemoryMB
		c.log.Warn("cannot read host memory; assuming a default", "memory_mb", defaultMemoryMB, "err", err)
	}
	return c, nil
}

// NodeID is the node's ID, stable across restarts (DataDir/client/node-id).
func (c *Client) NodeID() string { return c.nodeID }

// Ready is closed once the node is registered with the servers. It is never
// closed if Run ends before registration succeeded.
func (c *Client) Ready() <-chan struct{} { return c.ready }

// Run fingerprints the host, registers the node (retrying until it
// succeeds), cleans up what a previous run left behind (see recover), then
// watches the node's allocations and runs them until ctx ends.
//
// When ctx ends, Run stops watching, cancels every runner and waits for all
// of them: each destroys its worker and makes one last report (bounded by
// finalReportTimeout, so a vanished server cannot hang shutdown). A job still
// running is reported FAILED ("client shut down while the job ran") so the
// servers retry it elsewhere per its policy; if that report could not be
// delivered, the handle file stays and the next Run reports it. So on return
// every worker Run started has been destroyed — none is left to a later run,
// except one whose DestroyWorker failed, which the next Run destroys from its
// handle file or as an orphan.
//
// Run returns nil once ctx ends, even before registration succeeded. It may
// be called once; a second call returns an error.
func (c *Client) Run(ctx context.Context) error {
	if !c.started.CompareAndSwap(false, true) {
		return errors.New("client: Run called twice")
	}
	c.runCtx = ctx
	defer c.shutdown()

	node := c.fingerprint(ctx)
	if err := c.register(ctx, node); err != nil {
		return nil // ctx ended before the servers answered
	}
	close(c.ready)

	allocs, index, err := c.initialAllocs(ctx)
	if err != nil {
		return nil
	}
	c.recover(ctx, allocs)

	c.setNode(node)
	c.wg.Go(func() { c.refingerprintLoop(ctx, node) })
	c.wg.Go(func() { c.heartbeatLoop(ctx) })
	if c.cfg.Gossip != nil {
		c.wg.Go(func() { c.gossipLoop(ctx) })
	}
	c.watch(ctx, allocs, index)
	return nil
}

// shutdown stops new runners, cancels the running ones and waits for every
// goroutine Run started.
func (c *Client) shutdown() {
	c.mu.Lock()
	c.closing = true
	for _, r := range c.runners {
		r.cancel()
	}
	c.mu.Unlock()
	c.wg.Wait()
}

// initialAllocs reads the node's allocations once without blocking (retrying
// until it works), for restart recovery.
func (c *Client) initialAllocs(ctx context.Context) ([]*api.Allocation, uint64, error) {
	b := newBackoff(100*time.Millisecond, 5*time.Second)
	for {
		allocs, meta, err := c.cfg.API.NodeAllocations(ctx, c.nodeID, nil)
		if err == nil {
			return allocs, meta.LastIndex, nil
		}
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		d := retryAfter(err, b.next())
		c.log.Warn("listing allocations failed; retrying", "err", err, "in", d.Round(time.Millisecond))
		if err := c.sleep(ctx, d); err != nil {
			return nil, 0, err
		}
	}
}

// watch reconciles allocs, then follows the node's allocations with blocking
// queries until ctx ends. Errors back off with jitter; a 404 (the servers
// lost the node, e.g. their state was reset) asks for a re-registration.
func (c *Client) watch(ctx context.Context, allocs []*api.Allocation, index uint64) {
	c.reconcile(allocs)
	b := newBackoff(100*time.Millisecond, 5*time.Second)
	for ctx.Err() == nil {
		qctx, cancel := context.WithTimeout(ctx, c.watchWait+30*time.Second)
		allocs, meta, err := c.cfg.API.NodeAllocations(qctx, c.nodeID, &api.QueryOptions{WaitIndex: index, WaitTime: c.watchWait})
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if api.IsStatus(err, 404) {
				c.requestReregister()
			}
			d := retryAfter(err, b.next())
			c.log.Warn("watching allocations failed; retrying", "err", err, "in", d.Round(time.Millisecond))
			if c.sleep(ctx, d) != nil {
				return
			}
			continue
		}
		switch {
		case meta.LastIndex == 0:
			// No index: the server does not block. Reconcile, then pace
			// the loop rather than spin.
			c.reconcile(allocs)
			if c.sleep(ctx, b.next()) != nil {
				return
			}
			continue
		case meta.LastIndex < index:
			// The servers' index went back (state restored): start over.
			index = 0
		case meta.LastIndex == index:
			// The wait timed out with no change.
			continue
		default:
			index = meta.LastIndex
		}
		b.reset()
		c.reconcile(allocs)
	}
}

// reconcile compares the servers' view of this node's allocations with what
// runs here:
//
//   - desired run, client pending, never seen here: start a runner;
//   - desired stop (or gone from the list) while running here: stop it;
//   - desired run, client running, but not running here and never run by
//     this client: the attempt was lost (a crash before its handle was
//     written, or a wiped data dir) — report it FAILED;
//   - desired stop, client running, not running here: nothing to stop, but
//     the servers count it against the node until told — report it complete.
//
// An allocation is started at most once per Client: runners and finished
// remember every allocation this client ran, so a list delivered twice, or
// a stale list that still shows an ended allocation as pending, starts
// nothing. finished forgets an allocation once the servers stop listing it.
func (c *Client) reconcile(allocs []*api.Allocation) {
	present := make(map[string]struct{}, len(allocs))
	var orphans []*api.AllocUpdate
	c.mu.Lock()
	defer func() {
		c.mu.Unlock()
		if len(orphans) > 0 {
			c.reportOrphans(orphans)
		}
	}()
	if c.closing {
		return
	}
	for _, a := range allocs {
		if a == nil || a.ID == "" {
			continue
		}
		present[a.ID] = struct{}{}
		if r, ok := c.runners[a.ID]; ok {
			if a.DesiredStatus == api.AllocDesiredStop {
				r.stop()
			}
			continue
		}
		if _, ok := c.finished[a.ID]; ok {
			continue
		}
		switch {
		case a.DesiredStatus == api.AllocDesiredRun && a.ClientStatus == api.AllocClientPending:
			c.startLocked(a)
		case a.DesiredStatus == api.AllocDesiredRun && a.ClientStatus == api.AllocClientRunning:
			c.finished[a.ID] = struct{}{}
			orphans = append(orphans, lostUpdate(a.ID))
		case a.DesiredStatus == api.AllocDesiredStop && a.ClientStatus == api.AllocClientRunning:
			c.finished[a.ID] = struct{}{}
			orphans = append(orphans, &api.AllocUpdate{AllocID: a.ID, ClientStatus: api.AllocClientComplete})
		}
	}
	for id, r := range c.runners {
		if _, ok := present[id]; !ok {
			r.stop()
		}
	}
	for id := range c.finished {
		if _, ok := present[id]; !ok {
			delete(c.finished, id)
		}
	}
}

// startLocked starts a runner for a; c.mu must be held.
func (c *Client) startLocked(a *api.Allocation) {
	r := newAllocRunner(c, a)
	c.runners[a.ID] = r
	c.kickGossip() // the load changed
	c.wg.Go(func() {
		r.run()
		c.mu.Lock()
		delete(c.runners, a.ID)
		c.finished[a.ID] = struct{}{}
		c.mu.Unlock()
		c.kickGossip()
	})
}

// lostReason is the reason given for an attempt a client restart lost.
const lostReason = "client restarted while the job ran"

// lostUpdate reports an attempt lost by a restart: FAILED with cause
// worker-lost, so the servers reschedule it per the job's reschedule policy
// (not its retries: the job did nothing wrong).
func lostUpdate(allocID string) *api.AllocUpdate {
	return &api.AllocUpdate{AllocID: allocID, ClientStatus: api.AllocClientFailed, JobState: api.StateFailed,
		Reason: lostReason, Cause: api.CauseWorkerLost}
}

// reportOrphans reports, in one call and in the background (Run waits for
// it), allocations the servers think run here but no runner has.
func (c *Client) reportOrphans(ups []*api.AllocUpdate) {
	for _, u := range ups {
		c.log.Warn("reporting an allocation this client does not run", "alloc_id", u.AllocID,
			"client_status", u.ClientStatus, "reason", u.Reason)
	}
	c.wg.Go(func() {
		ctx, cancel := c.reportCtx()
		defer cancel()
		_ = c.sendUpdates(ctx, ups)
	})
}

// sendUpdates reports updates in one call, retrying with backoff until the
// servers take them, refuse them (4xx), or ctx ends. When the servers refuse
// a call of several updates, each is sent alone, so one bad update does not
// sink the others; a single refused update is logged and dropped.
func (c *Client) sendUpdates(ctx context.Context, ups []*api.AllocUpdate) error {
	err := c.retry(ctx, "report allocation status", newBackoff(100*time.Millisecond, 5*time.Second),
		func(ctx context.Context) error { return c.cfg.API.UpdateAllocations(ctx, ups) })
	if err == nil || !permanent(err) {
		return err
	}
	if len(ups) > 1 {
		for _, u := range ups {
			if err := c.sendUpdates(ctx, []*api.AllocUpdate{u}); err != nil {
				return err
			}
		}
		return nil
	}
	if len(ups) == 0 {
		return nil
	}
	u := ups[0]
	c.log.Error("servers refused an allocation report; dropping it", "alloc_id", u.AllocID,
		"client_status", u.ClientStatus, "job_state", u.JobState, "err", err)
	return nil
}

// reportCtx returns the ctx for reports that must not be lost: it lives while
// the client runs and for finalReportTimeout after it shuts down.
func (c *Client) reportCtx() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(c.runCtx, func() {
		t := time.AfterFunc(finalReportTimeout, cancel)
		context.AfterFunc(ctx, func() { t.Stop() })
	})
	return ctx, func() { stop(); cancel() }
}
