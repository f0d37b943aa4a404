package server

import "github.com/hashicorp/raft"

// waitRaft waits for a Raft future (an Apply or a Barrier) and returns its
// error, or raft.ErrRaftShutdown once this server's Raft has shut down.
//
// hashicorp/raft never answers a future whose entry was committed and
// queued for the FSM when Raft shut down: runFSM returns on shutdown and
// leaves the batches already in its channel unanswered, so a bare
// f.Error() can block forever. Every wait on an Apply or Barrier future in
// this package goes through waitRaft, so Shutdown (which closes raftDown
// after raft.Shutdown returned) never waits on an abandoned future: the
// plan applier, leaderLoop and HTTP writes all return. An entry answered
// this way may or may not have been applied (as with ErrLeadershipLost).
//
// The goroutine that waits on f is left blocked when the future is never
// answered; that happens only at shutdown, once per abandoned future.
func (s *Server) waitRaft(f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-s.raftDown:
		// Both may be ready: a future answered before the shutdown wins.
		select {
		case err := <-done:
			return err
		default:
			return raft.ErrRaftShutdown
		}
	}
}
