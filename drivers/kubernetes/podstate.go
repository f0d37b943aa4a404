package kubernetes

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// podState is where a worker Pod is in its life, as the driver sees it.
type podState int

const (
	podStarting podState = iota // pending: not scheduled, pulling, creating
	podRunning                  // its container runs: steps may exec in it
	podGone                     // deleted, failed, evicted or unable to start: the worker is lost
)

// fatalWaiting are the reasons a container waits for that will not fix
// themselves soon: a job stuck on them fails now, with the reason.
var fatalWaiting = map[string]bool{
	"ErrImagePull":               true,
	"ImagePullBackOff":           true,
	"InvalidImageName":           true,
	"ErrImageNeverPull":          true,
	"CreateContainerConfigError": true,
	"CreateContainerError":       true,
	"RunContainerError":          true,
	"CrashLoopBackOff":           true,
}

// podStatus is what describe finds.
type podStatus struct {
	state  podState
	reason string // why gone, or what a starting Pod waits for
	// unschedulable is set when the scheduler found no node: since when.
	unschedulable time.Time
}

// describe reads p's phase, conditions and container statuses. It is pure,
// so every mapping from a Pod to a job error is tested without a cluster.
func describe(p *corev1.Pod) podStatus {
	// An eviction, a preemption or the taint manager mark the Pod before
	// they delete it: that says more than "being deleted".
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue {
			return podStatus{state: podGone, reason: fmt.Sprintf("pod %s was disrupted (%s): %s", p.Name, c.Reason, c.Message)}
		}
	}
	if p.DeletionTimestamp != nil {
		return podStatus{state: podGone, reason: fmt.Sprintf("pod %s is being deleted", p.Name)}
	}
	switch p.Status.Phase {
	case corev1.PodFailed:
		why := strings.TrimSpace(p.Status.Reason + ": " + p.Status.Message)
		if why == ":" {
			why = containerEnd(p)
		}
		return podStatus{state: podGone, reason: fmt.Sprintf("pod %s failed: %s", p.Name, strings.Trim(why, ": "))}
	case corev1.PodSucceeded:
		return podStatus{state: podGone, reason: fmt.Sprintf("pod %s ended: %s", p.Name, containerEnd(p))}
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name != containerName {
			continue
		}
		switch {
		case cs.State.Waiting != nil && fatalWaiting[cs.State.Waiting.Reason]:
			w := cs.State.Waiting
			return podStatus{state: podGone, reason: fmt.Sprintf("pod %s cannot start its container (image %q): %s: %s", p.Name, cs.Image, w.Reason, w.Message)}
		case cs.State.Terminated != nil:
			return podStatus{state: podGone, reason: fmt.Sprintf("pod %s: %s", p.Name, containerEnd(p))}
		case cs.State.Running != nil && p.Status.Phase == corev1.PodRunning:
			return podStatus{state: podRunning}
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return podStatus{state: podStarting, unschedulable: c.LastTransitionTime.Time,
				reason: fmt.Sprintf("pod %s unschedulable: %s", p.Name, c.Message)}
		}
	}
	why := "pending"
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Waiting != nil && cs.State.Waiting.Reason != "" {
			why = cs.State.Waiting.Reason
		}
	}
	if p.Spec.NodeName == "" {
		why = "not scheduled yet"
	}
	return podStatus{state: podStarting, reason: fmt.Sprintf("pod %s is %s (phase %s)", p.Name, why, p.Status.Phase)}
}

// containerEnd says how the worker container terminated.
func containerEnd(p *corev1.Pod) string {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == containerName && cs.State.Terminated != nil {
			t := cs.State.Terminated
			return strings.TrimRight(fmt.Sprintf("container exited with code %d (%s) %s", t.ExitCode, t.Reason, t.Message), " ")
		}
	}
	return "container ended"
}
