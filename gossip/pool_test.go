package gossip

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// fast shortens memberlist's failure detection for tests on loopback.
func fast(mc *memberlist.Config) {
	mc.ProbeInterval = 200 * time.Millisecond
	mc.ProbeTimeout = 150 * time.Millisecond
	mc.SuspicionMult = 2
	mc.GossipInterval = 20 * time.Millisecond
	mc.PushPullInterval = time.Second
	mc.TCPTimeout = 500 * time.Millisecond
}

func newPool(t testing.TB, role string, key []byte) *Pool {
	t.Helper()
	return newPoolTuned(t, role, key, fast)
}

func newPoolTuned(t testing.TB, role string, key []byte, tune func(*memberlist.Config)) *Pool {
	t.Helper()
	p, err := New(Config{Name: NewName(role), Role: role, Local: true, Tune: tune, SecretKey: key,
		HTTPAddr: map[string]string{RoleServer: "127.0.0.1:4680"}[role]})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown() })
	return p
}

// waitFor waits on p's change notifications until cond holds, failing the
// test after 10s.
func waitFor(t testing.TB, p *Pool, what string, cond func() bool) {
	t.Helper()
	ch, cancel := p.Subscribe()
	defer cancel()
	deadline := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-ch:
		case <-time.After(50 * time.Millisecond): // memberlist state changes without a notification (suspect → alive)
		case <-deadline:
			t.Fatalf("timed out waiting for %s; members: %+v", what, p.Members())
		}
	}
}

func record(id string, cpu int) *NodeRecord {
	return &NodeRecord{NodeID: id, Name: "build-" + id, OS: "linux", Arch: "amd64",
		Resources: Resources{CPU: cpu, MemoryMB: 8192}, Reserved: Resources{CPU: 500, MemoryMB: 512},
		Drivers: map[string]DriverHealth{"exec": {Detected: true, Healthy: true}},
		Labels:  map[string]string{"zone": "a"}}
}

func memberOf(p *Pool, name string) (Member, bool) {
	for _, m := range p.Members() {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

func TestPool_Join(t *testing.T) {
	srv := newPool(t, RoleServer, nil)
	c1 := newPool(t, RoleClient, nil)
	c2 := newPool(t, RoleClient, nil)
	c1.SetLocal(record("n1", 4000))
	for _, c := range []*Pool{c1, c2} {
		if n, err := c.Join([]string{srv.Addr()}); err != nil || n != 1 {
			t.Fatalf("join: %d, %v", n, err)
		}
	}
	waitFor(t, c2, "c2 to see three members and the record of n1", func() bool {
		alive := 0
		for _, m := range c2.Members() {
			if m.Alive() {
				alive++
			}
		}
		return alive == 3 && c2.Record("n1") != nil
	})
	m, _ := memberOf(c2, c1.Name())
	if m.Role != RoleClient || m.NodeID != "n1" {
		t.Fatalf("c1 as c2 sees it: %+v; want a client speaking for n1", m)
	}
	if got := c2.ServerAddrs(); len(got) != 1 || got[0] != srv.Addr() {
		t.Fatalf("ServerAddrs = %v, want [%s]", got, srv.Addr())
	}
	if s, _ := memberOf(c1, srv.Name()); s.HTTPAddr != "127.0.0.1:4680" {
		t.Fatalf("server member = %+v, want its HTTP address", s)
	}
	rec := c2.Record("n1")
	if rec.Member != c1.Name() || rec.Resources.CPU != 4000 || rec.Labels["zone"] != "a" || !rec.Drivers["exec"].Healthy {
		t.Fatalf("record = %+v", rec)
	}
}

// TestPool_CapacityUpdatePropagates: a change reaches members that did not
// join the publisher directly; an unchanged record is not re-versioned.
func TestPool_CapacityUpdatePropagates(t *testing.T) {
	srv := newPool(t, RoleServer, nil)
	pub := newPool(t, RoleClient, nil)
	var others []*Pool
	for range 4 {
		others = append(others, newPool(t, RoleClient, nil))
	}
	all := append([]*Pool{srv, pub}, others...)
	for _, p := range all[1:] {
		if _, err := p.Join([]string{srv.Addr()}); err != nil {
			t.Fatal(err)
		}
	}
	pub.SetLocal(record("n1", 4000))
	for _, p := range append(others, srv) {
		waitFor(t, p, "the first record everywhere", func() bool { return p.Record("n1") != nil })
	}
	v1 := pub.Record("n1").Version
	pub.SetLocal(record("n1", 4000))
	if v := pub.Record("n1").Version; v != v1 {
		t.Fatalf("republishing the same record changed its version %d → %d", v1, v)
	}

	start := time.Now()
	r := record("n1", 8000)
	r.Load = Load{Allocs: 2, CPU: 1000, MemoryMB: 512}
	pub.SetLocal(r)
	for _, p := range append(others, srv) {
		waitFor(t, p, "the update everywhere", func() bool {
			got := p.Record("n1")
			return got.Resources.CPU == 8000 && got.Load.Allocs == 2
		})
	}
	t.Logf("the update reached %d members in %v", len(others)+1, time.Since(start))
}

// TestPool_BroadcastsNews: a published record is queued for broadcast at
// once; a newer record heard from another member is passed on, an older
// one is not.
func TestPool_BroadcastsNews(t *testing.T) {
	p := newPool(t, RoleClient, nil)
	d := &delegate{p: p}
	decode := func(msgs [][]byte) []*NodeRecord {
		var out []*NodeRecord
		for _, m := range msgs {
			var r NodeRecord
			if m[0] != msgRecord || json.Unmarshal(m[1:], &r) != nil {
				t.Fatalf("not a record message: %q", m)
			}
			out = append(out, &r)
		}
		return out
	}
	drain := func() []*NodeRecord {
		var out []*NodeRecord
		for range 20 { // past any retransmit limit
			out = append(out, decode(d.GetBroadcasts(2, 1400))...)
		}
		return out
	}
	p.SetLocal(record("mine", 4000))
	if got := drain(); len(got) == 0 || got[0].NodeID != "mine" || got[0].Member != p.Name() {
		t.Fatalf("after SetLocal, broadcasts = %+v", got)
	}
	other := record("theirs", 2000)
	other.Member, other.Version = "someone", 10
	d.NotifyMsg(encodeRecord(other))
	if got := drain(); len(got) == 0 || got[0].NodeID != "theirs" {
		t.Fatalf("a new record heard was not passed on: %+v", got)
	}
	older := other.Copy()
	older.Version = 9
	d.NotifyMsg(encodeRecord(older))
	if got := drain(); len(got) != 0 {
		t.Fatalf("an older record was passed on: %+v", got)
	}
	if r := p.Record("theirs"); r.Version != 10 {
		t.Fatalf("record = %+v, want version 10 kept", r)
	}
}

// TestPool_FailureDetection: a member that stops without leaving is seen
// dead (with its node ID and when), one that leaves is seen left.
func TestPool_FailureDetection(t *testing.T) {
	srv := newPool(t, RoleServer, nil)
	dying := newPool(t, RoleClient, nil)
	leaving := newPool(t, RoleClient, nil)
	witness := newPool(t, RoleClient, nil)
	dying.SetLocal(record("n-dying", 1000))
	for _, p := range []*Pool{dying, leaving, witness} {
		if _, err := p.Join([]string{srv.Addr()}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, srv, "four alive members", func() bool { return len(srv.ServerAddrs()) == 1 && len(srv.Members()) == 4 })

	before := time.Now()
	_ = dying.Shutdown()
	if err := leaving.Leave(4 * time.Second); err != nil {
		t.Fatal(err)
	}
	_ = leaving.Shutdown()
	waitFor(t, srv, "the dead and the left member", func() bool {
		d, _ := memberOf(srv, dying.Name())
		l, _ := memberOf(srv, leaving.Name())
		return d.Status == StatusDead && l.Status == StatusLeft
	})
	d, _ := memberOf(srv, dying.Name())
	if d.NodeID != "n-dying" || d.Since.IsZero() {
		t.Fatalf("dead member = %+v; want node n-dying and when it died", d)
	}
	t.Logf("failure detected in %v", d.Since.Sub(before))
	// The dead node's record stays: servers decide what a death means.
	if srv.Record("n-dying") == nil {
		t.Fatal("the dead node's record was dropped")
	}
}

// TestPool_Encryption: members sharing a key form a pool; a member with
// another key, or none, cannot join it.
func TestPool_Encryption(t *testing.T) {
	key, err := ParseKey(base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")))
	if err != nil {
		t.Fatal(err)
	}
	other := []byte("fedcba9876543210")
	srv := newPool(t, RoleServer, key)
	good := newPool(t, RoleClient, key)
	good.SetLocal(record("n1", 4000))
	if _, err := good.Join([]string{srv.Addr()}); err != nil {
		t.Fatalf("same key: %v", err)
	}
	waitFor(t, srv, "the record over encrypted gossip", func() bool { return srv.Record("n1") != nil })

	for name, k := range map[string][]byte{"wrong key": other, "no key": nil} {
		bad := newPool(t, RoleClient, k)
		bad.SetLocal(record("intruder", 4000))
		if n, err := bad.Join([]string{srv.Addr()}); err == nil {
			t.Fatalf("%s: joined %d members; want an error", name, n)
		}
		if _, ok := memberOf(srv, bad.Name()); ok {
			t.Fatalf("%s: the server lists the intruder", name)
		}
	}
	if srv.Record("intruder") != nil {
		t.Fatal("an intruder's record got in")
	}
}

func TestParseKey(t *testing.T) {
	for _, tt := range []struct {
		in, err string
	}{
		{base64.StdEncoding.EncodeToString(make([]byte, 16)), ""},
		{base64.StdEncoding.EncodeToString(make([]byte, 32)), ""},
		{base64.StdEncoding.EncodeToString(make([]byte, 20)), "20 bytes; want 16, 24 or 32"},
		{"not base64!", "not base64"},
	} {
		_, err := ParseKey(tt.in)
		if (tt.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("ParseKey(%q) = %v, want %q", tt.in, err, tt.err)
		}
	}
}

// TestPool_RefutesOlderSpeaker: when an agent restarts, its new member
// outbids whatever record an older start left with a higher version.
func TestPool_RefutesOlderSpeaker(t *testing.T) {
	a := newPool(t, RoleClient, nil)
	a.SetLocal(record("n1", 4000))
	stale := record("n1", 1000)
	stale.Member = "old-start"
	stale.Version = a.Record("n1").Version + 1000
	a.merge(stale)
	got := a.Record("n1")
	if got.Member != a.Name() || got.Resources.CPU != 4000 || got.Version <= stale.Version {
		t.Fatalf("after a stale record with a higher version: %+v", got)
	}
}

func TestNewName_Unique(t *testing.T) {
	seen := map[string]bool{}
	for i := range 100 {
		n := NewName("client")
		if seen[n] || !strings.HasPrefix(n, "client-") {
			t.Fatalf("name %d: %q", i, n)
		}
		seen[n] = true
	}
}
