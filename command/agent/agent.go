// Package agent wires a ciplat agent from its configuration: the server
// (Raft, scheduler, HTTP API), the client (drivers, allocation runners) and
// the web UI. It is the only part of command/ that imports beyond api.
package agent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/ciplat/ciplat/api"
	"github.com/ciplat/ciplat/client"
	"github.com/ciplat/ciplat/drivers"
	execdriver "github.com/ciplat/ciplat/drivers/exec"
	"github.com/ciplat/ciplat/drivers/mock"
	"github.com/ciplat/ciplat/server"
	"github.com/ciplat/ciplat/ui"
)

// Agent is a running agent.
//
// Lifecycle: New starts everything; Shutdown stops the client (destroying
// its workers), the HTTP server and the server, once. Safe for concurrent use.
type Agent struct {
	cfg    *Config
	log    *slog.Logger
	tmpDir string

	server   *server.Server
	client   *client.Client
	listener net.Listener
	httpSrv  *http.Server

	clientCancel context.CancelFunc
	clientDone   chan struct{}
	once         sync.Once
}

// New starts an agent.
func New(cfg *Config, logger *slog.Logger) (a *Agent, err error) {
	a = &Agent{cfg: cfg, log: logger}
	defer func() {
		if err != nil {
			a.Shutdown()
		}
	}()
	if cfg.DataDir == "" {
		dir, err := os.MkdirTemp("", "ciplat-dev-")
		if err != nil {
			return nil, fmt.Errorf("create temporary data dir: %w", err)
		}
		a.tmpDir = dir
		cfg.DataDir = dir
	}
	if cfg.NodeName == "" {
		cfg.NodeName, _ = os.Hostname()
	}
	httpAddr := cfg.HTTPAddr
	if httpAddr == "" {
		httpAddr = "127.0.0.1:4680"
	}
	ln, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return nil, fmt.Errorf("HTTP API on %s: %w", httpAddr, err)
	}
	a.listener = ln

	mux := http.NewServeMux()
	if cfg.Server {
		raftAddr := cfg.RaftAddr
		if raftAddr == "" {
			raftAddr = "127.0.0.1:4681"
			if cfg.Dev {
				raftAddr = "127.0.0.1:0"
			}
		}
		a.server, err = server.New(server.Config{
			NodeName:         cfg.NodeName,
			DataDir:          filepath.Join(cfg.DataDir, "server"),
			RaftAddr:         raftAddr,
			Bootstrap:        true,
			Dev:              cfg.Dev,
			SchedulerWorkers: cfg.SchedulerWorkers,
			Logger:           logger,
		})
		if err != nil {
			return nil, err
		}
		mux.Handle("/v1/", a.server.HTTPHandler())
	}
	mux.Handle("/ui/", ui.Handler("/ui/"))
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/", http.StatusFound)
	})
	a.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := a.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("HTTP server stopped", "err", err)
		}
	}()

	if a.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := a.server.WaitForLeader(ctx)
		cancel()
		if err != nil {
			return nil, err
		}
	}
	if cfg.Client {
		if err := a.startClient(); err != nil {
			return nil, err
		}
	}
	return a, nil
}

func (a *Agent) startClient() error {
	addr := "http://" + a.listener.Addr().String()
	if len(a.cfg.Servers) > 0 {
		addr = a.cfg.Servers[0]
	}
	apiClient, err := api.NewClient(&api.Config{Address: addr})
	if err != nil {
		return err
	}
	dataDir := filepath.Join(a.cfg.DataDir, "client")
	reg := map[string]drivers.Driver{}
	for _, name := range a.cfg.Drivers {
		switch name {
		case "exec":
			reg[name] = execdriver.New(execdriver.Config{Root: filepath.Join(dataDir, "workspaces"), Logger: a.log})
		case "mock":
			reg[name] = mock.New(mock.Config{})
		default:
			return fmt.Errorf("unknown driver %q: this build has exec and mock", name)
		}
	}
	c, err := client.New(client.Config{
		Name:    a.cfg.NodeName,
		DataDir: a.cfg.DataDir,
		API:     apiClient,
		Drivers: reg,
		Labels:  a.cfg.Labels,
		Logger:  a.log,
	})
	if err != nil {
		return err
	}
	a.client = c
	ctx, cancel := context.WithCancel(context.Background())
	a.clientCancel = cancel
	a.clientDone = make(chan struct{})
	go func() {
		defer close(a.clientDone)
		if err := c.Run(ctx); err != nil && ctx.Err() == nil {
			a.log.Error("client stopped", "err", err)
		}
	}()
	select {
	case <-c.Ready():
	case <-a.clientDone:
		return errors.New("client stopped before it registered")
	case <-time.After(30 * time.Second):
		return errors.New("client could not register its node within 30s")
	}
	return nil
}

// HTTPAddr is the address the HTTP API listens on.
func (a *Agent) HTTPAddr() string { return a.listener.Addr().String() }

// Server is the agent's server, or nil.
func (a *Agent) Server() *server.Server { return a.server }

// Shutdown stops the agent. It is safe to call more than once.
func (a *Agent) Shutdown() {
	a.once.Do(func() {
		if a.clientCancel != nil {
			a.clientCancel()
			<-a.clientDone
		}
		if a.httpSrv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = a.httpSrv.Shutdown(ctx)
			cancel()
			_ = a.httpSrv.Close()
		} else if a.listener != nil {
			_ = a.listener.Close()
		}
		if a.server != nil {
			if err := a.server.Shutdown(); err != nil {
				a.log.Warn("server shutdown", "err", err)
			}
		}
		if a.tmpDir != "" {
			_ = os.RemoveAll(a.tmpDir)
		}
	})
}

// Main runs `ciplat agent` until SIGINT or SIGTERM.
func Main(args []string, stdout, stderr io.Writer) int {
	cfg, err := ParseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return 2
	}
	level, _ := parseLevel(cfg.LogLevel)
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	a, err := New(cfg, logger)
	if err != nil {
		fmt.Fprintf(stderr, "Error: starting agent: %v\n", err)
		return 1
	}
	mode := "server"
	switch {
	case cfg.Dev:
		mode = "dev (server + client)"
	case cfg.Server && cfg.Client:
		mode = "server + client"
	case cfg.Client:
		mode = "client"
	}
	fmt.Fprintf(stdout, "==> ciplat agent started in %s mode\n", mode)
	fmt.Fprintf(stdout, "    HTTP API: http://%s\n", a.HTTPAddr())
	fmt.Fprintf(stdout, "    Web UI:   http://%s/ui/\n", a.HTTPAddr())
	if a.server != nil {
		fmt.Fprintf(stdout, "    Raft:     %s\n", a.server.RaftAddr())
	}
	fmt.Fprintf(stdout, "    Data dir: %s\n", cfg.DataDir)
	if f, ok := stdout.(interface{ Sync() error }); ok {
		_ = f.Sync()
	}
	sig := <-sigs
	fmt.Fprintf(stdout, "==> caught %s, shutting down\n", sig)
	a.Shutdown()
	fmt.Fprintln(stdout, "==> agent stopped")
	return 0
}
