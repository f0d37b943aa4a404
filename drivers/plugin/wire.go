package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/ciplat/ciplat/drivers"
)

// serviceName is the gRPC service a plugin serves. Its version follows
// ProtocolVersion.
const serviceName = "ciplat.driver.v1.Driver"

// The service's messages. Each is the JSON of the struct (see codec).
type (
	empty     struct{}
	nameReply struct {
		Name string `json:"name"`
	}
	fingerprintReply struct {
		Fingerprint drivers.Fingerprint `json:"fingerprint"`
	}
	createRequest struct {
		Config drivers.WorkerConfig `json:"config"`
	}
	handleRequest struct {
		Handle *drivers.WorkerHandle `json:"handle"`
	}
	handleReply struct {
		Handle *drivers.WorkerHandle `json:"handle,omitempty"`
		Err    *wireError            `json:"error,omitempty"`
	}
	errReply struct {
		Err *wireError `json:"error,omitempty"`
	}
	listReply struct {
		Handles []*drivers.WorkerHandle `json:"handles"`
		Err     *wireError              `json:"error,omitempty"`
	}
	// stepMessage is what the host sends on a RunStep stream: Start first,
	// then at most one Cancel.
	stepMessage struct {
		Start  *stepStart `json:"start,omitempty"`
		Cancel bool       `json:"cancel,omitempty"`
	}
	stepStart struct {
		Handle *drivers.WorkerHandle `json:"handle"`
		Step   drivers.StepConfig    `json:"step"`
		// Deadline is the host ctx's deadline, zero for none: the step's
		// ctx in the plugin ends then too.
		Deadline time.Time `json:"deadline,omitzero"`
	}
	// stepEvent is what the plugin sends on a RunStep stream: lines, in
	// order, in any number of events, then one event with Done.
	stepEvent struct {
		Lines  []drivers.LogLine  `json:"lines,omitempty"`
		Done   bool               `json:"done,omitempty"`
		Result drivers.StepResult `json:"result"`
		Err    *wireError         `json:"error,omitempty"`
	}
)

// wireError carries a driver's error across the process boundary with the
// kinds the host must still be able to test with errors.Is.
type wireError struct {
	Kind    string `json:"kind,omitempty"` // "not_found", "canceled", "deadline" or ""
	Message string `json:"message"`
}

// toWire encodes err; nil stays nil.
func toWire(err error) *wireError {
	if err == nil {
		return nil
	}
	w := &wireError{Message: err.Error()}
	switch {
	case errors.Is(err, drivers.ErrWorkerNotFound):
		w.Kind = "not_found"
	case errors.Is(err, context.Canceled):
		w.Kind = "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		w.Kind = "deadline"
	}
	return w
}

// remoteError is a plugin's error on the host: its message, and the kind
// errors.Is finds.
type remoteError struct {
	msg  string
	kind error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.kind }

// err decodes w; nil stays nil.
func (w *wireError) err() error {
	if w == nil {
		return nil
	}
	var kind error
	switch w.Kind {
	case "not_found":
		kind = drivers.ErrWorkerNotFound
	case "canceled":
		kind = context.Canceled
	case "deadline":
		kind = context.DeadlineExceeded
	}
	return &remoteError{msg: w.Message, kind: kind}
}

// codec marshals this package's messages as JSON and protobuf messages
// (go-plugin's broker, controller, stdio and health services share the
// connection) as protobuf. It lets the service be written without protoc.
type codec struct{}

func (codec) Name() string { return "proto" } // what go-plugin's peers expect on the wire

func (codec) Marshal(v any) ([]byte, error) {
	if m, ok := v.(proto.Message); ok {
		return proto.Marshal(m)
	}
	return json.Marshal(v)
}

func (codec) Unmarshal(data []byte, v any) error {
	if m, ok := v.(proto.Message); ok {
		return proto.Unmarshal(data, m)
	}
	return json.Unmarshal(data, v)
}

// service is what the plugin side implements; serviceDesc routes to it.
type service interface {
	name(context.Context, *empty) (*nameReply, error)
	fingerprint(context.Context, *empty) (*fingerprintReply, error)
	createWorker(context.Context, *createRequest) (*handleReply, error)
	destroyWorker(context.Context, *handleRequest) (*errReply, error)
	recoverWorker(context.Context, *handleRequest) (*errReply, error)
	listWorkers(context.Context, *empty) (*listReply, error)
	runStep(grpc.ServerStream) error
}

// unary adapts a service method to a gRPC method handler.
func unary[Req, Rep any](method string, fn func(service, context.Context, *Req) (*Rep, error)) grpc.MethodDesc {
	return grpc.MethodDesc{
		MethodName: method,
		Handler: func(srv any, ctx context.Context, dec func(any) error, icp grpc.UnaryServerInterceptor) (any, error) {
			req := new(Req)
			if err := dec(req); err != nil {
				return nil, err
			}
			call := func(ctx context.Context, req any) (any, error) { return fn(srv.(service), ctx, req.(*Req)) }
			if icp == nil {
				return call(ctx, req)
			}
			return icp(ctx, req, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/" + serviceName + "/" + method}, call)
		},
	}
}

// serviceDesc is the hand-written gRPC description of the service.
var serviceDesc = grpc.ServiceDesc{
	ServiceName: serviceName,
	HandlerType: (*service)(nil),
	Methods: []grpc.MethodDesc{
		unary("Name", service.name),
		unary("Fingerprint", service.fingerprint),
		unary("CreateWorker", service.createWorker),
		unary("DestroyWorker", service.destroyWorker),
		unary("RecoverWorker", service.recoverWorker),
		unary("ListWorkers", service.listWorkers),
	},
	Streams: []grpc.StreamDesc{{
		StreamName:    "RunStep",
		Handler:       func(srv any, stream grpc.ServerStream) error { return srv.(service).runStep(stream) },
		ServerStreams: true,
		ClientStreams: true,
	}},
	Metadata: "drivers/plugin/wire.go",
}

// method is the full gRPC name of a method of the service.
func method(name string) string { return fmt.Sprintf("/%s/%s", serviceName, name) }
