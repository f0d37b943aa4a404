package command

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/ciplat/ciplat/api"
)

// nodeStatusCommand lists client nodes, or shows one.
type nodeStatusCommand struct{}

func (*nodeStatusCommand) Synopsis() string { return "List client nodes, or show one" }

const nodeStatusUsage = `Usage: ciplat node status [flags] [ID]

  Without ID, list the client nodes: status, scheduling eligibility, CPU
  (millicores) and memory (MiB) as allocated/total, and healthy drivers.
  With ID (a unique prefix is enough), show one node: its resources, drain,
  labels, each driver's health and why, and its attributes.

Flags:

  -verbose
    List full node IDs, drains (with their deadlines), reserved resources
    and labels; show drivers' reasons in full.

  -json
    Print the node list, or the node, as JSON.
` + addressHelp + `
Example:

  $ ciplat node status
  ID        NAME    STATUS  ELIGIBLE  CPU (m)    MEMORY (MiB)  DRIVERS
  9a8b7c6d  build1  ready   yes       1500/4000  512/8192      docker,exec
`

func (c *nodeStatusCommand) Run(ui *UI, args []string) int {
	m := newClientMeta(ui, "node status", nodeStatusUsage)
	asJSON := m.fs.Bool("json", false, "print JSON")
	verbose := m.fs.Bool("verbose", false, "more columns and details")
	pos, code, ok := m.parse(args, 0, 1)
	if !ok {
		return code
	}
	cl, code, ok := m.clientOrExit()
	if !ok {
		return code
	}
	ctx := context.Background()
	if len(pos) == 1 {
		n, err := cl.Node(ctx, pos[0])
		if err != nil {
			return m.apiError(cl, fmt.Sprintf("read node %q", pos[0]), err)
		}
		if *asJSON {
			return m.printJSON(n)
		}
		writeNode(ui.Stdout, n, ui.now(), *verbose)
		return exitOK
	}
	nodes, _, err := cl.Nodes(ctx, nil)
	if err != nil {
		return m.apiError(cl, "list nodes", err)
	}
	if *asJSON {
		if nodes == nil {
			nodes = []*api.Node{}
		}
		return m.printJSON(nodes)
	}
	if len(nodes) == 0 {
		fmt.Fprintln(ui.Stdout, "No nodes")
		return exitOK
	}
	sort.SliceStable(nodes, func(a, b int) bool { return nodes[a].Name < nodes[b].Name })
	if *verbose {
		writeNodesVerbose(ui.Stdout, nodes, ui.now())
		return exitOK
	}
	tw := newTable(ui.Stdout)
	fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tELIGIBLE\tCPU (m)\tMEMORY (MiB)\tDRIVERS")
	for _, n := range nodes {
		cpu, mem := usage(n)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", shortID(n.ID), orDash(n.Name), n.Status,
			eligibility(n), cpu, mem, orDash(strings.Join(healthyDrivers(n), ",")))
	}
	tw.Flush()
	return exitOK
}

// usage is "allocated/total" CPU and memory, or the totals when the node
// does not report its allocations.
func usage(n *api.Node) (cpu, mem string) {
	if n.Allocated == nil {
		return fmt.Sprint(n.Resources.CPU), fmt.Sprint(n.Resources.MemoryMB)
	}
	return fmt.Sprintf("%d/%d", n.Allocated.CPU, n.Resources.CPU),
		fmt.Sprintf("%d/%d", n.Allocated.MemoryMB, n.Resources.MemoryMB)
}

func eligibility(n *api.Node) string {
	switch {
	case n.Drain:
		return "no (draining)"
	case n.Eligible:
		return "yes"
	}
	return "no"
}

// healthyDrivers lists the names of n's healthy drivers, sorted.
func healthyDrivers(n *api.Node) []string {
	var out []string
	for name, d := range n.Drivers {
		if d != nil && d.Healthy {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func writeNode(w io.Writer, n *api.Node, now time.Time, verbose bool) {
	cpu, mem := usage(n)
	status := n.Status
	if !n.StatusUpdatedAt.IsZero() {
		status += " (since " + relTime(n.StatusUpdatedAt, now) + ")"
	}
	writeKV(w, [][2]string{
		{"ID", n.ID},
		{"Name", orDash(n.Name)},
		{"Address", orDash(n.Address)},
		{"Status", status},
		{"Eligible", eligibility(n)},
		{"Drain", drainText(n, now)},
		{"Labels", orDash(labelsText(n))},
		{"CPU (m)", fmt.Sprintf("%s (reserved %d)", cpu, n.Reserved.CPU)},
		{"Memory (MiB)", fmt.Sprintf("%s (reserved %d)", mem, n.Reserved.MemoryMB)},
	})

	fmt.Fprintln(w, "\nDrivers")
	if len(n.Drivers) == 0 {
		fmt.Fprintln(w, "  none detected")
	} else {
		names := make([]string, 0, len(n.Drivers))
		for name := range n.Drivers {
			names = append(names, name)
		}
		sort.Strings(names)
		tw := newTable(w)
		fmt.Fprintln(tw, "DRIVER\tDETECTED\tHEALTHY\tVERSION\tREASON")
		for _, name := range names {
			d := n.Drivers[name]
			if d == nil {
				d = &api.DriverInfo{}
			}
			reason := firstLine(d.Reason)
			if verbose {
				reason = strings.ReplaceAll(d.Reason, "\n", " ")
			}
			fmt.Fprintf(tw, "%s\t%t\t%t\t%s\t%s\n", name, d.Detected, d.Healthy, orDash(d.Version), orDash(reason))
		}
		tw.Flush()
	}

	fmt.Fprintln(w, "\nAttributes")
	if len(n.Attributes) == 0 {
		fmt.Fprintln(w, "  none")
		return
	}
	keys := make([]string, 0, len(n.Attributes))
	for k := range n.Attributes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	kv := make([][2]string, len(keys))
	for i, k := range keys {
		kv[i] = [2]string{k, n.Attributes[k]}
	}
	writeKV(w, kv)
}

// writeNodesVerbose is the node list with every column.
func writeNodesVerbose(w io.Writer, nodes []*api.Node, now time.Time) {
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tELIGIBLE\tDRAIN\tCPU (m)\tMEMORY (MiB)\tRESERVED\tDRIVERS\tLABELS")
	for _, n := range nodes {
		cpu, mem := usage(n)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", n.ID, orDash(n.Name), n.Status,
			eligibility(n), drainText(n, now), cpu, mem, n.Reserved.CPU, n.Reserved.MemoryMB,
			orDash(strings.Join(healthyDrivers(n), ",")), orDash(labelsText(n)))
	}
	tw.Flush()
}

// drainText says whether the node drains, and until when.
func drainText(n *api.Node, now time.Time) string {
	switch {
	case !n.Drain:
		return "no"
	case n.DrainDeadline.IsZero():
		return "yes (no deadline)"
	case !n.DrainDeadline.After(now):
		return "yes (deadline passed: stopping what runs)"
	}
	return "yes (deadline in " + n.DrainDeadline.Sub(now).Round(time.Second).String() + ")"
}

// labelsText is the node's labels as k=v,k=v, sorted.
func labelsText(n *api.Node) string {
	var out []string
	for k, v := range n.Attributes {
		if l, ok := strings.CutPrefix(k, "label."); ok {
			out = append(out, l+"="+v)
		}
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}
