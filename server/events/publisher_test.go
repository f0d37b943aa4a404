package events

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

// startBus embeds a NATS server on a free port with JetStream in a temp dir.
func startBus(t *testing.T, dir string) *Bus {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	b, err := Start(Config{Addr: "127.0.0.1:-1", StoreDir: dir, ServerName: "test"})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

// addEvents commits entries at indexes from..to, each with n events.
func addEvents(t *testing.T, s *state.StateStore, from, to uint64, n int) {
	t.Helper()
	for idx := from; idx <= to; idx++ {
		evs := make([]*structs.Event, n)
		for i := range evs {
			evs[i] = &structs.Event{Topic: structs.AllEventTopics[(int(idx)+i)%len(structs.AllEventTopics)],
				Key: fmt.Sprintf("k%d", idx), Time: time.Unix(int64(idx), 0).UTC()}
		}
		if err := s.Write(idx, func(tx *state.WriteTxn) error { return tx.AppendEvents(evs) }); err != nil {
			t.Fatalf("write %d: %v", idx, err)
		}
	}
}

// streamIDs reads every message of CIPLAT_EVENTS through a plain NATS
// client (as natscli would) and returns their Nats-Msg-Ids in stream order.
func streamIDs(t *testing.T, url string) []string {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, StreamName)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatalf("info: %v", err)
	}
	var ids []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get %d: %v", seq, err)
		}
		var e structs.Event
		if err := json.Unmarshal(m.Data, &e); err != nil {
			t.Fatalf("message %d is not an event: %v", seq, err)
		}
		if m.Subject != e.Topic || m.Header.Get(HeaderIndex) != strconv.FormatUint(e.Index, 10) {
			t.Fatalf("message %d: subject %s header %s, event %s at %d", seq, m.Subject, m.Header.Get(HeaderIndex), e.Topic, e.Index)
		}
		ids = append(ids, m.Header.Get(jetstream.MsgIDHeader))
	}
	return ids
}

// wantIDs is every event ID of the store, in order.
func wantIDs(t *testing.T, s *state.StateStore) []string {
	evs, err := s.EventsAfter(nil, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID()
	}
	return out
}

// waitPublished waits until the publisher acknowledged position want.
func waitPublished(t *testing.T, p *Publisher, want Position) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		ch := p.Published()
		if st := p.Status(); st.Last == want {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("publisher stopped at %+v, want %+v (status %+v)", p.Status().Last, want, p.Status())
		}
	}
}

func runPublisher(t *testing.T, b *Bus, s *state.StateStore) (*Publisher, context.CancelFunc) {
	t.Helper()
	p := b.NewPublisher(func() *state.StateStore { return s })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return p, stop
}

func equalIDs(t *testing.T, got, want []string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("stream holds %d events\n  %v\nwant %d\n  %v", len(got), got, len(want), want)
	}
}

func TestPublisher_PublishesEachEventOnceInOrder(t *testing.T) {
	b := startBus(t, "")
	s, _ := state.NewStateStore()
	addEvents(t, s, 1, 300, 3) // more than one batch
	p, _ := runPublisher(t, b, s)
	waitPublished(t, p, Position{Index: 300, Seq: 2})

	// Live: new commits are published as they land.
	addEvents(t, s, 305, 310, 1)
	waitPublished(t, p, Position{Index: 310})
	equalIDs(t, streamIDs(t, b.ClientURL()), wantIDs(t, s))
	if st := p.Status(); st.Published != 906 || st.Duplicates != 0 {
		t.Fatalf("status = %+v, want 906 published, no duplicates", st)
	}
}

// TestPublisher_ResumesAfterLeaderChange plays two leaders with their own
// copies of the same state: the second starts after the first published
// part of the events, resumes from the stream, and the stream ends up with
// every event once, in order.
func TestPublisher_ResumesAfterLeaderChange(t *testing.T) {
	b := startBus(t, "")
	first, _ := state.NewStateStore()
	second, _ := state.NewStateStore()
	addEvents(t, first, 1, 50, 2)
	addEvents(t, second, 1, 50, 2)

	p1, stop1 := runPublisher(t, b, first)
	waitPublished(t, p1, Position{Index: 50, Seq: 1})
	stop1() // leadership lost

	addEvents(t, second, 51, 80, 2) // committed under the new leader
	p2, _ := runPublisher(t, b, second)
	waitPublished(t, p2, Position{Index: 80, Seq: 1})
	equalIDs(t, streamIDs(t, b.ClientURL()), wantIDs(t, second))
	if st := p2.Status(); st.Published != 60 {
		t.Fatalf("second leader published %d events, want only the 60 new ones (%+v)", st.Published, st)
	}
}

// TestPublisher_OldLeaderStillPublishing runs both publishers at once (a
// deposed leader that has not noticed yet): duplicates are dropped by
// Nats-Msg-Id and the order check, and the stream stays exact.
func TestPublisher_OldLeaderStillPublishing(t *testing.T) {
	b := startBus(t, "")
	a, _ := state.NewStateStore()
	c, _ := state.NewStateStore()
	addEvents(t, a, 1, 200, 2)
	addEvents(t, c, 1, 200, 2)
	pa, _ := runPublisher(t, b, a)
	pc, _ := runPublisher(t, b, c)
	waitPublished(t, pa, Position{Index: 200, Seq: 1})
	waitPublished(t, pc, Position{Index: 200, Seq: 1})
	equalIDs(t, streamIDs(t, b.ClientURL()), wantIDs(t, a))
}

func TestBus_DuplicateMsgIDDropped(t *testing.T) {
	b := startBus(t, "")
	ctx := context.Background()
	if _, err := b.EnsureStream(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		ack, err := b.JetStream().Publish(ctx, structs.TopicJobStarted, []byte(`{}`), jetstream.WithMsgID("7-0"))
		if err != nil {
			t.Fatal(err)
		}
		if ack.Duplicate != (i > 0) {
			t.Fatalf("publish %d: duplicate = %v", i, ack.Duplicate)
		}
	}
	st, _ := b.JetStream().Stream(ctx, StreamName)
	info, _ := st.Info(ctx)
	if info.State.Msgs != 1 {
		t.Fatalf("stream holds %d messages, want 1", info.State.Msgs)
	}
}

// TestPublisher_SurvivesNATSRestart restarts the embedded server on the
// same store dir: the stream and its last message ID survive, and the
// publisher continues after it.
func TestPublisher_SurvivesNATSRestart(t *testing.T) {
	dir := t.TempDir()
	b := startBus(t, dir)
	s, _ := state.NewStateStore()
	addEvents(t, s, 1, 20, 1)
	p, stop := runPublisher(t, b, s)
	waitPublished(t, p, Position{Index: 20})
	stop()
	b.Close()

	b2 := startBus(t, dir)
	addEvents(t, s, 21, 30, 1)
	p2, _ := runPublisher(t, b2, s)
	waitPublished(t, p2, Position{Index: 30})
	equalIDs(t, streamIDs(t, b2.ClientURL()), wantIDs(t, s))
}

func TestPublisher_ForeignMessageInStream(t *testing.T) {
	b := startBus(t, "")
	s, _ := state.NewStateStore()
	addEvents(t, s, 1, 5, 1)
	p, stop := runPublisher(t, b, s)
	waitPublished(t, p, Position{Index: 5})
	stop()
	// A tool publishes on domain.> without a ciplat ID.
	if _, err := b.JetStream().Publish(context.Background(), "domain.telemetry.metric.emitted", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	addEvents(t, s, 6, 8, 1)
	p2, _ := runPublisher(t, b, s)
	waitPublished(t, p2, Position{Index: 8})
	if st := p2.Status(); st.Published != 3 {
		t.Fatalf("published %d after the foreign message, want 3 (%+v)", st.Published, st)
	}
}
