package httpapi

import (
	"net/http"
	"time"

	"github.com/ciplat/ciplat/api"
	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

// stubBackend is a Backend with no server behind it: enough to list the
// route table.
type stubBackend struct{ st *state.StateStore }

func (b stubBackend) State() *state.StateStore                                         { return b.st }
func (stubBackend) Apply(structs.MessageType, any) (any, uint64, error)                { return nil, 0, ErrNoLeader }
func (stubBackend) Now() time.Time                                                     { return time.Now().UTC() }
func (stubBackend) ForwardToLeader(http.ResponseWriter, *http.Request, Route) bool     { return false }
func (stubBackend) SetConsistency(http.ResponseWriter)                                 {}
func (stubBackend) Admit(http.ResponseWriter) error                                    { return nil }
func (stubBackend) NodeHeartbeat(string)                                               {}
func (stubBackend) HeartbeatTTL() time.Duration                                        { return time.Minute }
func (stubBackend) LogStore() LogStore                                                 { return nil }
func (stubBackend) PublishLogs([]*api.LogEntry)                                        {}
func (stubBackend) SchedulerConfig(c *structs.SchedulerConfig) structs.SchedulerConfig { return *c }
func (stubBackend) Feed() *Feed                                                        { return nil }
func (stubBackend) Handlers() ServerHandlers                                           { return ServerHandlers{} }
