package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ciplat/ciplat/fsm/structs"
	"github.com/ciplat/ciplat/jobspec"
)

// Config is an agent's configuration: defaults, then the -config file,
// then flags (a flag given on the command line overrides the file).
type Config struct {
	Dev    bool
	Server bool
	Client bool
	// DataDir holds server/ (Raft, serf, logs) and client/ state.
	DataDir string
	// BindAddr is the IP the HTTP, Raft and serf listeners bind when their
	// own address is not given (default 127.0.0.1).
	BindAddr string
	// AdvertiseAddr is the IP other servers use to reach this one; needed
	// when BindAddr is 0.0.0.0.
	AdvertiseAddr string
	// HTTPAddr, RaftAddr and SerfAddr are host:port; port 0 picks a free one.
	HTTPAddr string
	RaftAddr string
	SerfAddr string
	NodeName string
	// BootstrapExpect is how many servers form the cluster: Raft is
	// bootstrapped once that many are seen in serf (1 = single server).
	// 0 means this server joins an existing cluster.
	BootstrapExpect int
	// Join lists serf addresses of servers to join at start (fails the
	// start if none answers); RetryJoin keeps trying with backoff.
	Join      []string
	RetryJoin []string
	// RetryInterval is the first wait between -retry-join attempts (it
	// doubles up to 30s); RetryMax bounds the attempts (0: forever).
	RetryInterval time.Duration
	RetryMax      int
	// Servers are the HTTP addresses of servers a client-only agent uses.
	Servers []string
	Labels  map[string]string
	// SchedulerWorkers is the number of scheduler goroutines on the leader.
	SchedulerWorkers int
	LogLevel         string
	// EvalBrokerMax bounds the leader's evaluation broker and
	// MaxPendingEvals the evaluations waiting in state; past either,
	// submits get 429 (0: the server's defaults, 10,000 and 100,000).
	EvalBrokerMax   int
	MaxPendingEvals int
	// IdempotencyTTL is how long a submit's Idempotency-Key holds its
	// pipeline (-idempotency-ttl, default 24h); expired keys are swept
	// through Raft.
	IdempotencyTTL time.Duration
	// SnapshotMaxBytes bounds an uploaded snapshot restore (server; 0:
	// server.DefaultSnapshotMaxBytes, 1 GiB).
	SnapshotMaxBytes int64
	// Drivers lists the task drivers a client enables ("exec", "mock").
	Drivers []string
	// PluginDir holds external driver plugins (executables) to load.
	PluginDir string
	// Kubernetes configures the kubernetes driver (drivers.go).
	Kubernetes KubernetesConfig
	// Raft timing and automatic snapshot settings.
	RaftHeartbeatTimeout   time.Duration
	RaftElectionTimeout    time.Duration
	RaftLeaderLeaseTimeout time.Duration
	RaftSnapshotThreshold  uint64
	RaftSnapshotInterval   time.Duration
	RaftTrailingLogs       uint64
	// DeadServerCleanup removes a server failed this long from the voters
	// (0: only an operator removes it).
	DeadServerCleanup time.Duration
	// Events configures the server's NATS event bus (events.go).
	Events EventsConfig
	// Nodes configures the capacity gossip pool, node liveness and
	// reserved resources (nodes.go).
	Nodes NodesConfig
	// Exec hardens the exec driver: run-as user and limits (exec_config.go).
	Exec ExecConfig
	// Docker configures the docker driver (docker_config.go).
	Docker DockerConfig
	// SpecLimits bounds submitted pipeline specs (-limit-*, limits_config.go).
	SpecLimits jobspec.Limits
	// DetectDocker enables the docker driver when an engine answers at
	// start: set by -dev without -driver (dev_docker.go).
	DetectDocker bool
	// HTTP bounds the HTTP listener: timeouts, header size, connection
	// and WebSocket caps, the forwarding deadline (http_config.go).
	HTTP HTTPConfig
	// Logs bounds step logs on servers and clients (logs_config.go).
	Logs LogsConfig
}

// fileConfig is the JSON of a -config file. Every field is optional;
// durations are strings such as "30s".
type fileConfig struct {
	nodesFileConfig                     // nodes.go
	execFileConfig                      // exec_config.go
	dockerFileConfig                    // docker_config.go
	httpFileConfig                      // http_config.go
	logsFileConfig                      // logs_config.go
	Server            *bool             `json:"server"`
	Client            *bool             `json:"client"`
	DataDir           *string           `json:"data_dir"`
	BindAddr          *string           `json:"bind_addr"`
	AdvertiseAddr     *string           `json:"advertise_addr"`
	HTTPAddr          *string           `json:"http_addr"`
	RaftAddr          *string           `json:"raft_addr"`
	SerfAddr          *string           `json:"serf_addr"`
	NodeName          *string           `json:"node_name"`
	BootstrapExpect   *int              `json:"bootstrap_expect"`
	Join              []string          `json:"join"`
	RetryJoin         []string          `json:"retry_join"`
	RetryInterval     *string           `json:"retry_interval"`
	RetryMax          *int              `json:"retry_max"`
	Servers           []string          `json:"servers"`
	Labels            map[string]string `json:"labels"`
	SchedulerWorkers  *int              `json:"scheduler_workers"`
	LogLevel          *string           `json:"log_level"`
	Drivers           []string          `json:"drivers"`
	DeadServerCleanup *string           `json:"dead_server_cleanup"`
	Raft              *struct {
		HeartbeatTimeout   *string `json:"heartbeat_timeout"`
		ElectionTimeout    *string `json:"election_timeout"`
		LeaderLeaseTimeout *string `json:"leader_lease_timeout"`
		SnapshotThreshold  *uint64 `json:"snapshot_threshold"`
		SnapshotInterval   *string `json:"snapshot_interval"`
		TrailingLogs       *uint64 `json:"trailing_logs"`
	} `json:"raft"`
}

// loadConfigFile applies a JSON config file on top of cfg.
func loadConfigFile(path string, cfg *Config) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read -config file: %w", err)
	}
	var fc fileConfig
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fc); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line := bytes.Count(b[:se.Offset], []byte("\n")) + 1
			return fmt.Errorf("-config %s: line %d: %v (the file is JSON)", path, line, err)
		}
		return fmt.Errorf("-config %s: %v (the file is JSON; keys are the flag names with '_' for '-')", path, err)
	}
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	dur := func(name string, dst *time.Duration, v *string) error {
		if v == nil {
			return nil
		}
		d, err := time.ParseDuration(*v)
		if err != nil || d < 0 {
			return fmt.Errorf("-config %s: %s %q: want a duration such as \"30s\"", path, name, *v)
		}
		*dst = d
		return nil
	}
	if fc.Server != nil {
		cfg.Server = *fc.Server
	}
	if fc.Client != nil {
		cfg.Client = *fc.Client
	}
	set(&cfg.DataDir, fc.DataDir)
	set(&cfg.BindAddr, fc.BindAddr)
	set(&cfg.AdvertiseAddr, fc.AdvertiseAddr)
	set(&cfg.HTTPAddr, fc.HTTPAddr)
	set(&cfg.RaftAddr, fc.RaftAddr)
	set(&cfg.SerfAddr, fc.SerfAddr)
	set(&cfg.NodeName, fc.NodeName)
	set(&cfg.LogLevel, fc.LogLevel)
	if fc.BootstrapExpect != nil {
		cfg.BootstrapExpect = *fc.BootstrapExpect
	}
	if fc.Join != nil {
		cfg.Join = fc.Join
	}
	if fc.RetryJoin != nil {
		cfg.RetryJoin = fc.RetryJoin
	}
	if fc.RetryMax != nil {
		cfg.RetryMax = *fc.RetryMax
	}
	if fc.Servers != nil {
		cfg.Servers = fc.Servers
	}
	for k, v := range fc.Labels {
		cfg.Labels[k] = v
	}
	if fc.SchedulerWorkers != nil {
		cfg.SchedulerWorkers = *fc.SchedulerWorkers
	}
	if fc.Drivers != nil {
		cfg.Drivers = fc.Drivers
	}
	if err := dur("retry_interval", &cfg.RetryInterval, fc.RetryInterval); err != nil {
		return err
	}
	if err := dur("dead_server_cleanup", &cfg.DeadServerCleanup, fc.DeadServerCleanup); err != nil {
		return err
	}
	if err := fc.nodesFileConfig.apply(path, &cfg.Nodes); err != nil { // nodes.go
		return err
	}
	fc.execFileConfig.apply(&cfg.Exec)     // exec_config.go
	fc.dockerFileConfig.apply(&cfg.Docker) // docker_config.go

	if err := fc.httpFileConfig.apply(&cfg.HTTP); err != nil { // http_config.go
		return fmt.Errorf("-config %s: %w", path, err)
	}
	// logs_config.go
	if err := fc.logsFileConfig.apply(path, &cfg.Logs); err != nil {
		return err
	}
	if r := fc.Raft; r != nil {
		for _, d := range []struct {
			name string
			dst  *time.Duration
			v    *string
		}{
			{"raft.heartbeat_timeout", &cfg.RaftHeartbeatTimeout, r.HeartbeatTimeout},
			{"raft.election_timeout", &cfg.RaftElectionTimeout, r.ElectionTimeout},
			{"raft.leader_lease_timeout", &cfg.RaftLeaderLeaseTimeout, r.LeaderLeaseTimeout},
			{"raft.snapshot_interval", &cfg.RaftSnapshotInterval, r.SnapshotInterval},
		} {
			if err := dur(d.name, d.dst, d.v); err != nil {
				return err
			}
		}
		if r.SnapshotThreshold != nil {
			cfg.RaftSnapshotThreshold = *r.SnapshotThreshold
		}
		if r.TrailingLogs != nil {
			cfg.RaftTrailingLogs = *r.TrailingLogs
		}
	}
	return nil
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

// listFlag is a repeatable flag whose first use on the command line
// replaces what the config file said.
type listFlag struct {
	dst     *[]string
	fromCLI bool
}

func (l *listFlag) String() string {
	if l.dst == nil {
		return ""
	}
	return strings.Join(*l.dst, ",")
}

func (l *listFlag) Set(v string) error {
	if !l.fromCLI {
		*l.dst = nil
		l.fromCLI = true
	}
	*l.dst = append(*l.dst, v)
	return nil
}

// configPath finds -config FILE among args before the flags are parsed, so
// the file can be applied first and the flags over it.
func configPath(args []string) string {
	for i, a := range args {
		if a == "--" {
			break
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "config" {
			continue
		}
		if hasVal {
			return val
		}
		if i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// ParseFlags reads the agent's configuration: the -config file (JSON),
// then the flags (Go flag syntax, single dash, as Nomad), which override it.
func ParseFlags(args []string, stderr io.Writer) (*Config, error) {
	cfg := &Config{Labels: map[string]string{}, SchedulerWorkers: 2, LogLevel: "info", Drivers: []string{"exec"}, HTTP: defaultHTTPConfig()}
	if path := configPath(args); path != "" {
		if err := loadConfigFile(path, cfg); err != nil {
			return nil, err
		}
	}
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String("config", "", "JSON config file (keys as the flags, '_' for '-'; flags override it)")
	fs.BoolVar(&cfg.Dev, "dev", false, "development mode: server + client in one process, data in a temporary dir")
	fs.BoolVar(&cfg.Server, "server", cfg.Server, "run a server")
	fs.BoolVar(&cfg.Client, "client", cfg.Client, "run a client (with -server: both in one agent)")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "where state lives (required unless -dev, which uses a temporary dir)")
	fs.IntVar(&cfg.BootstrapExpect, "bootstrap-expect", cfg.BootstrapExpect, "server: bootstrap Raft once this many servers are seen (1: a single server; 0: join an existing cluster)")
	fs.Var(&listFlag{dst: &cfg.Join}, "join", "server: serf address (host[:port], port 4682) of a server to join at start (repeatable)")
	fs.Var(&listFlag{dst: &cfg.RetryJoin}, "retry-join", "server: like -join, but keep trying with backoff until one answers (repeatable)")
	fs.DurationVar(&cfg.RetryInterval, "retry-interval", cfg.RetryInterval, "server: first wait between -retry-join attempts, doubling up to 30s (default 1s)")
	fs.IntVar(&cfg.RetryMax, "retry-max", cfg.RetryMax, "server: -retry-join attempts before giving up (0: forever)")
	fs.StringVar(&cfg.BindAddr, "bind", cfg.BindAddr, "IP the HTTP, Raft and serf listeners bind unless their address is given (default 127.0.0.1)")
	fs.StringVar(&cfg.AdvertiseAddr, "advertise", cfg.AdvertiseAddr, "IP other servers reach this one on (needed with -bind 0.0.0.0)")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "HTTP API address (default <bind>:4680; port 0 picks a free port)")
	fs.StringVar(&cfg.RaftAddr, "raft-addr", cfg.RaftAddr, "server: Raft address (default <bind>:4681; in -dev a free port)")
	fs.StringVar(&cfg.SerfAddr, "serf-addr", cfg.SerfAddr, "server: serf gossip address, TCP and UDP (default <bind>:4682; in -dev a free port)")
	fs.StringVar(&cfg.NodeName, "node", cfg.NodeName, "this agent's name, unique in the cluster; a server's Raft ID (default: hostname)")
	fs.Var(&listFlag{dst: &cfg.Servers}, "servers", "client: server HTTP address (repeatable, or comma-separated)")
	fs.Var(labelFlag(cfg.Labels), "label", "client: node label key=value (repeatable)")
	fs.Var(&listFlag{dst: &cfg.Drivers}, "driver", "client: drivers to enable, comma-separated (exec, docker, kubernetes, mock; default exec)")
	fs.StringVar(&cfg.PluginDir, "plugin-dir", "", "client: directory of external driver plugins (go-plugin executables)")
	registerKubernetesFlags(fs, &cfg.Kubernetes)
	fs.IntVar(&cfg.SchedulerWorkers, "scheduler-workers", cfg.SchedulerWorkers, "server: scheduler goroutines on the leader")
	fs.IntVar(&cfg.EvalBrokerMax, "eval-broker-max", cfg.EvalBrokerMax, "server: most evaluations the leader's broker holds before submits get 429 (default 10000)")
	fs.IntVar(&cfg.MaxPendingEvals, "max-pending-evals", cfg.MaxPendingEvals, "server: most evaluations waiting in state (pending or blocked) before submits get 429 (default 100000)")
	fs.DurationVar(&cfg.IdempotencyTTL, "idempotency-ttl", structs.DefaultIdempotencyTTL, "server: how long an Idempotency-Key holds its pipeline: a retry with the same key and spec gets it back, another spec gets 409; after this the key is forgotten and may be used again")
	fs.Int64Var(&cfg.SnapshotMaxBytes, "snapshot-max-bytes", cfg.SnapshotMaxBytes, "server: largest snapshot file PUT /v1/operator/snapshot accepts, streamed to the data dir (default 1073741824, 1 GiB; larger gets 413)")
	fs.DurationVar(&cfg.RaftHeartbeatTimeout, "raft-heartbeat-timeout", cfg.RaftHeartbeatTimeout, "server: follower's wait for the leader before an election (default 1s; failover time scales with it)")
	fs.DurationVar(&cfg.RaftElectionTimeout, "raft-election-timeout", cfg.RaftElectionTimeout, "server: candidate's wait for votes (default 1s)")
	fs.DurationVar(&cfg.RaftLeaderLeaseTimeout, "raft-leader-lease-timeout", cfg.RaftLeaderLeaseTimeout, "server: leader steps down without a quorum for this long (default 500ms)")
	fs.Uint64Var(&cfg.RaftSnapshotThreshold, "raft-snapshot-threshold", cfg.RaftSnapshotThreshold, "server: log entries between automatic Raft snapshots (default 8192)")
	fs.DurationVar(&cfg.RaftSnapshotInterval, "raft-snapshot-interval", cfg.RaftSnapshotInterval, "server: how often the snapshot threshold is checked (default 2m)")
	fs.Uint64Var(&cfg.RaftTrailingLogs, "raft-trailing-logs", cfg.RaftTrailingLogs, "server: log entries kept after a snapshot (default 10240)")
	fs.DurationVar(&cfg.DeadServerCleanup, "dead-server-cleanup", cfg.DeadServerCleanup, "server: remove a server failed this long from the voters (default 0: never, only remove-peer)")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
	registerEventFlags(fs, &cfg.Events)
	registerNodeFlags(fs, &cfg.Nodes)
	registerExecFlags(fs, &cfg.Exec)
	registerDockerFlags(fs, &cfg.Docker)
	registerLimitFlags(fs, &cfg.SpecLimits)
	registerHTTPFlags(fs, &cfg.HTTP)
	registerLogFlags(fs, &cfg.Logs)
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: ciplat agent [-dev | -server | -client] [flags]\n\n"+
			"  Runs a ciplat agent. Examples:\n"+
			"    ciplat agent -dev\n"+
			"    ciplat agent -server -bootstrap-expect 3 -data-dir /var/lib/ciplat -node s1 -join 10.0.0.2 -join 10.0.0.3\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg.Servers = splitList(cfg.Servers)
	cfg.Drivers = splitList(cfg.Drivers)
	cfg.DetectDocker = devDetectDocker(fs, cfg) // dev_docker.go
	if cfg.Kubernetes.Kubeconfig != "" && !slices.Contains(cfg.Drivers, "kubernetes") {
		cfg.Drivers = append(cfg.Drivers, "kubernetes") // -kubeconfig enables it
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
	if !cfg.Server && (cfg.BootstrapExpect != 0 || len(cfg.Join) > 0 || len(cfg.RetryJoin) > 0) {
		return nil, fmt.Errorf("-bootstrap-expect, -join and -retry-join are server flags: add -server")
	}
	if cfg.BootstrapExpect < 0 {
		return nil, fmt.Errorf("invalid -bootstrap-expect %d: want the number of servers (1, 3 or 5)", cfg.BootstrapExpect)
	}
	if cfg.SnapshotMaxBytes < 0 {
		return nil, fmt.Errorf("invalid -snapshot-max-bytes %d: want a size in bytes (0: the default, 1 GiB)", cfg.SnapshotMaxBytes)
	}
	if cfg.Dev && cfg.BootstrapExpect > 1 {
		return nil, fmt.Errorf("-dev runs a single server: drop -bootstrap-expect %d or -dev", cfg.BootstrapExpect)
	}
	if cfg.IdempotencyTTL <= 0 {
		return nil, fmt.Errorf("invalid -idempotency-ttl %s: want a positive duration such as 24h", cfg.IdempotencyTTL)
	}
	if _, err := parseLevel(cfg.LogLevel); err != nil {
		return nil, err
	}
	if err := cfg.Nodes.validate(); err != nil {
		return nil, err
	}
	if err := cfg.SpecLimits.Check(); err != nil {
		return nil, err
	}
	if err := cfg.HTTP.validate(); err != nil {
		return nil, err
	}
	if err := cfg.Logs.validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// splitList splits comma-separated entries and drops empty ones.
func splitList(in []string) []string {
	var out []string
	for _, v := range in {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("invalid -log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}
