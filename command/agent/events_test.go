package agent

import (
	"log/slog"
	"testing"
)

// TestAgent_NATSClusterAddr: a server of a multi-server cluster clusters
// its embedded NATS (default <bind>:4248, or a free port when that is
// taken); a single server, an external NATS or "off" does not.
func TestAgent_NATSClusterAddr(t *testing.T) {
	a := &Agent{cfg: &Config{Server: true, BootstrapExpect: 3}, log: slog.New(slog.DiscardHandler)}
	addr, err := a.natsClusterAddr("127.0.0.1")
	if err != nil || (addr != "127.0.0.1:4248" && addr != "127.0.0.1:0") {
		t.Fatalf("default: %q %v", addr, err)
	}
	a.cfg.Events.NATSClusterAddr = "10.0.0.1:5000"
	if addr, _ := a.natsClusterAddr("127.0.0.1"); addr != "10.0.0.1:5000" {
		t.Fatalf("explicit: %q", addr)
	}
	a.cfg.Events.NATSClusterAddr = "nope"
	if _, err := a.natsClusterAddr("127.0.0.1"); err == nil {
		t.Fatal("a bad address: want an error")
	}
	for name, cfg := range map[string]Config{
		"off":      {Server: true, BootstrapExpect: 3, Events: EventsConfig{NATSClusterAddr: "off"}},
		"external": {Server: true, BootstrapExpect: 3, Events: EventsConfig{NATSURL: "nats://x:4222"}},
		"dev":      {Server: true, Dev: true, Events: EventsConfig{NATSClusterAddr: "127.0.0.1:0"}},
		"single":   {Server: true, BootstrapExpect: 1},
	} {
		a := &Agent{cfg: &cfg, log: slog.New(slog.DiscardHandler)}
		if addr, err := a.natsClusterAddr("127.0.0.1"); addr != "" || err != nil {
			t.Errorf("%s: %q %v, want no NATS cluster", name, addr, err)
		}
	}
}
