// Package structs holds ciplat's domain types: pipelines, jobs, steps,
// allocations, nodes, evaluations, plans and the Raft message types that
// change them. It imports nothing of the project, so the FSM, the state store,
// the scheduler and the server all speak the same language.
//
// It holds types and their methods only. Parsing and validating what users
// write (pipeline YAML/JSON) into these types is package jobspec's; the
// Validate methods here (messages_validate.go) check a Raft request's shape
// and run inside the FSM, so they depend on no parser.
//
// Values read from the state store are shared and read-only: Copy before
// changing one (STYLE.md habit 2).
package structs
