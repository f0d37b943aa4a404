package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/ciplat/ciplat/drivers"
)

// maxBatchBytes bounds the log lines of one stepEvent, well under gRPC's
// default 4 MiB message limit (a line is at most 64 KiB by convention,
// and JSON may double it).
const maxBatchBytes = 1 << 20

// Serve serves d to the host that started this process, and returns only
// when the host asks the plugin to stop (or kills it). It is the whole
// main of a plugin. Run by hand, outside a host, it prints that it is a
// plugin and exits with status 1.
//
// d must follow the drivers.Driver contract: the host calls it
// concurrently for different workers, exactly as the agent would call a
// built-in driver. The plugin's stdout and stderr go to the host's log.
// Serve also exits the process when its parent (the host) goes away, so a
// crashed agent leaves no plugin running; workers are left for the next
// agent to recover or reap through ListWorkers.
func Serve(d drivers.Driver) {
	go watchParent()
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         goplugin.PluginSet{pluginKey: &grpcPlugin{impl: d}},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, grpc.ForceServerCodec(codec{}))...)
		},
		Logger: hclog.New(&hclog.LoggerOptions{
			Name:       "plugin",
			Output:     os.Stderr,
			Level:      hclog.Warn,
			JSONFormat: true, // the host's go-plugin client parses it
		}),
	})
}

// StateDir returns where the host asked this plugin to keep its state
// (EnvStateDir), or, when started without one, a directory for the plugin
// named name under the user's cache directory. Plugins that keep workers
// on disk use it so a restarted plugin finds them again.
func StateDir(name string) string {
	if dir := os.Getenv(EnvStateDir); dir != "" {
		return dir
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "ciplat", "plugins", name+"-"+strconv.Itoa(os.Getuid()))
}

// watchParent exits the process once its parent has gone (it is then
// re-parented, so its parent PID changes).
func watchParent() {
	ppid := os.Getppid()
	for range time.Tick(time.Second) {
		if os.Getppid() != ppid {
			os.Exit(0)
		}
	}
}

// grpcPlugin is the go-plugin side of a driver: it registers the service
// in the plugin and builds the host's client.
type grpcPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
	impl drivers.Driver // plugin side only
}

var _ goplugin.GRPCPlugin = (*grpcPlugin)(nil)

// GRPCServer registers the service on the plugin's server.
func (p *grpcPlugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	s.RegisterService(&serviceDesc, &server{impl: p.impl})
	return nil
}

// GRPCClient returns the host's connection to the service.
func (p *grpcPlugin) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return c, nil
}

// server is the plugin side of the service: it calls the plugin's driver.
type server struct {
	impl drivers.Driver
}

var _ service = (*server)(nil)

func (s *server) name(context.Context, *empty) (*nameReply, error) {
	return &nameReply{Name: s.impl.Name()}, nil
}

func (s *server) fingerprint(ctx context.Context, _ *empty) (*fingerprintReply, error) {
	return &fingerprintReply{Fingerprint: s.impl.Fingerprint(ctx)}, nil
}

func (s *server) createWorker(ctx context.Context, req *createRequest) (*handleReply, error) {
	h, err := s.impl.CreateWorker(ctx, req.Config)
	return &handleReply{Handle: h, Err: toWire(err)}, nil
}

func (s *server) destroyWorker(ctx context.Context, req *handleRequest) (*errReply, error) {
	return &errReply{Err: toWire(s.impl.DestroyWorker(ctx, req.Handle))}, nil
}

func (s *server) recoverWorker(ctx context.Context, req *handleRequest) (*errReply, error) {
	return &errReply{Err: toWire(s.impl.RecoverWorker(ctx, req.Handle))}, nil
}

func (s *server) listWorkers(ctx context.Context, _ *empty) (*listReply, error) {
	hs, err := s.impl.ListWorkers(ctx)
	return &listReply{Handles: hs, Err: toWire(err)}, nil
}

// runStep runs one step for a RunStep stream. The step's ctx ends when the
// host sends Cancel, at the host's deadline, or when the stream breaks
// (the host went away). Lines go out in batches as fast as the stream
// takes them; the last event carries the result.
func (s *server) runStep(stream grpc.ServerStream) error {
	var first stepMessage
	if err := stream.RecvMsg(&first); err != nil {
		return err
	}
	if first.Start == nil {
		return errors.New("plugin: RunStep stream must start with the step")
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	if dl := first.Start.Deadline; !dl.IsZero() {
		var cancelDL context.CancelFunc
		ctx, cancelDL = context.WithDeadline(ctx, dl)
		defer cancelDL()
	}
	go func() {
		for {
			var m stepMessage
			if err := stream.RecvMsg(&m); err != nil {
				return // the stream ended; its ctx ends the step if need be
			}
			if m.Cancel {
				cancel()
			}
		}
	}()

	b := &batcher{wake: make(chan struct{}, 1)}
	sent := make(chan error, 1)
	stop := make(chan struct{})
	go func() { sent <- b.send(stream, stop) }()
	res, err := s.impl.RunStep(ctx, first.Start.Handle, first.Start.Step, b)
	close(stop)
	if serr := <-sent; serr != nil {
		return serr
	}
	return stream.SendMsg(&stepEvent{Done: true, Result: res, Err: toWire(err)})
}

// batcher is the plugin side's LogSink: Emit queues, send ships what is
// queued in one event whenever the stream is free.
type batcher struct {
	mu    sync.Mutex
	lines []drivers.LogLine
	wake  chan struct{} // one token: lines are queued
}

// Emit queues l. It is safe for concurrent use.
func (b *batcher) Emit(l drivers.LogLine) {
	b.mu.Lock()
	b.lines = append(b.lines, l)
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// take removes and returns up to maxBatchBytes of queued lines (at least
// one, if any).
func (b *batcher) take() []drivers.LogLine {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, size := 0, 0
	for n < len(b.lines) && (n == 0 || size+len(b.lines[n].Line) < maxBatchBytes) {
		size += 2*len(b.lines[n].Line) + 64
		n++
	}
	out := b.lines[:n:n]
	b.lines = b.lines[n:]
	if len(b.lines) == 0 {
		b.lines = nil
	}
	return out
}

// send ships batches until stop is closed and the queue is empty.
func (b *batcher) send(stream grpc.ServerStream, stop <-chan struct{}) error {
	for {
		select {
		case <-b.wake:
		case <-stop:
		}
		for {
			lines := b.take()
			if len(lines) == 0 {
				break
			}
			if err := stream.SendMsg(&stepEvent{Lines: lines}); err != nil {
				return fmt.Errorf("plugin: send log lines: %w", err)
			}
		}
		select {
		case <-stop:
			if lines := b.take(); len(lines) > 0 { // emitted just before stop
				if err := stream.SendMsg(&stepEvent{Lines: lines}); err != nil {
					return fmt.Errorf("plugin: send log lines: %w", err)
				}
				continue
			}
			return nil
		default:
		}
	}
}
