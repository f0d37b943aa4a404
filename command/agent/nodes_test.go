package agent

import (
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseFlags_Nodes(t *testing.T) {
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	path := filepath.Join(t.TempDir(), "agent.json")
	err := os.WriteFile(path, []byte(`{"client": true, "data_dir": "/d", "servers": ["s:4680"],
  "gossip_addr": "10.0.0.5:4683", "encrypt": "`+key+`", "heartbeat_ttl": "30s", "reserve_cpu": 250, "reserve_memory": 512}`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseFlags([]string{"-config", path, "-reserve-cpu", "500", "-node", "build-7"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	n := cfg.Nodes
	if n.GossipAddr != "10.0.0.5:4683" || n.Encrypt != key || n.HeartbeatTTL != 30*time.Second ||
		n.ReserveCPU != 500 || n.ReserveMemory != 512 || cfg.NodeName != "build-7" {
		t.Fatalf("nodes config: %+v (node %q)", n, cfg.NodeName)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-dev", "-encrypt", "c2hvcnQ="}, "-encrypt: gossip key: 5 bytes; want 16, 24 or 32"},
		{[]string{"-dev", "-encrypt", "%%%"}, "not base64"},
		{[]string{"-dev", "-gossip-addr", "nope"}, "invalid -gossip-addr"},
		{[]string{"-dev", "-reserve-cpu", "-1"}, "must not be negative"},
		{[]string{"-dev", "-heartbeat-ttl", "-1s"}, "invalid -heartbeat-ttl"},
	} {
		_, err := ParseFlags(c.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want it to mention %q", c.args, err, c.want)
		}
	}
}

// TestAgent_GossipPortTaken: an agent whose default gossip port is taken
// when it binds takes a free one and says which; an explicit -gossip-addr
// that is taken fails the start.
func TestAgent_GossipPortTaken(t *testing.T) {
	a := &Agent{cfg: &Config{}, log: slog.New(slog.DiscardHandler)}
	addr, _, isDefault, err := a.gossipAddrs("127.0.0.1")
	if err != nil || addr != "127.0.0.1:"+defaultGossipPort || !isDefault {
		t.Fatalf("default gossip address: %q %v %v", addr, isDefault, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, taken, _ := net.SplitHostPort(ln.Addr().String())
	setDefaultPorts(t, "", "", taken)
	p, err := a.clientGossip("127.0.0.1")
	if err != nil {
		t.Fatalf("default gossip port taken: %v; want a free port", err)
	}
	if _, port, _ := net.SplitHostPort(p.(interface{ Addr() string }).Addr()); port == taken || port == "0" {
		t.Fatalf("gossip bound %s; want a free port other than the taken %s", p.(interface{ Addr() string }).Addr(), taken)
	}
	a.stopGossip()

	a = &Agent{cfg: &Config{}, log: slog.New(slog.DiscardHandler)}
	a.cfg.Nodes.GossipAddr = ln.Addr().String()
	if _, err := a.clientGossip("127.0.0.1"); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("an explicit -gossip-addr in use: %v, want an error saying so", err)
	}
	a.cfg.Dev = true
	a.cfg.Nodes.GossipAddr = ""
	if addr, _, _, _ := a.gossipAddrs("127.0.0.1"); addr != "127.0.0.1:0" {
		t.Fatalf("-dev gossip address %q, want a free port", addr)
	}
}
