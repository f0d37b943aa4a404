package command

import (
	"testing"

	"github.com/ciplat/ciplat/api"
)

// TestJobReason_Reschedule: a PENDING job an infrastructure fault sent
// back says it is rescheduled, not retried, even once its reason was
// replaced by the scheduler's; the attempts table says which was which.
func TestJobReason_Reschedule(t *testing.T) {
	lost := api.AttemptRecord{Attempt: 1, State: api.StateTerminated, Reason: "node s1 down", Kind: "reschedule", Cause: "node-lost"}
	j := &api.Job{State: api.StatePending, Reason: "no node fits", RescheduleAttempts: 1, History: []api.AttemptRecord{lost},
		Spec: &api.JobSpec{Reschedule: &api.ReschedulePolicy{Attempts: 3}}}
	if got, want := jobReason(j), "rescheduled 1 of 3 after: node s1 down"; got != want {
		t.Errorf("jobReason = %q, want %q", got, want)
	}
	j.Spec.Reschedule = nil
	if got, want := jobReason(j), "rescheduled 1 after: node s1 down"; got != want {
		t.Errorf("jobReason (default policy) = %q, want %q", got, want)
	}
	for a, want := range map[*api.AttemptRecord]string{
		&lost:           " · rescheduled (node-lost)",
		{Kind: "retry"}: " · retried",
		{}:              "",
	} {
		if got := attemptKind(*a); got != want {
			t.Errorf("attemptKind(%+v) = %q, want %q", *a, got, want)
		}
	}
}
