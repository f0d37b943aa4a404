// Command ciplat is the single binary of the ciplat CI/CD platform: agent
// (server, client or both) and CLI.
package main

import (
	"os"

	"github.com/ciplat/ciplat/command"
)

func main() {
	os.Exit(command.Main(os.Args[1:], os.Stdout, os.Stderr))
}
