package httpapi

import (
	"net/http"
	"time"
)

// maxBodyBytes bounds request bodies; larger ones get 413.
const maxBodyBytes = 1 << 20

// LargeBodyReadTimeout is how long a route with a large body (a snapshot
// restore) may take to upload, beyond the agent's -http-read-timeout.
const LargeBodyReadTimeout = 10 * time.Minute

// HandlerFunc answers one route: it returns the value written as JSON
// (200), an error (WriteError), or Streamed{} when it wrote the answer.
type HandlerFunc func(http.ResponseWriter, *http.Request) (any, error)

// Route is one entry of the route table. The OpenAPI document is checked
// against the table in a test, so the two never drift apart.
type Route struct {
	Method, Pattern string
	Handler         HandlerFunc
	Kind            Kind
	// Capability is what the ACL middleware of wave 2 will require of the
	// request's token: "<scope>:<capability>" as in Nomad's policies
	// (namespace:submit-job, node:write, operator:read...), or "public".
	// Descriptive for now: nothing checks it yet.
	Capability string
	// MaxBody bounds the request body; 0 means maxBodyBytes.
	MaxBody int64
	// LargeBody marks a route whose upload may take long (only the snapshot
	// restore): it gets LargeBodyReadTimeout to read its body and as much
	// more to be forwarded. A raised MaxBody alone (a spec route under
	// -limit-spec-bytes) keeps the normal deadlines.
	LargeBody bool
}

// Kind says where a request is answered in a cluster.
type Kind int

const (
	// KindWrite routes change state: a follower forwards them to the leader.
	KindWrite Kind = iota
	// KindRead routes are answered by the leader (forwarded), or by any
	// server with ?stale.
	KindRead
	// KindLocal routes are about this server and answered by it.
	KindLocal
)

func write(method, pattern, capability string, h HandlerFunc) Route {
	return Route{Method: method, Pattern: pattern, Handler: h, Kind: KindWrite, Capability: capability}
}

func read(method, pattern, capability string, h HandlerFunc) Route {
	return Route{Method: method, Pattern: pattern, Handler: h, Kind: KindRead, Capability: capability}
}

func local(method, pattern, capability string, h HandlerFunc) Route {
	return Route{Method: method, Pattern: pattern, Handler: h, Kind: KindLocal, Capability: capability}
}

// The capabilities routes declare (see Route.Capability).
const (
	capPublic        = "public"
	capSubmitJob     = "namespace:submit-job"
	capReadJob       = "namespace:read-job"
	capReadLogs      = "namespace:read-logs"
	capNodeRead      = "node:read"
	capNodeWrite     = "node:write"
	capAgentRead     = "agent:read"
	capAgentWrite    = "agent:write"
	capOperatorRead  = "operator:read"
	capOperatorWrite = "operator:write"
)

// Routes is the route table: every /v1 route, in one list.
func (a *API) Routes() []Route {
	h := a.b.Handlers()
	spec := func(rt Route) Route {
		rt.MaxBody = int64(a.cfg.SpecLimits.SpecBytes)
		return rt
	}
	restore := write("PUT", "/v1/operator/snapshot", capOperatorWrite, h.SnapshotRestore)
	restore.MaxBody = a.cfg.SnapshotMaxBytes
	restore.LargeBody = true
	return []Route{
		spec(write("POST", "/v1/pipelines", capSubmitJob, a.handlePipelineSubmit)),
		read("GET", "/v1/pipelines", capReadJob, a.handlePipelineList),
		read("GET", "/v1/pipelines/{id}", capReadJob, a.handlePipelineGet),
		write("POST", "/v1/pipelines/{id}/cancel", capSubmitJob, a.handlePipelineCancel),
		read("GET", "/v1/pipelines/{id}/logs", capReadLogs, a.handlePipelineLogs),
		spec(write("POST", "/v1/jobs", capSubmitJob, a.handleJobSubmit)),
		read("GET", "/v1/jobs/{id}", capReadJob, a.handleJobGet),
		read("GET", "/v1/jobs/{id}/logs", capReadLogs, a.handleJobLogs),
		read("GET", "/v1/nodes", capNodeRead, a.handleNodeList),
		read("GET", "/v1/nodes/{id}", capNodeRead, a.handleNodeGet),
		read("GET", "/v1/evaluations", capReadJob, a.handleEvalList),
		local("GET", "/v1/status/leader", capPublic, h.StatusLeader),
		local("GET", "/v1/status/ready", capPublic, h.StatusReady),
		local("GET", "/v1/status/peers", capPublic, h.StatusPeers),
		local("GET", "/v1/agent/members", capAgentRead, h.AgentMembers),
		local("PUT", "/v1/agent/leave", capAgentWrite, h.AgentLeave),
		read("GET", "/v1/operator/raft/configuration", capOperatorRead, h.RaftConfiguration),
		write("DELETE", "/v1/operator/raft/peer", capOperatorWrite, h.RaftRemovePeer),
		read("GET", "/v1/operator/snapshot", capOperatorRead, h.SnapshotSave),
		restore,
		local("GET", "/v1/openapi.json", capPublic, a.handleOpenAPI),
		write("POST", "/v1/client/nodes", capNodeWrite, a.handleClientNodeRegister),
		read("GET", "/v1/client/nodes/{id}/allocations", capNodeRead, a.handleClientAllocs),
		write("POST", "/v1/client/allocations", capNodeWrite, a.handleClientAllocUpdate),
		write("POST", "/v1/client/logs", capNodeWrite, a.handleClientLogs),
		write("POST", "/v1/client/nodes/{id}/heartbeat", capNodeWrite, a.handleClientNodeHeartbeat),
		write("POST", "/v1/nodes/{id}/drain", capNodeWrite, a.handleNodeDrain),
		write("POST", "/v1/nodes/{id}/eligibility", capNodeWrite, a.handleNodeEligibility),
		local("GET", "/v1/agent/gossip", capAgentRead, h.AgentGossip),
		read("GET", "/v1/event/stream", capReadJob, a.handleEventStream),
		local("GET", "/v1/ws", capReadJob, a.handleWS),
		read("GET", "/v1/ui/pipelines", capReadJob, a.handleUIPipelines),
		read("GET", "/v1/ui/nodes", capNodeRead, a.handleUINodes),
		local("GET", "/v1/ui/cluster", capOperatorRead, h.UICluster),
		// Scheduler (issue 5).
		read("GET", "/v1/operator/scheduler", capOperatorRead, a.handleSchedulerConfigGet),
		write("PUT", "/v1/operator/scheduler", capOperatorWrite, a.handleSchedulerConfigPut),
		spec(read("POST", "/v1/schedule", capSubmitJob, h.Schedule)),
		local("GET", "/v1/metrics", capOperatorRead, h.Metrics),
		// Worker Manager API (issue 6).
		read("GET", "/v1/workers", capReadJob, a.handleWorkerList),
		read("GET", "/v1/workers/{id}", capReadJob, a.handleWorkerGet),
		write("DELETE", "/v1/workers/{id}", capSubmitJob, a.handleWorkerStop),
		read("GET", "/v1/workers/{id}/logs", capReadLogs, a.handleWorkerLogs),
	}
}
