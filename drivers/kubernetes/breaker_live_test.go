package kubernetes_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/ciplat/ciplat/drivers"
	"github.com/ciplat/ciplat/drivers/drivertest"
	"github.com/ciplat/ciplat/drivers/kubernetes"
)

// hangingProxy forwards TCP to the API server, or, while hung, accepts
// connections and never answers (an API server that stops answering, the
// worst case: nothing is refused, everything waits).
type hangingProxy struct {
	addr string
	hung atomic.Bool

	mu    sync.Mutex
	conns map[net.Conn]bool // open connections to the server
	held  []net.Conn        // client connections never answered
}

// setHung hangs or mends the proxy. Hanging cuts the open connections to
// the server, so pooled keep-alive (HTTP/2) connections cannot hide it;
// mending closes the connections held unanswered, as a server that comes
// back has forgotten them.
func (p *hangingProxy) setHung(h bool) {
	p.hung.Store(h)
	p.mu.Lock()
	defer p.mu.Unlock()
	if !h {
		for _, c := range p.held {
			c.Close()
		}
		p.held = nil
		return
	}
	for c := range p.conns {
		c.Close()
	}
}

// hold keeps c open and unanswered until the proxy is mended or closed.
func (p *hangingProxy) hold(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held = append(p.held, c)
}

func startProxy(t *testing.T, target string) *hangingProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &hangingProxy{addr: l.Addr().String(), conns: map[net.Conn]bool{}}
	t.Cleanup(func() {
		l.Close()
		p.setHung(false)
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if p.hung.Load() {
				p.hold(c) // read nothing, answer nothing
				continue
			}
			go func() {
				s, err := net.Dial("tcp", target)
				if err != nil {
					c.Close()
					return
				}
				p.mu.Lock()
				p.conns[s] = true
				p.mu.Unlock()
				defer func() {
					s.Close()
					p.mu.Lock()
					delete(p.conns, s)
					p.mu.Unlock()
				}()
				go io.Copy(s, c)
				io.Copy(c, s)
				// The server side is gone: hold the client's side open
				// while hung, as a dead server behind a live network would.
				if p.hung.Load() {
					p.hold(c)
					return
				}
				c.Close()
			}()
		}
	}()
	return p
}

// TestDriver_apiServerStopsAnswering: an API server that stops answering
// gives timeouts, then the open circuit: the fingerprint says why, calls
// fail fast with ErrAPIUnavailable, nothing hangs; once it answers again
// and the cooldown has passed, one probe closes the circuit.
func TestDriver_apiServerStopsAnswering(t *testing.T) {
	c := needCluster(t)
	rc, err := clientcmd.BuildConfigFromFlags("", c.driver)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(rc.Host)
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, u.Host)
	rc.Host = "https://" + p.addr
	var now atomic.Int64
	now.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	// 3s: long enough for client-go's own retry of a request that met a
	// connection the server closed (it waits 1s), as the first call after
	// the server comes back does.
	d, err := kubernetes.New(kubernetes.Config{Rest: rc, Workspace: c.workspace(t), CallTimeout: 3 * time.Second,
		BreakerThreshold: 2, BreakerCooldown: time.Minute, Retries: -1,
		Now: func() time.Time { return time.Unix(0, now.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	waitHealthy(t, d)

	p.setHung(true)
	for i := range 2 {
		start := time.Now()
		fp := d.Fingerprint(t.Context())
		if fp.Healthy || !fp.Detected || !strings.Contains(fp.Reason, "did not answer within 3s") {
			t.Errorf("hung API server, fingerprint #%d = %+v; want detected, unhealthy, a timeout", i+1, fp)
		}
		if took := time.Since(start); took > 8*time.Second {
			t.Errorf("fingerprint #%d took %v; want about the 3s call timeout", i+1, took)
		}
	}
	fp := d.Fingerprint(t.Context())
	if fp.Healthy || !strings.Contains(fp.Reason, "circuit open after 2 consecutive failures") {
		t.Errorf("fingerprint after 2 failures = %+v, want the circuit open", fp)
	}
	t.Logf("reason: %s", fp.Reason)
	start := time.Now()
	_, err = d.CreateWorker(t.Context(), drivers.WorkerConfig{ID: randID("hung"), Image: testImage})
	if !errors.Is(err, kubernetes.ErrAPIUnavailable) {
		t.Errorf("CreateWorker with the circuit open: %v, want ErrAPIUnavailable", err)
	}
	if _, err := d.ListWorkers(t.Context()); !errors.Is(err, kubernetes.ErrAPIUnavailable) {
		t.Errorf("ListWorkers with the circuit open: %v, want ErrAPIUnavailable", err)
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("refused calls took %v; want them to fail fast", took)
	}

	p.setHung(false)
	if fp := d.Fingerprint(t.Context()); fp.Healthy {
		t.Errorf("healthy before the cooldown: %+v", fp)
	}
	now.Add(int64(time.Minute))
	if fp := d.Fingerprint(t.Context()); !fp.Healthy {
		t.Errorf("after the cooldown the probe should close the circuit: %+v", fp)
	}
}

// TestDriver_Fingerprint_noAPIServer: nothing listening is reported at
// once, with what to do.
func TestDriver_Fingerprint_noAPIServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	kc := t.TempDir() + "/kubeconfig"
	writeFile(t, kc, `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://`+addr+`", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`)
	d := newDriver(t, kc, kubernetes.Config{Retries: -1, CallTimeout: 2 * time.Second})
	start := time.Now()
	fp := d.Fingerprint(t.Context())
	if fp.Healthy || fp.Detected || !strings.Contains(fp.Reason, "does not answer") || !strings.Contains(fp.Reason, "-kubeconfig") {
		t.Errorf("Fingerprint = %+v; want not detected, unhealthy, saying what to do", fp)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("took %v", took)
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDriver_apiServerStopsAnswering_duringStep: a step whose API server
// stops answering does not hang: the exec's WebSocket heartbeat (a pong
// within 61s) ends it with an error, and the circuit opens.
func TestDriver_apiServerStopsAnswering_duringStep(t *testing.T) {
	c := needCluster(t)
	if testing.Short() {
		t.Skip("takes a minute: the WebSocket heartbeat's deadline")
	}
	t.Parallel()
	rc, err := clientcmd.BuildConfigFromFlags("", c.driver)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(rc.Host)
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, u.Host)
	rc.Host = "https://" + p.addr
	d, err := kubernetes.New(kubernetes.Config{Rest: rc, Workspace: c.workspace(t), CallTimeout: 3 * time.Second, BreakerThreshold: 1, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	h, err := d.CreateWorker(t.Context(), drivers.WorkerConfig{ID: randID("hungstep"), Image: testImage})
	if err != nil {
		t.Fatal(err)
	}
	// The worker is destroyed through the admin's own driver: this one's
	// API server is hung.
	t.Cleanup(func() { newDriver(t, c.admin, kubernetes.Config{}).DestroyWorker(context.Background(), h) })
	rec := drivertest.NewRecorder()
	done := make(chan error, 1)
	go func() {
		_, err := d.RunStep(t.Context(), h, drivers.StepConfig{Name: "sleeps", Run: "echo started; sleep 200"}, rec)
		done <- err
	}()
	if err := rec.WaitLine(t.Context(), drivers.Stdout, "started"); err != nil {
		t.Fatalf("waiting for the step: %v; output:%s", err, rec)
	}
	p.setHung(true)
	start := time.Now()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "lost the exec stream") {
			t.Fatalf("RunStep with its API server hung: %v; want an error saying the exec stream was lost", err)
		}
		t.Logf("RunStep returned after %v: %v", time.Since(start), err)
	case <-time.After(90 * time.Second):
		t.Fatal("RunStep still running 90s after its API server stopped answering")
	}
	if fp := d.Fingerprint(t.Context()); fp.Healthy {
		t.Errorf("fingerprint healthy with the API server hung: %+v", fp)
	}
}

// TestDriver_apiServerStopsAnswering_beforeStep: a step whose exec cannot
// start (the API server accepts the connection and never answers) fails
// after the call timeout instead of waiting for the job's.
func TestDriver_apiServerStopsAnswering_beforeStep(t *testing.T) {
	c := needCluster(t)
	rc, err := clientcmd.BuildConfigFromFlags("", c.driver)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(rc.Host)
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, u.Host)
	rc.Host = "https://" + p.addr
	d, err := kubernetes.New(kubernetes.Config{Rest: rc, Workspace: c.workspace(t), CallTimeout: 2 * time.Second, BreakerThreshold: 100, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	h, err := d.CreateWorker(t.Context(), drivers.WorkerConfig{ID: randID("hungexec"), Image: testImage})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { newDriver(t, c.admin, kubernetes.Config{}).DestroyWorker(context.Background(), h) })
	rec := drivertest.NewRecorder()
	if _, err := d.RunStep(t.Context(), h, drivers.StepConfig{Name: "ok", Run: "echo ok"}, rec); err != nil {
		t.Fatalf("a step before the hang: %v", err)
	}
	if got := rec.Texts(drivers.Stdout); len(got) != 1 || got[0] != "ok" {
		t.Errorf("stdout %q, want just ok (the start marker never reaches the sink)", got)
	}
	p.setHung(true)
	start := time.Now()
	_, err = d.RunStep(t.Context(), h, drivers.StepConfig{Name: "never", Run: "echo never"}, nil)
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "did not start within 2s") {
		t.Errorf("RunStep with the API server hung: %v; want 'did not start within 2s'", err)
	}
	if took > 10*time.Second {
		t.Errorf("RunStep took %v to fail", took)
	}
	t.Logf("after %v: %v", took, err)
}
