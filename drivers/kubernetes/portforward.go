package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	"k8s.io/streaming/pkg/httpstream"

	"github.com/ciplat/ciplat/drivers"
)

// PortForward forwards TCP port local on 127.0.0.1 (0 picks a free one) to
// port remote of the worker's Pod, through the API server's portforward
// subresource (WebSocket, falling back to SPDY), until ctx ends or the
// forwarding fails. ready, when not nil, is called once with the local port
// when it listens. It is for inspecting a running job; the Pod must be
// running. It returns nil when ctx ended, and an error wrapping
// drivers.ErrWorkerNotFound when the worker has no running Pod.
func (d *Driver) PortForward(ctx context.Context, h *drivers.WorkerHandle, local, remote int, ready func(localPort int)) error {
	if h == nil {
		return errors.New("kubernetes: PortForward: nil handle")
	}
	if err := validID(h.ID); err != nil {
		return err
	}
	if local < 0 || local > 65535 || remote < 1 || remote > 65535 {
		return fmt.Errorf("kubernetes: port-forward %d:%d: want a local port 0-65535 (0: any) and a remote port 1-65535", local, remote)
	}
	pods, err := d.listPods(ctx, h.ID)
	if err != nil {
		return fmt.Errorf("kubernetes: port-forward to worker %s: %w", h.ID, err)
	}
	if len(pods) == 0 {
		return fmt.Errorf("kubernetes: port-forward: worker %s has no pod: %w", h.ID, drivers.ErrWorkerNotFound)
	}
	if st := describe(pods[0]); st.state != podRunning {
		return fmt.Errorf("kubernetes: port-forward to worker %s: %s: %w", h.ID, st.reason, drivers.ErrWorkerNotFound)
	}
	name := pods[0].Name
	u := d.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(d.cfg.Namespace).Name(name).SubResource("portforward").URL()
	rt, upgrader, err := spdy.RoundTripperFor(d.rest)
	if err != nil {
		return fmt.Errorf("kubernetes: port-forward: %w", err)
	}
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, u)
	if ws, err := portforward.NewSPDYOverWebsocketDialer(u, d.rest); err == nil {
		dialer = portforward.NewFallbackDialer(ws, dialer, func(err error) bool {
			return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
		})
	}
	stop, readyCh := make(chan struct{}), make(chan struct{})
	pf, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("%d:%d", local, remote)}, stop, readyCh, io.Discard, io.Discard)
	if err != nil {
		return fmt.Errorf("kubernetes: port-forward %d:%d: %w", local, remote, err)
	}
	done := make(chan error, 1)
	go func() { done <- pf.ForwardPorts() }()
	select {
	case <-readyCh:
		if ports, err := pf.GetPorts(); err == nil && len(ports) == 1 && ready != nil {
			ready(int(ports[0].Local))
		}
	case err := <-done:
		return fmt.Errorf("kubernetes: port-forward to pod %s port %d: %w", name, remote, err)
	case <-ctx.Done():
		close(stop)
		_ = streamEnd(done) // stopped on purpose: the context ended
		return nil
	}
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("kubernetes: port-forward to pod %s port %d: %w", name, remote, err)
		}
		return nil
	case <-ctx.Done():
		close(stop)
		_ = streamEnd(done) // stopped on purpose: the context ended
		return nil
	}
}
