// Package structs holds ciplat's domain types: pipelines, jobs, steps,
// allocations, nodes, evaluations, plans and the Raft message types that
// change them. It imports nothing of the project, so the FSM, the state store,
// the scheduler and the server all speak the same language.
//
// Values read from the state store are shared and read-only: Copy before
// changing one (STYLE.md habit 2).
package structs
