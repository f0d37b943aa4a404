package server

import (
	"context"
	"maps"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/serf/serf"
)

// tagNATSRoute is the serf tag carrying a server's embedded NATS cluster
// (route) address, host:port; absent when its NATS is not clustered.
const tagNATSRoute = "nats_route"

// natsClusterInterval is how often a server re-reads serf for NATS routes
// besides member events.
const natsClusterInterval = 2 * time.Second

// startNATSCluster gossips this server's NATS route address and keeps its
// embedded NATS server's routes to the other servers' as serf sees them
// (the embedded servers then form one NATS cluster, JetStream clustered).
// It does nothing unless the embedded server listens for routes
// (events.Config.ClusterAddr).
func (s *Server) startNATSCluster() error {
	addr := s.natsRouteAddr()
	if addr == "" {
		return nil
	}
	tags := maps.Clone(s.serf.LocalMember().Tags)
	tags[tagNATSRoute] = addr
	if err := s.serf.SetTags(tags); err != nil {
		return err
	}
	s.log.Info("embedded NATS clustered", "route", addr)
	s.wg.Add(1)
	go s.natsClusterLoop()
	return nil
}

// natsRouteAddr is the address other servers dial for this server's NATS
// routes: the cluster listener, with serf's advertised IP when it listens
// on all interfaces.
func (s *Server) natsRouteAddr() string {
	bus := s.EventBus()
	if bus == nil || bus.Embedded() == nil || bus.Config().ClusterAddr == "" {
		return ""
	}
	a := bus.Embedded().ClusterAddr()
	if a == nil {
		return ""
	}
	host := a.IP.String()
	if a.IP.IsUnspecified() {
		host = s.serf.LocalMember().Addr.String()
	}
	return net.JoinHostPort(host, strconv.Itoa(a.Port))
}

func (s *Server) natsClusterLoop() {
	defer s.wg.Done()
	t := time.NewTicker(natsClusterInterval)
	defer t.Stop()
	for {
		s.syncNATSCluster()
		select {
		case <-s.shutdownCtx.Done():
			return
		case <-s.natsRoutesCh:
		case <-t.C:
		}
	}
}

// syncNATSCluster sets the embedded NATS server's routes to every server
// in serf that has not left, tells the bus how many there are (automatic
// replicas: min(3, n)) and, on the leader, updates the streams' replicas
// when that number changed since they were created.
func (s *Server) syncNATSCluster() {
	bus := s.EventBus()
	var routes []string
	n := 0
	for _, m := range s.serverMembers() {
		r := m.Tags[tagNATSRoute]
		if r == "" || m.Status == serf.StatusLeft || m.Status == serf.StatusNone {
			continue
		}
		n++
		routes = append(routes, "nats-route://"+r)
	}
	if err := bus.SetRoutes(routes); err != nil {
		s.log.Warn("update NATS routes", "err", err)
	}
	bus.SetClusterSize(n)
	if !s.IsLeader() || !s.leaderReady.Load() {
		return
	}
	if have := bus.StreamReplicas(); have != 0 && have != bus.WantReplicas() {
		ctx, cancel := context.WithTimeout(s.shutdownCtx, 10*time.Second)
		defer cancel()
		if _, err := bus.EnsureStream(ctx); err != nil {
			s.log.Warn("update the event streams' replicas", "from", have, "to", bus.WantReplicas(), "err", err)
		}
	}
}
