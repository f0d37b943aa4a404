package broker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ciplat/ciplat/fsm/structs"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func ev(id string, prio int, idx uint64) *structs.Evaluation {
	return &structs.Evaluation{ID: id, Priority: prio, CreateIndex: idx, Status: structs.EvalPending}
}

func dequeue(t *testing.T, b *Broker) (*structs.Evaluation, uint64) {
	t.Helper()
	// A bound, not a pace: under -race on two busy cores a submit's
	// evaluation has taken over 5 s to reach the broker.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, token, err := b.Dequeue(ctx)
	if err != nil {
		t.Fatalf("dequeue: %v", err)
	}
	return e, token
}

// empty asserts nothing is ready.
func empty(t *testing.T, b *Broker) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if e, _, err := b.Dequeue(ctx); err == nil {
		t.Fatalf("dequeued %s, want nothing ready", e.ID)
	}
}

func TestBroker_PriorityThenFIFO(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	b := New(clk.now, Config{})
	b.SetEnabled(true)
	b.Enqueue(ev("low-1", 10, 1))
	b.Enqueue(ev("high-2", 90, 3))
	b.Enqueue(ev("high-1", 90, 2))
	b.Enqueue(ev("mid", 50, 4))
	if b.Enqueue(ev("high-1", 90, 2)) {
		t.Fatal("a duplicate was taken")
	}
	if got := b.m.ready[90].Load(); got != 2 {
		t.Fatalf("ready gauge at priority 90 = %d, want 2", got)
	}
	want := []string{"high-1", "high-2", "mid", "low-1"}
	for _, w := range want {
		if got, _ := dequeue(t, b); got.ID != w {
			t.Fatalf("dequeued %s, want %s", got.ID, w)
		}
	}
	if st := b.Stats(); st.Ready != 0 || st.Delayed != 0 || st.Unacked != 4 {
		t.Fatalf("stats after draining: %+v", st)
	}
	if got := b.m.ready[90].Load() + b.m.ready[50].Load() + b.m.ready[10].Load(); got != 0 {
		t.Fatalf("ready gauges after draining = %d, want 0", got)
	}
}

func TestBroker_NackRedeliversThenFails(t *testing.T) {
	b := New(time.Now, Config{DeliveryLimit: 3})
	b.SetEnabled(true)
	b.Enqueue(ev("e", 50, 1))
	for i := 1; i <= 3; i++ {
		got, token := dequeue(t, b)
		if got.ID != "e" {
			t.Fatalf("delivery %d: got %s", i, got.ID)
		}
		failed, err := b.Nack(got.ID, token, "plan conflict")
		if err != nil {
			t.Fatalf("nack %d: %v", i, err)
		}
		if failed != (i == 3) {
			t.Fatalf("nack %d: failed = %v, want %v", i, failed, i == 3)
		}
	}
	select {
	case <-b.FailedCh():
	default:
		t.Fatal("no failure signalled at the delivery limit")
	}
	fs := b.TakeFailed()
	if len(fs) != 1 || fs[0].Eval.ID != "e" || fs[0].Deliveries != 3 || fs[0].Reason != "plan conflict" {
		t.Fatalf("failed = %+v; want e after 3 deliveries, reason plan conflict", fs)
	}
	// Until the failure is recorded, state may still show it pending: the
	// broker must not take it again.
	if b.Enqueue(ev("e", 50, 1)) {
		t.Fatal("a failing evaluation was taken again before it was recorded")
	}
	b.FailedRecorded("e")
	if !b.Enqueue(ev("e", 50, 1)) {
		t.Fatal("a recorded failure could not be enqueued again")
	}
}

func TestBroker_AckTokens(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	b := New(clk.now, Config{RedeliveryTimeout: 10 * time.Second})
	b.SetEnabled(true)
	b.Enqueue(ev("e", 50, 1))
	_, old := dequeue(t, b)
	clk.t = clk.t.Add(11 * time.Second)
	b.expireUnacked()
	_, token := dequeue(t, b)
	if err := b.Ack("e", old); !errors.Is(err, ErrTokenMismatch) {
		t.Fatalf("ack with the first delivery's token: %v, want ErrTokenMismatch", err)
	}
	if _, err := b.Nack("e", old, "late"); !errors.Is(err, ErrTokenMismatch) {
		t.Fatalf("nack with the first delivery's token: %v, want ErrTokenMismatch", err)
	}
	if err := b.Ack("e", token); err != nil {
		t.Fatalf("ack: %v", err)
	}
	if err := b.Ack("e", token); !errors.Is(err, ErrNotOutstanding) {
		t.Fatalf("second ack: %v, want ErrNotOutstanding", err)
	}
}

// TestBroker_RedeliveryTimeout: an evaluation handed out and not acked
// within the timeout is handed out again, on the injected clock, and fails
// once the timeouts reach the delivery limit.
func TestBroker_RedeliveryTimeout(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	b := New(clk.now, Config{RedeliveryTimeout: 30 * time.Second, DeliveryLimit: 2})
	b.SetEnabled(true)
	b.Enqueue(ev("stuck", 50, 1))
	dequeue(t, b)

	clk.t = clk.t.Add(29 * time.Second)
	if next := b.expireUnacked(); !next.Equal(time.Unix(1030, 0)) {
		t.Fatalf("next deadline %v, want 1030", next)
	}
	empty(t, b)

	clk.t = clk.t.Add(time.Second)
	b.expireUnacked()
	if got, _ := dequeue(t, b); got.ID != "stuck" {
		t.Fatalf("redelivered %s", got.ID)
	}
	if n := b.m.timedOut.Load(); n != 1 {
		t.Fatalf("redelivered counter = %d, want 1", n)
	}
	clk.t = clk.t.Add(30 * time.Second)
	b.expireUnacked()
	empty(t, b)
	fs := b.TakeFailed()
	if len(fs) != 1 || fs[0].Deliveries != 2 || !strings.Contains(fs[0].Reason, "not acked within 30s") {
		t.Fatalf("failed = %+v; want stuck, 2 deliveries, not acked within 30s", fs)
	}
}

// TestBroker_RedeliveryLoop runs the timeout loop on the real clock.
func TestBroker_RedeliveryLoop(t *testing.T) {
	b := New(time.Now, Config{RedeliveryTimeout: 50 * time.Millisecond})
	b.SetEnabled(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.RunTimeouts(ctx)
	b.Enqueue(ev("e", 50, 1))
	_, first := dequeue(t, b)
	got, second := dequeue(t, b) // blocks until the loop redelivers
	if got.ID != "e" || second == first {
		t.Fatalf("redelivery: %s token %d (first %d)", got.ID, second, first)
	}
}

func TestBroker_Bounded(t *testing.T) {
	b := New(time.Now, Config{MaxEvals: 2})
	b.SetEnabled(true)
	room := b.Room()
	if n := b.EnqueueAll([]*structs.Evaluation{ev("a", 50, 1), ev("b", 50, 2), ev("c", 50, 3)}); n != 2 {
		t.Fatalf("took %d of 3 into a broker of 2", n)
	}
	if !b.Full() {
		t.Fatal("broker of 2 holding 2 is not full")
	}
	select {
	case <-room:
		t.Fatal("room signalled while full")
	default:
	}
	e, token := dequeue(t, b)
	if !b.Full() {
		t.Fatal("an outstanding evaluation must still count")
	}
	if err := b.Ack(e.ID, token); err != nil {
		t.Fatal(err)
	}
	select {
	case <-room:
	case <-time.After(5 * time.Second):
		t.Fatal("no room signalled after an ack")
	}
	if !b.Enqueue(ev("c", 50, 3)) {
		t.Fatal("refused after room was made")
	}
	if n := b.m.refused.Load(); n != 1 {
		t.Fatalf("refused counter = %d, want 1", n)
	}
}

func TestBroker_DelayedUntilWaitUntil(t *testing.T) {
	start := time.Now()
	b := New(time.Now, Config{})
	b.SetEnabled(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.RunDelayed(ctx)
	late := ev("late", 90, 1)
	late.WaitUntil = start.Add(150 * time.Millisecond)
	b.Enqueue(late)
	b.Enqueue(ev("now", 10, 2))
	if got, _ := dequeue(t, b); got.ID != "now" {
		t.Fatalf("the delayed evaluation came first: %s", got.ID)
	}
	got, _ := dequeue(t, b)
	if got.ID != "late" {
		t.Fatalf("got %s, want late", got.ID)
	}
	if time.Now().Before(late.WaitUntil) {
		t.Fatalf("delayed evaluation handed out %v before its WaitUntil", time.Until(late.WaitUntil))
	}
}

func TestBroker_DisableDropsAndWakes(t *testing.T) {
	b := New(time.Now, Config{})
	b.SetEnabled(true)
	b.Enqueue(ev("a", 50, 1))
	b.SetEnabled(false)
	b.Enqueue(ev("b", 50, 2)) // ignored while disabled
	empty(t, b)
	b.SetEnabled(true)
	b.Enqueue(ev("a", 50, 1))
	if got, _ := dequeue(t, b); got.ID != "a" {
		t.Fatalf("after re-enable got %s", got.ID)
	}
}

// TestBroker_EnqueueOwed: what a full broker turns away comes back to
// the caller (owed until Room fires); what it holds already, or holds
// aside as failed, does not, nor does anything while disabled.
func TestBroker_EnqueueOwed(t *testing.T) {
	b := New(time.Now, Config{MaxEvals: 2, DeliveryLimit: 1})
	if owed := b.EnqueueOwed([]*structs.Evaluation{ev("a", 50, 1)}); len(owed) != 0 {
		t.Fatalf("a disabled broker owes %d, want none (the next leader offers from state)", len(owed))
	}
	b.SetEnabled(true)
	b.Enqueue(ev("failing", 50, 1))
	e, token := dequeue(t, b)
	if failed, err := b.Nack(e.ID, token, "boom"); err != nil || !failed {
		t.Fatalf("nack at the delivery limit: failed %v, %v", failed, err)
	}
	owed := b.EnqueueOwed([]*structs.Evaluation{ev("a", 50, 2), ev("a", 50, 2), ev("failing", 50, 1), ev("b", 50, 3), ev("c", 50, 4)})
	if len(owed) != 1 || owed[0].ID != "c" {
		t.Fatalf("owed %v, want only c (a held already, failing held aside, b taken)", ids(owed))
	}
	if s := b.Stats(); s.Ready != 2 {
		t.Fatalf("ready %d, want a and b", s.Ready)
	}
}

func ids(evals []*structs.Evaluation) []string {
	out := make([]string, len(evals))
	for i, e := range evals {
		out[i] = e.ID
	}
	return out
}
