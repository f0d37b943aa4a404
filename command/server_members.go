package command

import (
	"context"
	"fmt"
	"sort"

	"github.com/ciplat/ciplat/api"
)

// serverMembersCommand lists the servers of the cluster.
type serverMembersCommand struct{}

func (*serverMembersCommand) Synopsis() string {
	return "List the servers: status, leader, Raft state, addresses"
}

const serverMembersUsage = `Usage: ciplat server members [flags]

  List the servers the agent's serf pool knows: each one's gossip status
  (alive, leaving, left, failed), whether it leads, its Raft state and its
  addresses. A failed server stays a Raft voter until it comes back or is
  removed with 'ciplat operator raft remove-peer'.

Flags:

  -json
    Print the members as JSON.
` + addressHelp + `
Example:

  $ ciplat server members
  NAME  ADDRESS         STATUS  LEADER  RAFT STATE  RAFT ADDRESS    HTTP ADDRESS    PROTOCOL
  s1    10.0.0.1:4682   alive   true    Leader      10.0.0.1:4681   10.0.0.1:4680   5
  s2    10.0.0.2:4682   alive   false   Follower    10.0.0.2:4681   10.0.0.2:4680   5
`

func (c *serverMembersCommand) Run(ui *UI, args []string) int {
	m := newClientMeta(ui, "server members", serverMembersUsage)
	asJSON := m.fs.Bool("json", false, "print JSON")
	if _, code, ok := m.parse(args, 0, 0); !ok {
		return code
	}
	cl, code, ok := m.clientOrExit()
	if !ok {
		return code
	}
	members, err := cl.Members(context.Background())
	if err != nil {
		return m.apiError(cl, "list server members", err)
	}
	if *asJSON {
		if members == nil {
			members = []*api.Member{}
		}
		return m.printJSON(members)
	}
	if len(members) == 0 {
		fmt.Fprintln(ui.Stdout, "No servers")
		return exitOK
	}
	sort.SliceStable(members, func(a, b int) bool { return members[a].Name < members[b].Name })
	tw := newTable(ui.Stdout)
	fmt.Fprintln(tw, "NAME\tADDRESS\tSTATUS\tLEADER\tRAFT STATE\tRAFT ADDRESS\tHTTP ADDRESS\tPROTOCOL")
	for _, mb := range members {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%s\t%s\t%s\t%d\n", mb.Name, mb.Addr, mb.Status, mb.Leader,
			orDash(mb.RaftState), orDash(mb.RaftAddr), orDash(mb.HTTPAddr), mb.Protocol)
	}
	_ = tw.Flush()
	return exitOK
}

// serverLeaveCommand makes a server leave the cluster gracefully.
type serverLeaveCommand struct{}

func (*serverLeaveCommand) Synopsis() string {
	return "Make a server leave the cluster gracefully and stop"
}

const serverLeaveUsage = `Usage: ciplat server leave [flags]

  Make the server at -address leave the cluster gracefully, as SIGTERM
  does: a leader first hands leadership to another server, the server
  announces its leave, the leader removes it from the Raft voters (so the
  quorum shrinks with it), then its agent stops. Use it before taking a
  server away for good; a server that just restarts needs no leave.

Flags:
` + addressHelp + `
Example:

  $ ciplat server leave -address http://10.0.0.3:4680
  ==> Server s3 left the cluster; its agent is stopping
`

func (c *serverLeaveCommand) Run(ui *UI, args []string) int {
	m := newClientMeta(ui, "server leave", serverLeaveUsage)
	if _, code, ok := m.parse(args, 0, 0); !ok {
		return code
	}
	cl, code, ok := m.clientOrExit()
	if !ok {
		return code
	}
	name := cl.Address()
	if ms, err := cl.Members(context.Background()); err == nil {
		for _, mb := range ms {
			if "http://"+mb.HTTPAddr == cl.Address() {
				name = mb.Name
			}
		}
	}
	if err := cl.Leave(context.Background()); err != nil {
		return m.apiError(cl, "leave", err)
	}
	fmt.Fprintf(ui.Stdout, "==> Server %s left the cluster; its agent is stopping\n", name)
	return exitOK
}
