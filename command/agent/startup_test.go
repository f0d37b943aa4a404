package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ciplat/ciplat/api"
)

// setDefaultPorts points the agent's default NATS, NATS cluster and gossip
// ports at the given ones ("" keeps a default) for the test: tests share
// the host with others, so they never rely on 4222, 4248 or 4683.
func setDefaultPorts(t *testing.T, nats, natsCluster, gossip string) {
	t.Helper()
	old := [3]string{defaultNATSPort, defaultNATSClusterPort, defaultGossipPort}
	t.Cleanup(func() { defaultNATSPort, defaultNATSClusterPort, defaultGossipPort = old[0], old[1], old[2] })
	if nats != "" {
		defaultNATSPort = nats
	}
	if natsCluster != "" {
		defaultNATSClusterPort = natsCluster
	}
	if gossip != "" {
		defaultGossipPort = gossip
	}
}

// loopbackPorts returns n loopback ports free for TCP and UDP now.
func loopbackPorts(t *testing.T, n int) []string {
	t.Helper()
	var ports []string
	var hold []io.Closer
	defer func() {
		for _, c := range hold {
			_ = c.Close()
		}
	}()
	for len(ports) < n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		hold = append(hold, ln)
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		pc, err := net.ListenPacket("udp", "127.0.0.1:"+port)
		if err != nil {
			continue
		}
		hold = append(hold, pc)
		ports = append(ports, port)
	}
	return ports
}

// holdPort listens on 127.0.0.1:port (TCP, and UDP when udp) until the
// test ends: the port is taken.
func holdPort(t *testing.T, port string, udp bool) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	if udp {
		pc, err := net.ListenPacket("udp", "127.0.0.1:"+port)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = pc.Close() })
	}
}

// waitUntil polls cond every 50ms until it holds, failing the test after
// within.
func waitUntil(t *testing.T, what string, within time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %v", within, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// clusterArgs are the flags of server+client agent i of n on the given
// HTTP, Raft and serf ports, -retry-join'ing the others, NATS and gossip
// on their defaults (as in the issue: ports flags only for the rest).
func clusterArgs(t *testing.T, i int, ports []string, n int) []string {
	args := []string{"-server", "-client", "-bootstrap-expect", strconv.Itoa(n), "-node", fmt.Sprintf("s%d", i+1),
		"-data-dir", t.TempDir(), "-http-addr", "127.0.0.1:" + ports[3*i], "-raft-addr", "127.0.0.1:" + ports[3*i+1],
		"-serf-addr", "127.0.0.1:" + ports[3*i+2], "-retry-interval", "200ms", "-log-level", "warn"}
	for j := 0; j < n; j++ {
		if j != i {
			args = append(args, "-retry-join", "127.0.0.1:"+ports[3*j+2])
		}
	}
	return args
}

// TestAgent_ConcurrentStartDefaultPorts: three -server -client agents
// started at the same moment on one host with the default NATS, NATS
// cluster and gossip ports all start and bootstrap one cluster: the ones
// that lose the race for a default port (or find it held by another
// process) bind a free one and advertise that.
func TestAgent_ConcurrentStartDefaultPorts(t *testing.T) {
	for _, tc := range []struct {
		name string
		// taken: the default ports are held by the test (every agent
		// falls back); else they are free and the agents race for them.
		taken bool
	}{{"defaults taken", true}, {"defaults raced for", false}} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 3
			defaults := loopbackPorts(t, 3)
			setDefaultPorts(t, defaults[0], defaults[1], defaults[2])
			if tc.taken {
				holdPort(t, defaults[0], false)
				holdPort(t, defaults[1], false)
				holdPort(t, defaults[2], true)
			}
			ports := loopbackPorts(t, 3*n)
			agents := make([]*Agent, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range agents {
				cfg, err := ParseFlags(clusterArgs(t, i, ports, n), io.Discard)
				if err != nil {
					t.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					agents[i], errs[i] = New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
				}()
			}
			close(start)
			wg.Wait()
			for i, a := range agents {
				t.Cleanup(a.Shutdown)
				if errs[i] != nil {
					t.Fatalf("agent s%d: %v", i+1, errs[i])
				}
			}
			natsPorts := map[string]string{}
			gossipAddrs := map[string]string{}
			for i, a := range agents {
				u, err := url.Parse(a.Server().EventBus().ClientURL())
				if err != nil {
					t.Fatal(err)
				}
				if o, dup := natsPorts[u.Port()]; dup {
					t.Fatalf("s%d and %s both advertise NATS port %s", i+1, o, u.Port())
				}
				natsPorts[u.Port()] = fmt.Sprintf("s%d", i+1)
				g := a.Server().GossipAddr()
				if o, dup := gossipAddrs[g]; dup {
					t.Fatalf("s%d and %s both advertise gossip %s", i+1, o, g)
				}
				gossipAddrs[g] = fmt.Sprintf("s%d", i+1)
				if tc.taken && (u.Port() == defaults[0] || strings.HasSuffix(g, ":"+defaults[2])) {
					t.Fatalf("s%d advertises a port the test holds: NATS %s, gossip %s", i+1, u.Port(), g)
				}
			}
			for i, a := range agents {
				c, err := api.NewClient(&api.Config{Address: "http://" + a.HTTPAddr()})
				if err != nil {
					t.Fatal(err)
				}
				waitUntil(t, fmt.Sprintf("s%d to see a 3-voter cluster with a leader", i+1), 60*time.Second, func() error {
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					defer cancel()
					cf, err := c.RaftConfiguration(ctx, &api.QueryOptions{AllowStale: true})
					if err != nil {
						return err
					}
					voters, leader := 0, false
					for _, s := range cf.Servers {
						if s.Voter {
							voters++
						}
						leader = leader || s.Leader
					}
					if voters != n || !leader {
						return fmt.Errorf("%d voters, leader %v", voters, leader)
					}
					return nil
				})
			}
			// The embedded NATS servers form one cluster: each routes to
			// the other two's advertised (bound) route addresses.
			for i, a := range agents {
				ns := a.Server().EventBus().Embedded()
				waitUntil(t, fmt.Sprintf("s%d's NATS to route to the others", i+1), 30*time.Second, func() error {
					if got := ns.NumRoutes(); got < n-1 {
						return fmt.Errorf("%d routes", got)
					}
					return nil
				})
			}
		})
	}
}

// TestAgent_StartFailureAtEachStage: when any part fails to start (its
// port taken), New returns an error naming it, within seconds, without a
// panic, and every part started before it is stopped: all the agent's
// ports are free again.
func TestAgent_StartFailureAtEachStage(t *testing.T) {
	stages := []struct {
		name string
		// flag is the address flag whose port the test takes ("" none).
		flag string
		udp  bool
		// more are extra flags (a failure without a taken port).
		more []string
		want string
	}{
		{"http", "-http-addr", false, nil, "HTTP API on"},
		{"raft", "-raft-addr", false, nil, "raft transport"},
		{"serf", "-serf-addr", true, nil, "address already in use"},
		{"gossip", "-gossip-addr", true, nil, "capacity gossip"},
		{"nats", "-nats-addr", false, nil, "cannot listen for client connections"},
		{"nats cluster", "-nats-cluster-addr", false, nil, "cannot listen for route connections"},
		{"join", "", false, []string{"-join", "127.0.0.1:1"}, "-join"},
		{"client drivers", "", false, []string{"-driver", "nope"}, "unknown driver"},
	}
	for _, st := range stages {
		t.Run(st.name, func(t *testing.T) {
			ports := loopbackPorts(t, 6)
			flags := []string{"-http-addr", "-raft-addr", "-serf-addr", "-gossip-addr", "-nats-addr", "-nats-cluster-addr"}
			args := []string{"-server", "-client", "-bootstrap-expect", "3", "-node", "s1", "-data-dir", t.TempDir(), "-log-level", "warn"}
			for i, f := range flags {
				args = append(args, f, "127.0.0.1:"+ports[i])
				if f == st.flag {
					holdPort(t, ports[i], st.udp)
				}
			}
			args = append(args, st.more...)
			cfg, err := ParseFlags(args, io.Discard)
			if err != nil {
				// -driver nope may be refused when parsed; set it after.
				t.Fatalf("flags: %v", err)
			}
			began := time.Now()
			a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err == nil {
				a.Shutdown()
				t.Fatalf("New succeeded; want an error at the %s stage", st.name)
			}
			if a != nil {
				t.Fatalf("New returned an agent with its error %v", err)
			}
			if !strings.Contains(err.Error(), st.want) {
				t.Fatalf("error %q; want it to mention %q", err, st.want)
			}
			if took := time.Since(began); took > 10*time.Second {
				t.Fatalf("the failure took %s to report; want it bounded and quick", took)
			}
			a.Shutdown() // nil: a no-op, never a panic
			for i, f := range flags {
				if f == st.flag {
					continue
				}
				ln, err := net.Listen("tcp", "127.0.0.1:"+ports[i])
				if err != nil {
					t.Errorf("%s's port %s still bound after the failed start: %v", f, ports[i], err)
					continue
				}
				_ = ln.Close()
			}
		})
	}
}
