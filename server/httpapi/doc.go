// Package httpapi is the servers' HTTP layer: the /v1 route table, the one
// middleware chain every route is served through (request limits, leader
// forwarding, consistency headers, the error writer), the security headers,
// the deadline writer of streamed answers and the OpenAPI document served at
// /v1/openapi.json, which a test keeps equal to the route table.
//
// It reaches the server only through the Backend interface (backend.go) and
// imports fsm/state, fsm/structs, scheduler and api, never package server
// (.golangci.yml enforces it). Package server builds it with New and serves
// API.Handler from Server.HTTPHandler.
//
// Routes whose handlers still live in package server (they need its log
// store, its WebSocket hub, Raft or serf directly) are listed here all the
// same, with the handler the Backend hands over in ServerHandlers, so the
// route table stays one list and a middleware added to the chain (the ACL
// check of wave 2) wraps every route.
package httpapi
