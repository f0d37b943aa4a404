package command

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/ciplat/ciplat/api"
	"github.com/ciplat/ciplat/command/agent"
)

// jobPortForwardCommand forwards a local port to a port of a running job's
// Pod. It finds the job's live worker through the HTTP API; the forwarding
// itself is the kubernetes driver's, run by package command/agent with the
// user's kubeconfig.
type jobPortForwardCommand struct{}

func (*jobPortForwardCommand) Synopsis() string {
	return "Forward a local port to a running job's Pod (kubernetes driver)"
}

const jobPortForwardUsage = `Usage: ciplat job port-forward [flags] JOB [LOCAL:]REMOTE

  Forward TCP port LOCAL on 127.0.0.1 to port REMOTE of the Pod that runs
  JOB's current attempt, until Ctrl-C, to inspect a running job (a test
  server, a debugger). The job must run on the kubernetes driver. ciplat
  names the job's worker; the forwarding goes through the Kubernetes API
  server with your kubeconfig, as kubectl port-forward does, so your RBAC
  needs pods/portforward (create, get) in the namespace. LOCAL 0 or omitted
  picks a free port. JOB may be a unique prefix of the job ID.

Flags:

  -kubeconfig PATH
    The kubeconfig to forward with (default: KUBECONFIG or ~/.kube/config).

  -k8s-namespace NS
    The namespace of the job Pods (default ciplat).
` + addressHelp + `
Example:

  $ ciplat job port-forward 1d2e3f4a 8080:80
  Forwarding from 127.0.0.1:8080 -> 80 (job test, worker 9b1c2d3e)
`

func (c *jobPortForwardCommand) Run(ui *UI, args []string) int {
	m := newClientMeta(ui, "job port-forward", jobPortForwardUsage)
	kubeconfig := m.fs.String("kubeconfig", "", "kubeconfig to forward with")
	ns := m.fs.String("k8s-namespace", "ciplat", "namespace of the job Pods")
	pos, code, ok := m.parse(args, 2, 2)
	if !ok {
		return code
	}
	local, remote, err := parsePorts(pos[1])
	if err != nil {
		return m.usageError("%v", err)
	}
	cl, code, ok := m.clientOrExit()
	if !ok {
		return code
	}
	ctx := context.Background()
	j, _, err := cl.Job(ctx, pos[0], nil)
	if err != nil {
		return m.apiError(cl, fmt.Sprintf("read job %q", pos[0]), err)
	}
	ws, err := cl.Workers(ctx, nil)
	if err != nil {
		return m.apiError(cl, "list workers", err)
	}
	var w *api.Worker
	for _, x := range ws {
		if x.JobID == j.ID && x.Live && (w == nil || x.Attempt > w.Attempt) {
			w = x
		}
	}
	switch {
	case w == nil:
		ui.errorf("job %s (%s) has no running worker (state %s): port-forward needs a running job", j.Name, shortID(j.ID), j.State)
		return exitFailure
	case w.Driver != "kubernetes":
		ui.errorf("job %s runs on the %s driver: port-forward reaches Pods of the kubernetes driver only", j.Name, w.Driver)
		return exitFailure
	}
	ictx, cancel := ui.interrupt(ctx)
	defer cancel()
	err = agent.PortForward(ictx, *kubeconfig, *ns, w.HandleID, local, remote, func(p int) {
		fmt.Fprintf(ui.Stdout, "Forwarding from 127.0.0.1:%d -> %d (job %s, worker %s)\n", p, remote, j.Name, shortID(w.ID))
	})
	if err != nil {
		ui.errorf("port-forward to job %s: %v", j.Name, err)
		return exitFailure
	}
	return exitOK
}

// parsePorts parses [LOCAL:]REMOTE.
func parsePorts(s string) (local, remote int, err error) {
	l, r, found := strings.Cut(s, ":")
	if !found {
		l, r = "0", s
	}
	local, err1 := strconv.Atoi(l)
	remote, err2 := strconv.Atoi(r)
	if err1 != nil || err2 != nil || local < 0 || local > 65535 || remote < 1 || remote > 65535 {
		return 0, 0, fmt.Errorf("ports %q: want [LOCAL:]REMOTE, LOCAL 0-65535 (0: any free port), REMOTE 1-65535", s)
	}
	return local, remote, nil
}
