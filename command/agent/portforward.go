package agent

import (
	"context"
	"log/slog"

	"github.com/ciplat/ciplat/drivers"
	"github.com/ciplat/ciplat/drivers/kubernetes"
)

// PortForward forwards 127.0.0.1:local (0: a free port) to port remote of
// the Pod of the kubernetes driver's worker workerID in namespace, as the
// user of kubeconfig (empty: KUBECONFIG or ~/.kube/config), until ctx ends.
// ready gets the local port once it listens. It is what `ciplat job
// port-forward` runs once the HTTP API has named the worker: the CLI speaks
// to ciplat only through api, and to Kubernetes through the driver, with
// the user's own credentials (pods/portforward in the namespace).
func PortForward(ctx context.Context, kubeconfig, namespace, workerID string, local, remote int, ready func(localPort int)) error {
	routeKlog(slog.New(slog.DiscardHandler))
	d, err := kubernetes.New(kubernetes.Config{Kubeconfig: kubeconfig, Namespace: namespace})
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	return d.PortForward(ctx, &drivers.WorkerHandle{ID: workerID, Driver: d.Name()}, local, remote, ready)
}
