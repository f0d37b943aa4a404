package server

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/ciplat/ciplat/api"
	"github.com/ciplat/ciplat/server/events"
	"github.com/ciplat/ciplat/server/httpapi"
)

// live is the server's live-state machinery: the NATS event bus and the
// leader's event publisher (when Config.Events is set), and the WebSocket
// hub (always).
type live struct {
	bus *events.Bus
	pub *events.Publisher
	hub *httpapi.Feed
}

// startLive starts the event bus and the WebSocket hub. The publisher runs
// with the leader's duties (publishEvents).
func (s *Server) startLive() error {
	s.live = &live{}
	if s.cfg.Events != nil {
		ec := *s.cfg.Events
		if ec.StoreDir == "" {
			ec.StoreDir = filepath.Join(s.cfg.DataDir, "nats")
		}
		if ec.ServerName == "" {
			ec.ServerName = s.cfg.NodeName
		}
		if ec.Logger == nil {
			ec.Logger = s.cfg.Logger
		}
		bus, err := events.Start(ec)
		if err != nil {
			return fmt.Errorf("event bus: %w", err)
		}
		s.live.bus = bus
		s.live.pub = bus.NewPublisher(s.State)
		s.log.Info("event bus ready", "nats", bus.ClientURL(), "embedded", bus.Embedded() != nil)
	}
	s.live.hub = httpapi.NewFeed(s.State, s.log, s.cfg.MaxWSClients)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.live.hub.Run(s.shutdownCtx)
	}()
	return nil
}

// stopLive closes the bus; call it after the goroutines using it ended.
func (s *Server) stopLive() {
	if s.live != nil && s.live.bus != nil {
		s.live.bus.Close()
	}
}

// publishEvents is the leader's duty of copying committed events to NATS.
func (s *Server) publishEvents(ctx context.Context) {
	if s.live == nil || s.live.pub == nil {
		return
	}
	s.live.pub.Run(ctx)
}

// EventBus is the server's NATS bus, or nil when Config.Events is nil.
func (s *Server) EventBus() *events.Bus {
	if s.live == nil {
		return nil
	}
	return s.live.bus
}

// EventPublisher is the server's event publisher (it runs only while this
// server leads), or nil without a bus.
func (s *Server) EventPublisher() *events.Publisher {
	if s.live == nil {
		return nil
	}
	return s.live.pub
}

// natsInfo describes the bus for GET /v1/ui/cluster.
type natsInfo struct {
	URL       string                  `json:"url"`
	Embedded  bool                    `json:"embedded"`
	Connected bool                    `json:"connected"`
	Stream    string                  `json:"stream"`
	Messages  uint64                  `json:"messages"`
	Replicas  int                     `json:"replicas,omitempty"`
	Routes    []string                `json:"routes,omitempty"`
	LastSeq   uint64                  `json:"last_seq"`
	Publisher *events.PublisherStatus `json:"publisher,omitempty"`
	Error     string                  `json:"error,omitempty"`
}

func (s *Server) natsInfo(ctx context.Context) *natsInfo {
	bus := s.EventBus()
	if bus == nil {
		return nil
	}
	out := &natsInfo{URL: bus.ClientURL(), Embedded: bus.Embedded() != nil, Connected: bus.Conn().IsConnected(), Stream: events.StreamName}
	if bus.Embedded() != nil && bus.Config().ClusterAddr != "" {
		out.Routes = bus.Routes()
	}
	if s.IsLeader() {
		st := s.live.pub.Status()
		out.Publisher = &st
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	stream, err := bus.JetStream().Stream(ctx, events.StreamName)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	info, err := stream.Info(ctx)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	out.Messages, out.LastSeq, out.Replicas = info.State.Msgs, info.State.LastSeq, info.Config.Replicas
	return out
}

// publishLogs copies step output to NATS, one message per line on
// ciplat.logs.<job ID>.<step> (the CIPLAT_LOGS stream keeps them). The log
// store stays the source of /v1/jobs/{id}/logs; NATS is for tools.
func (s *Server) publishLogs(entries []*api.LogEntry) {
	bus := s.EventBus()
	if bus == nil {
		return
	}
	for _, e := range entries {
		b, err := json.Marshal(e)
		if err != nil {
			continue
		}
		if err := bus.PublishLog(events.LogSubject(e.JobID, e.Step), b); err != nil {
			s.log.Debug("publish log line to NATS", "job", e.JobID, "err", err)
			return
		}
	}
}
