package server

import (
	"context"
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

func dequeue(t *testing.T, b *EvalBroker) *structs.Evaluation {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e, err := b.Dequeue(ctx)
	if err != nil {
		t.Fatalf("dequeue: %v", err)
	}
	return e
}

func TestEvalBroker_PriorityThenFIFO(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	b := NewEvalBroker(clk.now)
	b.SetEnabled(true)
	b.Enqueue(ev("low-1", 10, 1))
	b.Enqueue(ev("high-2", 90, 3))
	b.Enqueue(ev("high-1", 90, 2))
	b.Enqueue(ev("mid", 50, 4))
	b.Enqueue(ev("high-1", 90, 2)) // duplicate: ignored
	want := []string{"high-1", "high-2", "mid", "low-1"}
	for _, w := range want {
		if got := dequeue(t, b).ID; got != w {
			t.Fatalf("dequeued %s, want %s", got, w)
		}
	}
	if r, d, _ := b.Stats(); r != 0 || d != 0 {
		t.Fatalf("stats after draining: ready=%d delayed=%d", r, d)
	}
}

func TestEvalBroker_NackRedeliversUntilLimit(t *testing.T) {
	b := NewEvalBroker(time.Now)
	b.SetEnabled(true)
	e := ev("e", 50, 1)
	b.Enqueue(e)
	for i := 1; i <= DeliveryLimit; i++ {
		got := dequeue(t, b)
		if got.ID != "e" {
			t.Fatalf("delivery %d: got %s", i, got.ID)
		}
		ok := b.Nack(got)
		if i < DeliveryLimit && !ok {
			t.Fatalf("nack %d refused before the limit", i)
		}
		if i == DeliveryLimit && ok {
			t.Fatalf("nack %d accepted past the delivery limit", i)
		}
	}
	// After the limit the broker forgot it: enqueueing again works.
	b.Enqueue(e)
	if got := dequeue(t, b); got.ID != "e" {
		t.Fatalf("re-enqueue after limit: got %s", got.ID)
	}
}

func TestEvalBroker_DelayedUntilWaitUntil(t *testing.T) {
	start := time.Now()
	b := NewEvalBroker(time.Now)
	b.SetEnabled(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.runDelayed(ctx)
	late := ev("late", 90, 1)
	late.WaitUntil = start.Add(150 * time.Millisecond)
	b.Enqueue(late)
	b.Enqueue(ev("now", 10, 2))
	if got := dequeue(t, b); got.ID != "now" {
		t.Fatalf("the delayed evaluation came first: %s", got.ID)
	}
	got := dequeue(t, b)
	if got.ID != "late" {
		t.Fatalf("got %s, want late", got.ID)
	}
	if time.Now().Before(late.WaitUntil) {
		t.Fatalf("delayed evaluation handed out %v before its WaitUntil", late.WaitUntil.Sub(time.Now()))
	}
}

func TestEvalBroker_DisableDropsAndWakes(t *testing.T) {
	b := NewEvalBroker(time.Now)
	b.SetEnabled(true)
	b.Enqueue(ev("a", 50, 1))
	b.SetEnabled(false)
	b.Enqueue(ev("b", 50, 2)) // ignored while disabled
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if e, err := b.Dequeue(ctx); err == nil {
		t.Fatalf("disabled broker handed out %s", e.ID)
	}
	b.SetEnabled(true)
	b.Enqueue(ev("a", 50, 1))
	if got := dequeue(t, b); got.ID != "a" {
		t.Fatalf("after re-enable got %s", got.ID)
	}
}
