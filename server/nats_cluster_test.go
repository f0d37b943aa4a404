package server

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ciplat/ciplat/server/events"
)

// withEmbeddedNATSCluster gives each server an embedded NATS server with a
// client and a route listener on free ports.
func withEmbeddedNATSCluster(c *Config) {
	c.Events = &events.Config{Addr: "127.0.0.1:0", ClusterAddr: "127.0.0.1:0"}
}

// streamInfo asks the NATS server at url for CIPLAT_EVENTS's info.
func streamInfo(url string) (*jetstream.StreamInfo, error) {
	nc, err := nats.Connect(url, nats.Timeout(2*time.Second))
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		return nil, err
	}
	return st.Info(ctx)
}

// readStreamIDs reads CIPLAT_EVENTS through the NATS server at url as a
// tool would, with an ordered consumer on domain.>, and returns the first
// want messages' Nats-Msg-Id in stream order. A transient error (a stream
// leader election after a server died) is retried: the ordered consumer
// resumes after the last message it delivered.
func readStreamIDs(t *testing.T, url string, want int) []string {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var c jetstream.Consumer
	for c == nil {
		if c, err = js.OrderedConsumer(ctx, events.StreamName, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"domain.>"}}); err != nil {
			if ctx.Err() != nil {
				t.Fatalf("consumer: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	var ids []string
	for len(ids) < want && ctx.Err() == nil {
		m, err := c.Next(jetstream.FetchMaxWait(2 * time.Second))
		if err != nil {
			t.Logf("reading through %s: %v (retrying)", url, err)
			continue
		}
		ids = append(ids, m.Headers().Get(jetstream.MsgIDHeader))
	}
	return ids
}

// TestNATSCluster_EmbeddedServersFormOneCluster starts three servers whose
// embedded NATS servers find each other through serf: one NATS cluster,
// CIPLAT_EVENTS replicated three times, the leader's events readable
// through a follower's NATS; then the leader is killed and a surviving
// server's NATS holds every committed event once, in index order.
func TestNATSCluster_EmbeddedServersFormOneCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("three servers with embedded clustered NATS")
	}
	c := newTestCluster(t, 3, withEmbeddedNATSCluster)

	// Each server gossips its route address and routes to the two others.
	for _, cs := range c.servers {
		waitForTB(t, cs.name+" to route to the other NATS servers", func() bool {
			return len(cs.srv.EventBus().Routes()) == 3 && cs.srv.EventBus().Embedded().NumRoutes() >= 2
		})
	}
	l := c.waitStable(3)
	submitN := func(from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			var err error
			ok := false
			for try := 0; try < 50 && !ok; try++ {
				cur := c.leader()
				if cur == nil {
					cur = c.running()[try%len(c.running())]
				}
				var code int
				_, code, err = cur.submitTo(twoJobs, fmt.Sprintf("p-%d", i))
				ok = err == nil && code/100 == 2
				if !ok {
					time.Sleep(50 * time.Millisecond)
				}
			}
			if !ok {
				t.Fatalf("submit p-%d: %v", i, err)
			}
		}
	}
	submitN(0, 5)

	// A tool connected to a follower's NATS sees the leader's events, in a
	// stream replicated on the three servers.
	f := c.followers()[0]
	furl := f.srv.EventBus().ClientURL()
	want := waitPublishedAll(t, "the leader", l.srv)
	var info *jetstream.StreamInfo
	waitForTB(t, "CIPLAT_EVENTS with 3 current replicas seen from "+f.name, func() bool {
		var err error
		info, err = streamInfo(furl)
		if err != nil || info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
			return false
		}
		for _, r := range info.Cluster.Replicas {
			if !r.Current {
				return false
			}
		}
		return true
	})
	if info.Cluster.Name != "ciplat" {
		t.Errorf("NATS cluster name %q, want ciplat", info.Cluster.Name)
	}
	if got := readStreamIDs(t, furl, len(want)); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("through %s's NATS the stream differs:\nstream %v\nstate  %v", f.name, got, want)
	}
	t.Logf("stream leader %s, replicas %d, %d events read through follower %s", info.Cluster.Leader, info.Config.Replicas, len(want), f.name)

	// Kill the leader (its NATS server goes with it) and keep submitting.
	old := l
	old.kill()
	submitN(5, 5)
	next := c.waitStable(3) // the dead server stays a voter (no cleanup)
	if next == old {
		t.Fatal("the killed server still leads")
	}
	want = waitPublishedAll(t, "the new leader", next.srv)
	for _, cs := range c.running() {
		url := cs.srv.EventBus().ClientURL()
		got := readStreamIDs(t, url, len(want))
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("through %s's NATS after the failover the stream differs from the committed events:\nstream (%d) %v\nstate  (%d) %v",
				cs.name, len(got), got, len(want), want)
		}
		info, err := streamInfo(url)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs != uint64(len(want)) {
			t.Fatalf("the stream holds %d messages, want %d (a duplicate?)", info.State.Msgs, len(want))
		}
	}
	st := next.srv.EventPublisher().Status()
	t.Logf("%d events once each, in index order, across the failover from %s to %s (new leader published %d, %d duplicates dropped)",
		len(want), old.name, next.name, st.Published, st.Duplicates)
}

// waitPublishedAll waits until leader's publisher has published the last
// event in its state, and returns the events of state then. Scheduling may
// still add events (a blocked evaluation, say) after a first look, so the
// two are compared again until they meet.
func waitPublishedAll(t *testing.T, what string, leader *Server) []string {
	t.Helper()
	var want []string
	waitForTB(t, what+" to publish every event in its state", func() bool {
		want = stateEventIDs(t, leader)
		st := leader.EventPublisher().Status()
		return len(want) > 0 && fmt.Sprintf("%d-%d", st.Last.Index, st.Last.Seq) == want[len(want)-1]
	})
	return want
}
