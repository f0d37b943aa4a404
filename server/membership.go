package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hashicorp/serf/serf"

	"github.com/ciplat/ciplat/server/httpapi"
)

// reconcileLoop runs on the leader: it makes the Raft voters follow serf
// membership on every member event and every ReconcileInterval.
func (s *Server) reconcileLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.ReconcileInterval)
	defer t.Stop()
	failedSince := map[string]time.Time{}
	for {
		s.reconcile(failedSince)
		select {
		case <-ctx.Done():
			return
		case <-s.reconcileCh:
		case <-t.C:
		}
	}
}

// reconcile adds alive servers as voters (or updates a changed Raft
// address), removes servers that left gracefully, and keeps failed ones,
// unless DeadServerCleanup is set and they have been failed that long.
// failedSince is the loop's memory of when each failed member was first seen.
func (s *Server) reconcile(failedSince map[string]time.Time) {
	if !s.IsLeader() {
		return
	}
	cf := s.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		s.log.Warn("reconcile: read raft configuration", "err", err)
		return
	}
	inRaft := map[raft.ServerID]raft.Server{}
	for _, srv := range cf.Configuration().Servers {
		inRaft[srv.ID] = srv
	}
	self := raft.ServerID(s.cfg.NodeName)
	now := time.Now()
	for _, m := range s.serverMembers() {
		id := raft.ServerID(m.ID)
		cur, known := inRaft[id]
		switch m.Status {
		case serf.StatusAlive:
			delete(failedSince, m.Name)
			if known && cur.Address == raft.ServerAddress(m.RaftAddr) && cur.Suffrage == raft.Voter {
				continue
			}
			if id == self {
				continue
			}
			if err := s.raft.AddVoter(id, raft.ServerAddress(m.RaftAddr), 0, 10*time.Second).Error(); err != nil {
				s.log.Warn("reconcile: add voter", "server", m.ID, "err", err)
				continue
			}
			s.log.Info("server added as a raft voter", "server", m.ID, "raft_addr", m.RaftAddr)
		case serf.StatusLeft:
			delete(failedSince, m.Name)
			if !known || id == self {
				continue
			}
			if err := s.raft.RemoveServer(id, 0, 10*time.Second).Error(); err != nil {
				s.log.Warn("reconcile: remove server that left", "server", m.ID, "err", err)
				continue
			}
			s.log.Info("server left; removed from raft", "server", m.ID)
		case serf.StatusFailed:
			if !known || id == self || s.cfg.DeadServerCleanup <= 0 {
				continue
			}
			since, ok := failedSince[m.Name]
			if !ok {
				failedSince[m.Name] = now
				continue
			}
			if now.Sub(since) < s.cfg.DeadServerCleanup {
				continue
			}
			if err := s.raft.RemoveServer(id, 0, 10*time.Second).Error(); err != nil {
				s.log.Warn("reconcile: remove dead server", "server", m.ID, "err", err)
				continue
			}
			_ = s.serf.RemoveFailedNode(m.Name)
			delete(failedSince, m.Name)
			s.log.Warn("dead server removed from raft", "server", m.ID, "failed_for", now.Sub(since).Round(time.Second))
		}
	}
}

// RemovePeer removes a Raft server by ID (an operator's remove-peer). It
// must run on the leader. The server's serf member, if failed, is removed
// too so reconciliation does not add it back.
func (s *Server) RemovePeer(id string) error {
	if !s.IsLeader() {
		return ErrNoLeader
	}
	cf := s.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return err
	}
	found, voter, voters := false, false, 0
	for _, srv := range cf.Configuration().Servers {
		if srv.ID == raft.ServerID(id) {
			found, voter = true, srv.Suffrage == raft.Voter
		}
		if srv.Suffrage == raft.Voter {
			voters++
		}
	}
	if !found {
		return &httpapi.HTTPError{Code: 404, Msg: fmt.Sprintf("no raft peer with id %q; 'ciplat operator raft list-peers' shows the ids", id)}
	}
	if voter && voters == 1 {
		return &httpapi.HTTPError{Code: http.StatusConflict, Msg: fmt.Sprintf(
			"raft refused the configuration change: %q is the last voter, and a cluster needs at least one (add another server first)", id)}
	}
	if m, ok := s.memberByID(id); ok && m.Status != serf.StatusAlive {
		_ = s.serf.RemoveFailedNode(m.Name)
	}
	if err := s.raft.RemoveServer(raft.ServerID(id), 0, 10*time.Second).Error(); err != nil {
		return raftChangeError(id, err)
	}
	s.log.Info("raft peer removed by operator", "server", id)
	return nil
}

// Leave leaves the cluster gracefully: a leader first hands leadership to
// another voter, then the server announces its leave in serf (the leader
// removes it from the voters on that event) and waits, up to timeout, to be
// out of the Raft configuration. Call Shutdown afterwards.
func (s *Server) Leave(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	self := raft.ServerID(s.cfg.NodeName)
	voters := 0
	if cf := s.raft.GetConfiguration(); cf.Error() == nil {
		for _, srv := range cf.Configuration().Servers {
			if srv.Suffrage == raft.Voter {
				voters++
			}
		}
	}
	if voters > 1 && s.IsLeader() {
		if err := s.raft.LeadershipTransfer().Error(); err != nil {
			s.log.Warn("leave: leadership transfer failed; removing self from raft", "err", err)
			if err := s.raft.RemoveServer(self, 0, 5*time.Second).Error(); err != nil {
				s.log.Warn("leave: remove self from raft", "err", err)
			}
		}
	}
	if err := s.serf.Leave(); err != nil {
		s.log.Warn("leave: serf leave", "err", err)
	}
	if voters <= 1 {
		return nil
	}
	// The leader removes this server when it sees the leave in serf; if the
	// leave intent did not reach it in time (serf then reports a failure),
	// ask it directly.
	// The leader is remembered while it is known: once it has removed this
	// server it stops sending heartbeats, and this server forgets it.
	var leader serverMember
	nextAsk := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if m, ok := s.otherLeader(); ok {
			leader = m
		}
		if time.Now().After(nextAsk) && leader.HTTPAddr != "" {
			nextAsk = time.Now().Add(time.Second)
			err := s.askLeaderToRemove(leader)
			if err == nil {
				// The leader committed the removal (or this server was
				// no peer any more). A removed server need not receive
				// the entry that removes it: the leader stops replicating
				// to it, so its own configuration may never show it.
				s.log.Info("left the cluster (the leader confirmed the removal)")
				return nil
			}
			s.log.Debug("leave: ask the leader to remove this server", "leader", leader.ID, "err", err)
		}
		cf := s.raft.GetConfiguration()
		if cf.Error() == nil {
			in := false
			for _, srv := range cf.Configuration().Servers {
				if srv.ID == self {
					in = true
				}
			}
			if !in {
				s.log.Info("left the cluster")
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("leave: still a raft peer after %s (no leader to remove it?)", timeout)
}

// LeaveRequested is closed when an operator asked this server to leave
// through the API; the agent then leaves and shuts down.
func (s *Server) LeaveRequested() <-chan struct{} { return s.leaveCh }

// otherLeader returns the serf member of the leader when it is known and
// is not this server.
func (s *Server) otherLeader() (serverMember, bool) {
	_, id := s.raft.LeaderWithID()
	if id == "" || id == raft.ServerID(s.cfg.NodeName) {
		return serverMember{}, false
	}
	m, ok := s.memberByID(string(id))
	if !ok || m.HTTPAddr == "" {
		return serverMember{}, false
	}
	return m, true
}

// askLeaderToRemove asks the HTTP API of m, the leader, to remove this
// server from the Raft configuration.
func (s *Server) askLeaderToRemove(m serverMember) error {
	ctx, cancel := context.WithTimeout(s.shutdownCtx, 5*time.Second)
	defer cancel()
	u := "http://" + m.HTTPAddr + "/v1/operator/raft/peer?id=" + url.QueryEscape(s.cfg.NodeName)
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set(forwardedHeader, s.cfg.NodeName)
	resp, err := (&http.Client{Transport: s.forwarder.tr}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
		return fmt.Errorf("HTTP %d from the leader", resp.StatusCode)
	}
	return nil
}

// raftChangeError maps the error of a Raft configuration change to what a
// client can act on: no leader (503, retry), or a change Raft refused (409
// with Raft's reason): another change still being committed (raft takes
// one at a time and times out enqueueing the next), a leadership transfer
// in progress, or a configuration Raft finds invalid. Anything else (Raft
// shut down, the disk) stays a 500.
func raftChangeError(id string, err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost):
		return ErrNoLeader
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%w: this server is shutting down", ErrNoLeader)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return &httpapi.HTTPError{Code: http.StatusConflict, Msg: fmt.Sprintf(
			"raft refused to remove %q: another configuration change is still being committed (%v); retry when 'ciplat operator raft list-peers' settles", id, err)}
	case errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return &httpapi.HTTPError{Code: http.StatusConflict, Msg: fmt.Sprintf(
			"raft refused to remove %q: a leadership transfer is in progress; retry once a leader is elected", id)}
	case errors.Is(err, raft.ErrCantBootstrap), errors.Is(err, raft.ErrUnsupportedProtocol):
		return err
	}
	// nextConfiguration and checkConfiguration refuse with plain errors
	// ("configuration changed since …", "need at least one voter …").
	if msg := err.Error(); strings.Contains(msg, "configuration") {
		return &httpapi.HTTPError{Code: http.StatusConflict, Msg: fmt.Sprintf("raft refused to remove %q: %s", id, msg)}
	}
	return err
}
