// Package jobspec parses and validates what users write: a pipeline spec as
// YAML or as the same structure in JSON (ParsePipelineSpec), a single job
// (ParseJobSpec, the body of POST /v1/jobs), and specs built in Go or
// decoded from JSON into the struct (Validate). It produces fsm/structs
// types (structs.PipelineSpec with its jobs and steps, defaults filled in),
// as Nomad's jobspec produces Nomad's structs.
//
// It owns everything between the user's bytes and a valid spec: the YAML
// walk with its aliases, merge keys and tags (load.go, parser.go,
// parse*.go), the values' syntax (durations, cpu and memory units, env),
// the rules a spec must keep (validate.go: names, needs without cycles,
// constraint operators and regexps, drivers, reschedule blocks), the one
// limits table of a spec (limits.go: Limits, LimitTable, the agent's
// -limit-* flags) and the errors a user reads (errors.go: Errors, each
// with its line, column and field path, sorted, capped, never stopping at
// the first problem).
//
// It imports fsm/structs and nothing else of the project (depguard rule
// "jobspec" in .golangci.yml), plus the standard library and yaml.v3; the
// server, the agent's flags and tests import it. The checks of a Raft
// request on its own (structs' Validate methods, messages_validate.go) stay
// with the types: the FSM runs them on every entry and must not depend on
// the parser.
//
// Every function is pure and safe for concurrent use: a parse keeps its
// state in its own parser value, and the package's variables (LimitTable,
// compiled regexps) are read-only after init.
package jobspec
