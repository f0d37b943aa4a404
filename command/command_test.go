package command

import (
	"strings"
	"testing"
)

func TestMain_Help(t *testing.T) {
	r := runMain(t, "-h")
	r.check(t, exitOK, []string{"Usage: ciplat <command>", "pipeline run ", "job logs ", "node status ", "agent ", "version "}, nil)

	r = runMain(t, "help", "pipeline", "run")
	r.check(t, exitOK, []string{"Usage: ciplat pipeline run [flags] FILE", "-detach", "-idempotency-key", "-address", "Example:"}, nil)

	r = runMain(t, "pipeline", "-h")
	r.check(t, exitOK, []string{"pipeline cancel", "pipeline list", "pipeline run", "pipeline status"}, nil)
	if strings.Contains(r.stdout, "node status") {
		t.Errorf("the pipeline group lists other commands:\n%s", r.stdout)
	}
}

func TestMain_EveryCommandHasHelp(t *testing.T) {
	for path := range commands {
		if path == "agent" {
			continue // command/agent owns its flags
		}
		args := append(strings.Fields(path), "-h")
		r := runMain(t, args...)
		r.check(t, exitOK, []string{"Usage: ciplat " + path, "Example:"}, nil)
		if r.stderr != "" {
			t.Errorf("%s -h wrote to stderr: %s", path, r.stderr)
		}
	}
}

func TestMain_Version(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"-version"}} {
		r := runMain(t, args...)
		r.check(t, exitOK, []string{"ciplat v" + Version + " (", "go1."}, nil)
	}
}

func TestMain_UsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "Usage: ciplat <command>"},
		{[]string{"frobnicate"}, `Error: unknown command "frobnicate"; 'ciplat -h' lists the commands`},
		{[]string{"pipeline"}, "Usage: ciplat pipeline <subcommand>"},
		{[]string{"pipeline", "destroy"}, `Error: unknown command "pipeline destroy"; 'ciplat pipeline -h' lists`},
		{[]string{"pipeline", "run"}, "Error: missing argument; usage: ciplat pipeline run [flags] FILE (-h for help)"},
		{[]string{"pipeline", "run", "a.yml", "b.yml"}, `Error: unexpected argument "b.yml"; usage: ciplat pipeline run`},
		{[]string{"pipeline", "list", "-bogus"}, "Error: flag provided but not defined: -bogus; usage: ciplat pipeline list"},
		{[]string{"pipeline", "status"}, "Error: missing argument; usage: ciplat pipeline status [flags] ID"},
		{[]string{"pipeline", "cancel", "a", "b"}, `unexpected argument "b"`},
		{[]string{"job", "status"}, "usage: ciplat job status [flags] ID"},
		{[]string{"job", "logs"}, "usage: ciplat job logs [flags] JOB_ID [STEP]"},
		{[]string{"job", "logs", "-f=maybe", "x"}, `invalid boolean value "maybe" for -f`},
		{[]string{"node", "status", "a", "b"}, `unexpected argument "b"`},
		{[]string{"version", "extra"}, `unexpected argument "extra"`},
		{[]string{"node", "status", "-address", "http://[::1"}, "invalid agent address"},
	} {
		r := runMain(t, tc.args...)
		r.check(t, exitUsage, nil, []string{tc.want})
		if r.stdout != "" {
			t.Errorf("ciplat %s: usage error wrote to stdout: %s", strings.Join(tc.args, " "), r.stdout)
		}
	}
}
