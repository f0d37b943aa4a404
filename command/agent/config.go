package agent

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Config is an agent's configuration, from flags.
type Config struct {
	Dev      bool
	Server   bool
	Client   bool
	DataDir  string
	HTTPAddr string
	RaftAddr string
	NodeName string
	Servers  []string
	Labels   map[string]string
	// SchedulerWorkers is the number of scheduler goroutines on the leader.
	SchedulerWorkers int
	LogLevel         string
	// Drivers lists the task drivers a client enables ("exec", "mock").
	Drivers []string
}

// labelFlag collects repeated -label k=v.
type labelFlag map[string]string

func (l labelFlag) String() string { return fmt.Sprint(map[string]string(l)) }
func (l labelFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", v)
	}
	l[k] = val
	return nil
}

// ParseFlags reads the agent's flags (Go flag syntax, single dash, as Nomad).
func ParseFlags(args []string, stderr io.Writer) (*Config, error) {
	cfg := &Config{Labels: map[string]string{}}
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&cfg.Dev, "dev", false, "development mode: server + client in one process, data in a temporary dir")
	fs.BoolVar(&cfg.Server, "server", false, "run a server")
	fs.BoolVar(&cfg.Client, "client", false, "run a client")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "where state lives (required unless -dev, which uses a temporary dir)")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", "", "HTTP API address (default 127.0.0.1:4680; port 0 picks a free port)")
	fs.StringVar(&cfg.RaftAddr, "raft-addr", "", "Raft address (default 127.0.0.1:4681; in -dev a free port)")
	fs.StringVar(&cfg.NodeName, "node", "", "this agent's name (default: hostname)")
	servers := fs.String("servers", "", "client: comma-separated server HTTP addresses")
	fs.Var(labelFlag(cfg.Labels), "label", "client: node label key=value (repeatable)")
	drivers := fs.String("driver", "exec", "client: comma-separated drivers to enable (exec, mock)")
	fs.IntVar(&cfg.SchedulerWorkers, "scheduler-workers", 2, "server: scheduler goroutines on the leader")
	fs.StringVar(&cfg.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: ciplat agent [-dev | -server | -client] [flags]\n\n"+
			"  Runs a ciplat agent. Example: ciplat agent -dev -http-addr 127.0.0.1:4680\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *servers != "" {
		cfg.Servers = strings.Split(*servers, ",")
	}
	for _, d := range strings.Split(*drivers, ",") {
		if d = strings.TrimSpace(d); d != "" {
			cfg.Drivers = append(cfg.Drivers, d)
		}
	}
	if cfg.Dev {
		cfg.Server, cfg.Client = true, true
	}
	if !cfg.Server && !cfg.Client {
		return nil, fmt.Errorf("choose -dev, -server or -client")
	}
	if !cfg.Dev && cfg.DataDir == "" {
		return nil, fmt.Errorf("-data-dir is required outside -dev")
	}
	if cfg.Client && !cfg.Server && len(cfg.Servers) == 0 {
		return nil, fmt.Errorf("-client needs -servers (the HTTP addresses of servers)")
	}
	if _, err := parseLevel(cfg.LogLevel); err != nil {
		return nil, err
	}
	return cfg, nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("invalid -log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}
