package server

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ciplat/ciplat/server/events"
)

// clusterMember is one server of an in-process three-server cluster.
type clusterMember struct {
	srv  *Server
	web  *httptest.Server
	down bool
}

// startEventCluster starts three servers (Raft over loopback TCP, serf
// joined) that publish to the one NATS server at natsURL.
func startEventCluster(t *testing.T, natsURL string) []*clusterMember {
	t.Helper()
	var members []*clusterMember
	for i := 1; i <= 3; i++ {
		web := httptest.NewUnstartedServer(nil)
		s, err := New(Config{
			NodeName:        fmt.Sprintf("s%d", i),
			DataDir:         t.TempDir(),
			RaftAddr:        "127.0.0.1:0",
			SerfAddr:        "127.0.0.1:0",
			HTTPAddr:        web.Listener.Addr().String(),
			BootstrapExpect: 3,
			Dev:             true,
			Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
			Events:          &events.Config{URL: natsURL},
		})
		if err != nil {
			t.Fatalf("start s%d: %v", i, err)
		}
		web.Config.Handler = s.HTTPHandler()
		web.Start()
		m := &clusterMember{srv: s, web: web}
		t.Cleanup(func() { m.web.Close(); _ = m.srv.Shutdown() })
		members = append(members, m)
	}
	for _, m := range members[1:] {
		if _, err := m.srv.Join([]string{members[0].srv.SerfAddr()}); err != nil {
			t.Fatalf("join: %v", err)
		}
	}
	leader(t, members)
	return members
}

// leader waits for a leader among the live members with its duties running.
func leader(t *testing.T, members []*clusterMember) *clusterMember {
	t.Helper()
	var l *clusterMember
	waitFor(t, "a leader", func() bool {
		for _, m := range members {
			if !m.down && m.srv.IsLeader() && m.srv.leaderReady.Load() {
				l = m
				return true
			}
		}
		return false
	})
	return l
}

// submitAnywhere posts a pipeline to any live server, retrying (with the
// same Idempotency-Key) through elections.
func submitAnywhere(t *testing.T, mu *sync.Mutex, members []*clusterMember, key string) {
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		mu.Lock()
		m := members[i%len(members)]
		down := m.down
		mu.Unlock()
		if down {
			continue
		}
		req, _ := http.NewRequest("POST", m.web.URL+"/v1/pipelines", bytes.NewReader([]byte(twoJobs)))
		req.Header.Set("Idempotency-Key", key)
		req.Header.Set("Content-Type", "application/yaml")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("pipeline %s was never accepted", key)
}

// TestEvents_ExactlyOnceAcrossLeaderFailure submits pipelines to a
// three-server cluster while its leader is killed: the JetStream stream
// ends up holding every committed event once, in index order, with no gap.
func TestEvents_ExactlyOnceAcrossLeaderFailure(t *testing.T) {
	if testing.Short() {
		t.Skip("a three-server cluster with a failover")
	}
	bus, err := events.Start(events.Config{Addr: "127.0.0.1:-1", StoreDir: t.TempDir(), ServerName: "external"})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	members := startEventCluster(t, bus.ClientURL())

	var mu sync.Mutex
	var wg sync.WaitGroup
	const total = 40
	killed := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < total; i++ {
			if i == total/2 {
				<-killed
			}
			submitAnywhere(t, &mu, members, fmt.Sprintf("p-%d", i))
		}
	}()
	// Kill the leader while pipelines are coming in, once it published.
	var first *clusterMember
	waitFor(t, "some events published", func() bool {
		first = leader(t, members)
		return first.srv.EventPublisher().Status().Published >= 10
	})
	mu.Lock()
	first.down = true
	mu.Unlock()
	first.web.Close()
	if err := first.srv.Shutdown(); err != nil {
		t.Logf("shutdown old leader: %v", err)
	}
	close(killed)
	wg.Wait()

	next := leader(t, members)
	if next == first {
		t.Fatal("the killed server is still leader")
	}
	want := stateEventIDs(t, next.srv)
	last := want[len(want)-1]
	waitFor(t, "the new leader to publish through "+last, func() bool {
		st := next.srv.EventPublisher().Status()
		return fmt.Sprintf("%d-%d", st.Last.Index, st.Last.Seq) == last
	})
	got := jetStreamIDs(t, bus.ClientURL(), len(want)+10)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("the stream differs from the committed events:\nstream (%d) %v\nstate  (%d) %v", len(got), got, len(want), want)
	}
	// The other survivor committed the same events.
	for _, m := range members {
		if m.down || m == next {
			continue
		}
		waitFor(t, "the follower to apply everything", func() bool {
			ids := stateEventIDs(t, m.srv)
			return len(ids) > 0 && ids[len(ids)-1] == last
		})
		if ids := stateEventIDs(t, m.srv); strings.Join(ids, " ") != strings.Join(want, " ") {
			t.Fatalf("follower %s holds other events", m.srv.cfg.NodeName)
		}
	}
	t.Logf("%d events, once each, across the failover from %s to %s (new leader published %d, %d duplicates dropped)",
		len(want), first.srv.cfg.NodeName, next.srv.cfg.NodeName, next.srv.EventPublisher().Status().Published,
		next.srv.EventPublisher().Status().Duplicates)
}
