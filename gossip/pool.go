package gossip

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
)

// Member statuses as Pool.Members reports them.
const (
	StatusAlive = "alive"
	StatusDead  = "dead"
	StatusLeft  = "left"
)

// Config configures a Pool.
type Config struct {
	// Name is the member's name, unique in the pool. Use NewName: a fresh
	// name per process start means a restarted agent never collides with
	// the dead member it replaces (whose address may differ).
	Name string
	// BindAddr is host:port for gossip, TCP and UDP; port 0 picks a free
	// port. Default "127.0.0.1:0".
	BindAddr string
	// BindFallback lets the member bind a free port on BindAddr's host
	// when BindAddr's port is held by another process (the agent's default
	// port, never one an operator chose). It binds first and then
	// advertises what it bound (Addr), so agents starting at once on one
	// host never both claim the default.
	BindFallback bool
	// AdvertiseAddr is host:port other members reach this one on; empty
	// means BindAddr (which must then name a concrete IP).
	AdvertiseAddr string
	// Role is RoleServer or RoleClient.
	Role string
	// NodeID is the client node this member speaks for, if known already
	// (SetLocal sets it otherwise).
	NodeID string
	// HTTPAddr is a server's HTTP API address, gossiped in its metadata.
	HTTPAddr string
	// SecretKey, when set, encrypts and authenticates all gossip (AES-GCM;
	// 16, 24 or 32 bytes). Members with another key cannot join.
	SecretKey []byte
	// Local uses memberlist's loopback timings (-dev, tests) instead of
	// its LAN ones.
	Local bool
	// Tune, if set, adjusts the memberlist configuration last (tests
	// shorten failure detection with it).
	Tune func(*memberlist.Config)
	// Logger receives memberlist's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock for departure times; nil means time.Now.
	Now func() time.Time
}

// Member is one member of the pool as this member sees it.
type Member struct {
	Name     string `json:"name"`
	Addr     string `json:"addr"`
	Status   string `json:"status"`
	Role     string `json:"role"`
	NodeID   string `json:"node_id,omitempty"`
	HTTPAddr string `json:"http_addr,omitempty"`
	// Since is when this member saw a dead or left member go.
	Since time.Time `json:"since,omitzero"`
}

// Alive reports whether the member is alive (or only suspected: memberlist
// keeps suspects in its member list until they are declared dead).
func (m Member) Alive() bool { return m.Status == StatusAlive }

// Pool is this agent's member of the gossip pool.
//
// Lifecycle: New creates and starts the member; Join adds it to a pool;
// Leave announces a graceful departure; Shutdown stops it (without Leave,
// the others see it fail). Every method is safe for concurrent use.
// memberlist calls the delegate methods on its own goroutines; they never
// block on anything but the pool's mutex.
type Pool struct {
	cfg   Config
	ml    *memberlist.Memberlist
	queue *memberlist.TransmitLimitedQueue
	now   func() time.Time

	mu       sync.Mutex
	meta     Meta
	local    *NodeRecord            // the record this member publishes, if any
	records  map[string]*NodeRecord // by node ID, the highest version seen
	alive    map[string]Member      // living members, by name (from memberlist's events)
	leaving  map[string]bool        // living members that announced their leave
	departed map[string]Member      // dead or left members, by name
	subs     map[chan struct{}]struct{}
}

// maxDeparted bounds the departed members a pool remembers.
const maxDeparted = 1024

// NewName returns a member name for an agent: prefix, a dash and a random
// suffix, so two starts of one agent never share a name.
func NewName(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// ParseKey decodes an -encrypt key: base64 of 16, 24 or 32 bytes.
func ParseKey(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("gossip key: not base64 (%v); make one with: head -c 32 /dev/urandom | base64", err)
	}
	switch len(k) {
	case 16, 24, 32:
		return k, nil
	}
	return nil, fmt.Errorf("gossip key: %d bytes; want 16, 24 or 32 (make one with: head -c 32 /dev/urandom | base64)", len(k))
}

// New starts a member. It is alone until Join.
func New(cfg Config) (*Pool, error) {
	if cfg.Name == "" {
		return nil, errors.New("gossip: Config.Name is required")
	}
	if cfg.Role != RoleServer && cfg.Role != RoleClient {
		return nil, fmt.Errorf("gossip: role %q: want %q or %q", cfg.Role, RoleServer, RoleClient)
	}
	if cfg.BindAddr == "" {
		cfg.BindAddr = "127.0.0.1:0"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	host, port, err := splitHostPort(cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("gossip address %q: %w", cfg.BindAddr, err)
	}
	mc := memberlist.DefaultLANConfig()
	if cfg.Local {
		mc = memberlist.DefaultLocalConfig()
		// The loopback default of 2 retransmits sometimes lets news (a
		// leave, a record) die out before it reached everyone, leaving it
		// to the next push/pull; the LAN default is 4.
		mc.RetransmitMult = 4
	}
	mc.Name = cfg.Name
	mc.BindAddr = host
	mc.BindPort = port
	if cfg.AdvertiseAddr != "" {
		ah, ap, err := splitHostPort(cfg.AdvertiseAddr)
		if err != nil {
			return nil, fmt.Errorf("gossip advertise address %q: %w", cfg.AdvertiseAddr, err)
		}
		mc.AdvertiseAddr, mc.AdvertisePort = ah, ap
	}
	if len(cfg.SecretKey) > 0 {
		mc.SecretKey = cfg.SecretKey
	}
	mc.Logger = newStdLogger(cfg.Logger.With("component", "gossip"))
	mc.LogOutput = nil
	p := &Pool{
		cfg:      cfg,
		now:      cfg.Now,
		meta:     Meta{Role: cfg.Role, NodeID: cfg.NodeID, HTTPAddr: cfg.HTTPAddr},
		records:  map[string]*NodeRecord{},
		alive:    map[string]Member{},
		leaving:  map[string]bool{},
		departed: map[string]Member{},
		subs:     map[chan struct{}]struct{}{},
	}
	d := &delegate{p: p}
	mc.Delegate = d
	mc.Events = d
	if cfg.Tune != nil {
		cfg.Tune(mc)
	}
	// Each member that learns a record passes it on RetransmitMult×log(N)
	// times, as memberlist does with its own news.
	p.queue = &memberlist.TransmitLimitedQueue{NumNodes: p.numMembers, RetransmitMult: mc.RetransmitMult}
	ml, err := memberlist.Create(mc)
	if err != nil && cfg.BindFallback && mc.BindPort != 0 && strings.Contains(err.Error(), syscall.EADDRINUSE.Error()) {
		cfg.Logger.Warn("the gossip port is in use; binding a free one (servers tell clients the address)", "addr", cfg.BindAddr)
		mc.BindPort = 0
		ml, err = memberlist.Create(mc)
	}
	if err != nil {
		return nil, fmt.Errorf("gossip: start member on %s: %w", cfg.BindAddr, err)
	}
	p.ml = ml
	return p, nil
}

func splitHostPort(addr string) (string, int, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("want host:port: %w", err)
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("invalid port %q", ps)
	}
	return host, port, nil
}

// numMembers is the pool's size for the retransmit limit (this member and
// the living others).
func (p *Pool) numMembers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return max(len(p.alive), 1)
}

// Name is this member's name.
func (p *Pool) Name() string { return p.cfg.Name }

// Addr is the host:port other members reach this one on.
func (p *Pool) Addr() string { return p.ml.LocalNode().Address() }

// Join contacts the given members (host:port) and exchanges full state
// with them. It returns how many answered; an error when none did.
func (p *Pool) Join(addrs []string) (int, error) {
	if len(addrs) == 0 {
		return 0, errors.New("gossip: no address to join")
	}
	return p.ml.Join(addrs)
}

// Members lists the members this one knows: the living, then those it saw
// die or leave, by name.
func (p *Pool) Members() []Member {
	p.mu.Lock()
	out := make([]Member, 0, len(p.alive)+len(p.departed))
	for _, m := range p.alive {
		out = append(out, m)
	}
	for _, m := range p.departed {
		out = append(out, m)
	}
	p.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int {
		if a.Alive() != b.Alive() {
			if a.Alive() {
				return -1
			}
			return 1
		}
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}

// ServerAddrs lists the gossip addresses of the living servers.
func (p *Pool) ServerAddrs() []string {
	var out []string
	for _, m := range p.Members() {
		if m.Alive() && m.Role == RoleServer {
			out = append(out, m.Addr)
		}
	}
	return out
}

// Records returns a copy of every node record known, by node ID order.
func (p *Pool) Records() []*NodeRecord {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*NodeRecord, 0, len(p.records))
	for _, r := range p.records {
		out = append(out, r.Copy())
	}
	slices.SortFunc(out, func(a, b *NodeRecord) int {
		switch {
		case a.NodeID < b.NodeID:
			return -1
		case a.NodeID > b.NodeID:
			return 1
		}
		return 0
	})
	return out
}

// Record returns a copy of a node's record, or nil.
func (p *Pool) Record(nodeID string) *NodeRecord {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.records[nodeID].Copy()
}

// SetLocal publishes this member's node record: when it says something
// new, it gets a higher version and is broadcast at once. The first record
// (or one for another node ID) also updates the member's metadata, so the
// pool knows which node this member speaks for.
func (p *Pool) SetLocal(rec *NodeRecord) {
	if rec == nil || rec.NodeID == "" {
		return
	}
	p.mu.Lock()
	r := rec.Copy()
	r.Member = p.cfg.Name
	for name, d := range r.Drivers {
		if len(d.Reason) > maxReason {
			d.Reason = d.Reason[:maxReason]
			r.Drivers[name] = d
		}
	}
	if p.local != nil && p.local.NodeID == r.NodeID && sameContent(p.local, r) {
		p.mu.Unlock()
		return
	}
	r.Version = uint64(p.now().UnixNano())
	if p.local != nil && r.Version <= p.local.Version {
		r.Version = p.local.Version + 1
	}
	if cur := p.records[r.NodeID]; cur != nil && r.Version <= cur.Version {
		r.Version = cur.Version + 1
	}
	p.local = r
	p.records[r.NodeID] = r
	metaChanged := p.meta.NodeID != r.NodeID
	p.meta.NodeID = r.NodeID
	p.notifyLocked()
	msg := encodeRecord(r)
	p.mu.Unlock()

	p.queue.QueueBroadcast(&recordBroadcast{nodeID: r.NodeID, msg: msg})
	if metaChanged {
		if err := p.ml.UpdateNode(2 * time.Second); err != nil {
			p.cfg.Logger.Warn("gossip: announcing this member's node ID", "err", err)
		}
	}
}

// Subscribe returns a channel that receives (coalesced) a value after any
// change of members or records, and a function that ends the subscription.
func (p *Pool) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	p.mu.Lock()
	p.subs[ch] = struct{}{}
	p.mu.Unlock()
	return ch, func() {
		p.mu.Lock()
		delete(p.subs, ch)
		p.mu.Unlock()
	}
}

func (p *Pool) notifyLocked() {
	for ch := range p.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Leave tells the pool this member goes away on purpose, waiting at most
// timeout for the news to spread. memberlist reports a departure the same
// way whether the member failed or left, so the member first marks itself
// leaving in its metadata: the others then record it as left, not dead.
func (p *Pool) Leave(timeout time.Duration) error {
	p.mu.Lock()
	p.meta.Leaving = true
	p.mu.Unlock()
	if err := p.ml.UpdateNode(timeout / 2); err != nil {
		p.cfg.Logger.Debug("gossip: announcing the leave", "err", err)
	}
	return p.ml.Leave(timeout / 2)
}

// Shutdown stops the member. Without Leave first, the others see it fail.
func (p *Pool) Shutdown() error { return p.ml.Shutdown() }

// merge keeps rec if it is newer than what the pool has for its node and
// reports whether it did. A record for this member's own node published
// by another member is refuted with a higher version.
func (p *Pool) merge(rec *NodeRecord) (kept bool) {
	if rec == nil || rec.NodeID == "" {
		return false
	}
	p.mu.Lock()
	if l := p.local; l != nil && rec.NodeID == l.NodeID {
		if rec.Member == l.Member || rec.Version < l.Version {
			p.mu.Unlock()
			return false
		}
		// Someone speaks for this node with a newer version (an older
		// start of this agent whose clock ran ahead): outbid it.
		r := l.Copy()
		r.Version = rec.Version + 1
		p.local = r
		p.records[r.NodeID] = r
		p.notifyLocked()
		msg := encodeRecord(r)
		p.mu.Unlock()
		p.queue.QueueBroadcast(&recordBroadcast{nodeID: r.NodeID, msg: msg})
		return false
	}
	if cur := p.records[rec.NodeID]; cur != nil && cur.Version >= rec.Version {
		p.mu.Unlock()
		return false
	}
	p.records[rec.NodeID] = rec
	p.notifyLocked()
	p.mu.Unlock()
	return true
}

func encodeRecord(r *NodeRecord) []byte {
	b, _ := json.Marshal(r) // records always marshal
	return append([]byte{msgRecord}, b...)
}

// recordBroadcast is one record in the transmit queue. A newer record of
// the same node replaces an older one still queued (NamedBroadcast).
type recordBroadcast struct {
	nodeID string
	msg    []byte
}

var (
	_ memberlist.NamedBroadcast = (*recordBroadcast)(nil)
	_ memberlist.Delegate       = (*delegate)(nil)
	_ memberlist.EventDelegate  = (*delegate)(nil)
)

func (b *recordBroadcast) Name() string { return "node/" + b.nodeID }
func (b *recordBroadcast) Invalidates(o memberlist.Broadcast) bool {
	ob, ok := o.(*recordBroadcast)
	return ok && ob.nodeID == b.nodeID
}
func (b *recordBroadcast) Message() []byte { return b.msg }
func (b *recordBroadcast) Finished()       {}

// delegate is the pool's side of memberlist's Delegate and EventDelegate.
type delegate struct{ p *Pool }

// NodeMeta is the member's metadata.
func (d *delegate) NodeMeta(limit int) []byte {
	d.p.mu.Lock()
	b, _ := json.Marshal(d.p.meta)
	d.p.mu.Unlock()
	if len(b) > limit {
		b, _ = json.Marshal(Meta{Role: d.p.meta.Role, NodeID: d.p.meta.NodeID})
	}
	return b
}

// NotifyMsg takes a broadcast record; a new one is passed on, so news
// spreads epidemically and not only from its publisher.
func (d *delegate) NotifyMsg(b []byte) {
	if len(b) < 2 || b[0] != msgRecord {
		return
	}
	var rec NodeRecord
	if err := json.Unmarshal(b[1:], &rec); err != nil {
		return
	}
	if d.p.merge(&rec) {
		d.p.queue.QueueBroadcast(&recordBroadcast{nodeID: rec.NodeID, msg: slices.Clone(b)})
	}
}

// GetBroadcasts hands memberlist the queued records that fit.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.p.queue.GetBroadcasts(overhead, limit)
}

// LocalState is every record known, for a push/pull exchange.
func (d *delegate) LocalState(join bool) []byte {
	d.p.mu.Lock()
	recs := make([]*NodeRecord, 0, len(d.p.records))
	for _, r := range d.p.records {
		recs = append(recs, r)
	}
	b, _ := json.Marshal(recs)
	d.p.mu.Unlock()
	return b
}

// MergeRemoteState keeps the newer of each record another member sent.
func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	var recs []*NodeRecord
	if err := json.Unmarshal(buf, &recs); err != nil {
		return
	}
	for _, r := range recs {
		d.p.merge(r)
	}
}

// The event methods run while memberlist holds its member lock, so they
// copy what they need from n (memberlist changes it later without a lock
// the pool could take: its Members() is not safe to read, this is).

// NotifyJoin: a member (re)joined.
func (d *delegate) NotifyJoin(n *memberlist.Node) { d.p.memberAlive(n) }

// NotifyUpdate: a member's metadata changed.
func (d *delegate) NotifyUpdate(n *memberlist.Node) { d.p.memberAlive(n) }

// NotifyLeave: a member died or left; remember when.
func (d *delegate) NotifyLeave(n *memberlist.Node) {
	m := decodeMeta(n.Meta)
	p := d.p
	p.mu.Lock()
	defer p.mu.Unlock()
	st := StatusDead
	if m.Leaving || p.leaving[n.Name] {
		st = StatusLeft
	}
	delete(p.alive, n.Name)
	delete(p.leaving, n.Name)
	if len(p.departed) >= maxDeparted {
		p.forgetOldestLocked()
	}
	p.departed[n.Name] = Member{Name: n.Name, Addr: n.Address(), Status: st, Role: m.Role,
		NodeID: m.NodeID, HTTPAddr: m.HTTPAddr, Since: p.now()}
	p.notifyLocked()
}

func (p *Pool) memberAlive(n *memberlist.Node) {
	m := decodeMeta(n.Meta)
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.departed, n.Name)
	if m.Leaving {
		p.leaving[n.Name] = true
	}
	p.alive[n.Name] = Member{Name: n.Name, Addr: n.Address(), Status: StatusAlive, Role: m.Role,
		NodeID: m.NodeID, HTTPAddr: m.HTTPAddr}
	p.notifyLocked()
}

func (p *Pool) forgetOldestLocked() {
	var oldest string
	var at time.Time
	for name, m := range p.departed {
		if oldest == "" || m.Since.Before(at) {
			oldest, at = name, m.Since
		}
	}
	delete(p.departed, oldest)
}
