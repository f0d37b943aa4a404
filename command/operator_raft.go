package command

import (
	"context"
	"fmt"

	"github.com/ciplat/ciplat/api"
)

// operatorRaftListPeersCommand lists the Raft peers.
type operatorRaftListPeersCommand struct{}

func (*operatorRaftListPeersCommand) Synopsis() string {
	return "List the Raft peers: id, address, voter, leader"
}

const operatorRaftListPeersUsage = `Usage: ciplat operator raft list-peers [flags]

  List the servers of the Raft configuration, as the leader knows it.

Flags:

  -stale
    Answer from the server at -address instead of the leader (works with
    no leader, may be behind).

  -json
    Print the configuration as JSON.
` + addressHelp + `
Example:

  $ ciplat operator raft list-peers
  NODE  ID  ADDRESS         STATE     VOTER
  s1    s1  10.0.0.1:4681   leader    true
  s2    s2  10.0.0.2:4681   follower  true
`

func (c *operatorRaftListPeersCommand) Run(ui *UI, args []string) int {
	m := newClientMeta(ui, "operator raft list-peers", operatorRaftListPeersUsage)
	stale := m.fs.Bool("stale", false, "read from this server")
	asJSON := m.fs.Bool("json", false, "print JSON")
	if _, code, ok := m.parse(args, 0, 0); !ok {
		return code
	}
	cl, code, ok := m.clientOrExit()
	if !ok {
		return code
	}
	rc, err := cl.RaftConfiguration(context.Background(), &api.QueryOptions{AllowStale: *stale})
	if err != nil {
		return m.apiError(cl, "read the raft configuration", err)
	}
	if *asJSON {
		return m.printJSON(rc)
	}
	tw := newTable(ui.Stdout)
	fmt.Fprintln(tw, "NODE\tID\tADDRESS\tSTATE\tVOTER")
	for _, s := range rc.Servers {
		state := "follower"
		if s.Leader {
			state = "leader"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%t\n", s.Node, s.ID, s.Address, state, s.Voter)
	}
	_ = tw.Flush()
	return exitOK
}

// operatorRaftRemovePeerCommand removes a failed server from Raft.
type operatorRaftRemovePeerCommand struct{}

func (*operatorRaftRemovePeerCommand) Synopsis() string {
	return "Remove a failed server from the Raft peers"
}

const operatorRaftRemovePeerUsage = `Usage: ciplat operator raft remove-peer -peer-id ID [flags]

  Remove a server from the Raft configuration, so the quorum no longer
  counts it. For a server that failed and will not come back: a server that
  leaves gracefully ('ciplat server leave', SIGTERM) is removed by itself.
  The IDs are in 'ciplat operator raft list-peers'.

Flags:

  -peer-id=<id>
    The Raft ID of the server to remove (its node name). Required.
` + addressHelp + `
Example:

  $ ciplat operator raft remove-peer -peer-id s3
  ==> Removed peer s3
`

func (c *operatorRaftRemovePeerCommand) Run(ui *UI, args []string) int {
	m := newClientMeta(ui, "operator raft remove-peer", operatorRaftRemovePeerUsage)
	id := m.fs.String("peer-id", "", "Raft ID to remove")
	if _, code, ok := m.parse(args, 0, 0); !ok {
		return code
	}
	if *id == "" {
		return m.usageError("missing -peer-id")
	}
	cl, code, ok := m.clientOrExit()
	if !ok {
		return code
	}
	if err := cl.RemoveRaftPeer(context.Background(), *id); err != nil {
		return m.apiError(cl, fmt.Sprintf("remove peer %q", *id), err)
	}
	fmt.Fprintf(ui.Stdout, "==> Removed peer %s\n", *id)
	return exitOK
}
