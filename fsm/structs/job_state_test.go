package structs

import (
	"errors"
	"testing"
)

// TestCanTransition_EveryPair checks all 49 (from, to) pairs against the
// table of DESIGN.md: exactly the listed moves are legal.
func TestCanTransition_EveryPair(t *testing.T) {
	legal := map[[2]JobState]bool{
		{JobPending, JobScheduled}:    true,
		{JobPending, JobCancelled}:    true,
		{JobScheduled, JobRunning}:    true,
		{JobScheduled, JobCancelled}:  true,
		{JobScheduled, JobTerminated}: true,
		{JobRunning, JobSucceeded}:    true,
		{JobRunning, JobFailed}:       true,
		{JobRunning, JobPending}:      true,
		{JobRunning, JobCancelled}:    true,
		{JobRunning, JobTerminated}:   true,
		{JobTerminated, JobPending}:   true,
	}
	n := 0
	for _, from := range AllJobStates {
		for _, to := range AllJobStates {
			n++
			want := legal[[2]JobState{from, to}]
			if got := CanTransition(from, to); got != want {
				t.Errorf("CanTransition(%s, %s) = %v, want %v", from, to, got, want)
			}
			err := Transition(from, to)
			var ite *ErrIllegalTransition
			switch {
			case want && err != nil:
				t.Errorf("Transition(%s, %s) = %v, want nil", from, to, err)
			case !want && (!errors.As(err, &ite) || ite.From != from || ite.To != to):
				t.Errorf("Transition(%s, %s) = %v, want *ErrIllegalTransition", from, to, err)
			}
		}
	}
	if n != 49 {
		t.Fatalf("checked %d pairs, want 49", n)
	}
	// Unknown states move nowhere.
	if CanTransition("BOGUS", JobPending) || CanTransition(JobPending, "BOGUS") {
		t.Error("a transition with an unknown state was allowed")
	}
}

func TestJobState_Terminal(t *testing.T) {
	terminal := map[JobState]bool{JobSucceeded: true, JobFailed: true, JobCancelled: true, JobTerminated: true}
	for _, s := range AllJobStates {
		if s.Terminal() != terminal[s] {
			t.Errorf("%s.Terminal() = %v", s, s.Terminal())
		}
		if !s.Valid() {
			t.Errorf("%s.Valid() = false", s)
		}
	}
	if JobState("X").Valid() {
		t.Error("unknown state is valid")
	}
}

func TestDerivePipelineState(t *testing.T) {
	cases := []struct {
		states    []JobState
		cancelled bool
		want      PipelineState
	}{
		{[]JobState{JobPending, JobPending}, false, PipelinePending},
		{[]JobState{JobScheduled, JobPending}, false, PipelineRunning},
		{[]JobState{JobSucceeded, JobPending}, false, PipelineRunning},
		{[]JobState{JobSucceeded, JobSucceeded}, false, PipelineSucceeded},
		{[]JobState{JobSucceeded, JobFailed, JobCancelled}, false, PipelineFailed},
		{[]JobState{JobTerminated}, false, PipelineFailed},
		{[]JobState{JobSucceeded, JobCancelled}, false, PipelineCancelled},
		{[]JobState{JobFailed, JobCancelled}, true, PipelineCancelled},
		{[]JobState{JobRunning, JobCancelled}, true, PipelineRunning},
	}
	for _, c := range cases {
		if got := DerivePipelineState(c.states, c.cancelled); got != c.want {
			t.Errorf("DerivePipelineState(%v, %v) = %s, want %s", c.states, c.cancelled, got, c.want)
		}
	}
}

func TestResources_Fits(t *testing.T) {
	c := Resources{CPU: 1000, MemoryMB: 512}
	for _, tc := range []struct {
		r   Resources
		ok  bool
		dim string
	}{
		{Resources{1000, 512}, true, ""},
		{Resources{1001, 1}, false, "cpu"},
		{Resources{1, 513}, false, "memory"},
	} {
		ok, dim := tc.r.Fits(c)
		if ok != tc.ok || dim != tc.dim {
			t.Errorf("%+v.Fits = %v %q, want %v %q", tc.r, ok, dim, tc.ok, tc.dim)
		}
	}
}
