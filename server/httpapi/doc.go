// Package httpapi is the servers' HTTP layer: the /v1 route table
// (routes.go), the one middleware chain every route is served through
// (handler.go: the guard against cross-site writes and DNS rebinding of
// browser.go, large-body deadline, leader forwarding and consistency
// headers, request body limits; the ACL check of wave 2 goes there), the
// error writer, the security headers, the deadline writer of streamed
// answers, the OpenAPI document served at /v1/openapi.json (a test keeps it
// equal to the route table), the handlers of pipelines, jobs, evaluations,
// nodes, workers, logs, the client routes, the event stream, the scheduler
// configuration, and the web UI's aggregated reads and WebSocket feed.
//
// It may import fsm/state, fsm/structs, scheduler and api; never package
// server, server/events, Raft or serf (.golangci.yml enforces it). It
// reaches the server only through Backend (backend.go), whose concurrency
// rules are documented there. Package server builds an API with New and
// serves API.Handler from Server.HTTPHandler.
//
// The handlers that answer about the server itself (status and agent
// members, Raft configuration and snapshots, readiness, metrics, the UI's
// cluster view, the gossip view) and the scheduler's dry run still live in
// package server and are handed over in ServerHandlers; the route table
// lists them with the others, so it stays one list and every middleware
// wraps every route.
package httpapi
