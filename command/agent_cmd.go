package command

import "github.com/ciplat/ciplat/command/agent"

// agentCommand runs an agent; package command/agent owns its flags and its
// lifecycle (it handles its own signals).
type agentCommand struct{}

func (agentCommand) Synopsis() string {
	return "Run a ciplat agent (server, client, or -dev for both in one process)"
}

func (agentCommand) Run(ui *UI, args []string) int {
	return agent.Main(args, ui.Stdout, ui.Stderr)
}
