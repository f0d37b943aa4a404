package fsm

import (
	"fmt"
	"strings"
	"time"

	"github.com/ciplat/ciplat/fsm/structs"
)

// Reschedule is not retry (DESIGN.md; Nomad's `reschedule` apart from its
// `restart`): an attempt that an infrastructure fault ended — its node lost,
// its worker lost by a client restart, its worker not created, the job
// preempted or drained off its node — is placed again under the job's
// reschedule policy, never against its retry policy, which stays for the
// job's own failures. The attempt history (Kind, Cause) and the events
// (job.failed / job.requested with kind and cause) say which was which.

// rescheduleAfterFault ends j's current attempt (j is a copy, SCHEDULED,
// RUNNING or already TERMINATED) TERMINATED because of an infrastructure
// fault (cause, one of structs.Cause*), and puts the job back to PENDING
// with an evaluation while its reschedule policy allows. An eviction (a
// drain or a preemption: the scheduler's own choice, as Nomad does not
// count it) does not use up the policy; every other cause does. Evictions (preempted,
// drained) are placed at once; the nth other reschedule waits
// ReschedulePolicy.DelayFor(n) from the entry's timestamp (RetryAt and the
// evaluation's WaitUntil, which the broker honours). With no attempt left
// the job stays TERMINATED, its reason says so, and the jobs needing it are
// skipped.
func (ac *applyCtx) rescheduleAfterFault(j *structs.Job, cause, reason string) error {
	if j.State != structs.JobTerminated {
		if err := move(j, structs.JobTerminated); err != nil {
			return err
		}
	}
	policy := j.Spec.ReschedulePolicyOf()
	counted := cause != structs.CauseDrained && cause != structs.CausePreempted
	if counted && j.RescheduleAttempts >= policy.Attempts {
		ac.recordAs(j, structs.JobTerminated, reason, "", cause)
		return ac.failForGood(j, exhaustedReason(reason, policy.Attempts))
	}
	ac.recordAs(j, structs.JobTerminated, reason, structs.AttemptReschedule, cause)
	final := false
	ac.emitJob(structs.TopicJobFailed, j, func(p *structs.JobEventPayload) {
		p.State, p.Reason, p.Final = structs.JobTerminated, reason, &final
		p.Kind, p.Cause = structs.AttemptReschedule, cause
	})
	if err := move(j, structs.JobPending); err != nil {
		return err
	}
	j.Attempt++
	j.Rescheduled++
	j.AllocID = ""
	j.RetryAt = time.Time{}
	trigger := structs.TriggerReschedule
	switch cause {
	case structs.CausePreempted:
		trigger = structs.TriggerPreempted
	case structs.CauseDrained:
		trigger = structs.TriggerNodeDrain
	}
	if counted {
		j.RescheduleAttempts++
		if trigger == structs.TriggerReschedule {
			if d := policy.DelayFor(j.RescheduleAttempts); d > 0 {
				j.RetryAt = ac.ts.Add(d)
			}
		}
	}
	if err := ac.createEval(j, trigger, j.RetryAt); err != nil {
		return err
	}
	if counted {
		j.Reason = fmt.Sprintf("rescheduled (%d of %d) after: %s", j.RescheduleAttempts, policy.Attempts, reason)
	} else {
		j.Reason = "rescheduled after: " + reason
	}
	ac.emitJob(structs.TopicJobRequested, j, func(p *structs.JobEventPayload) {
		p.Trigger, p.RetryAt = trigger, j.RetryAt
		p.Kind, p.Cause = structs.AttemptReschedule, cause
	})
	return ac.putJob(j)
}

// exhaustedReason is the reason of a job a fault ended with no reschedule
// attempt left.
func exhaustedReason(reason string, attempts int) string {
	if attempts <= 0 {
		return reason + " (the job's reschedule policy allows no reschedule)"
	}
	return fmt.Sprintf("%s (not rescheduled: all %d reschedule attempts used)", reason, attempts)
}

// checkClientCause refuses a report whose cause a client may not give, or
// that gives one on anything but a FAILED attempt: every server refuses it
// the same way (the HTTP edge already answers 400).
func checkClientCause(u *structs.AllocUpdate) error {
	if u.Cause == "" {
		return nil
	}
	if !structs.ValidClientCause(u.Cause) {
		return fmt.Errorf("allocation %s: cause %s is not one a client may report (%s)",
			structs.ShowKey(u.AllocID), structs.ShowValue(u.Cause), strings.Join(structs.ClientCauses, ", "))
	}
	if u.JobState != structs.JobFailed {
		return fmt.Errorf("allocation %s: cause %s needs job_state FAILED, got %s",
			structs.ShowKey(u.AllocID), structs.ShowValue(u.Cause), structs.ShowValue(string(u.JobState)))
	}
	return nil
}
