package agent

import (
	"flag"
	"fmt"
	"net/http"
	"time"

	"github.com/ciplat/ciplat/server/httpapi"
)

// HTTPConfig bounds the agent's HTTP listener, so idle keep-alives, slow
// request bodies and connection floods cannot pin the agent's memory and
// file descriptors. There is deliberately no global write timeout: a
// blocking query waits up to 10 minutes and log follows, the event stream
// and the WebSocket feed stream for as long as the client reads. Each
// streamed response bounds its own writes instead: log streams, the event
// stream, a snapshot download and any response a follower proxies from the
// leader give every write and flush -log-write-timeout (server's
// deadlineWriter); the WebSocket feed has its own per-write timeout.
type HTTPConfig struct {
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, headers and body. It
	// ends when the body has been read: net/http clears the connection's
	// read deadline when it starts watching for the client going away
	// (connReader.startBackgroundRead), so the answer (a blocking query,
	// a stream, a WebSocket) may take longer; a test holds it so.
	ReadTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle this long between
	// requests.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's line and headers (net/http allows
	// 4096 bytes of slack over it); more gets 431.
	MaxHeaderBytes int
	// MaxConns caps the open HTTP connections, WebSockets included; a
	// connection beyond it is answered 503 and closed (connCapListener).
	// 0 means no cap.
	MaxConns int
	// MaxWSClients caps the WebSocket clients of GET /v1/ws (server).
	MaxWSClients int
	// ForwardTimeout bounds a request a follower forwards to the leader
	// (server).
	ForwardTimeout time.Duration
}

// httpFileConfig is HTTPConfig's part of a -config file.
type httpFileConfig struct {
	HTTPReadHeaderTimeout *string `json:"http_read_header_timeout"`
	HTTPReadTimeout       *string `json:"http_read_timeout"`
	HTTPIdleTimeout       *string `json:"http_idle_timeout"`
	HTTPMaxHeaderBytes    *int    `json:"http_max_header_bytes"`
	HTTPMaxConns          *int    `json:"http_max_conns"`
	WSMaxClients          *int    `json:"ws_max_clients"`
	ForwardTimeout        *string `json:"forward_timeout"`
}

// defaultHTTPConfig is what an agent runs with unless told otherwise.
func defaultHTTPConfig() HTTPConfig {
	return HTTPConfig{
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		MaxConns:          4096,
		MaxWSClients:      512,
		ForwardTimeout:    10 * time.Second,
	}
}

// apply copies the fields the file sets into c.
func (fc *httpFileConfig) apply(c *HTTPConfig) error {
	for _, d := range []struct {
		name string
		dst  *time.Duration
		v    *string
	}{
		{"http_read_header_timeout", &c.ReadHeaderTimeout, fc.HTTPReadHeaderTimeout},
		{"http_read_timeout", &c.ReadTimeout, fc.HTTPReadTimeout},
		{"http_idle_timeout", &c.IdleTimeout, fc.HTTPIdleTimeout},
		{"forward_timeout", &c.ForwardTimeout, fc.ForwardTimeout},
	} {
		if d.v == nil {
			continue
		}
		v, err := time.ParseDuration(*d.v)
		if err != nil {
			return fmt.Errorf("%s %q: want a duration such as 30s", d.name, *d.v)
		}
		*d.dst = v
	}
	for _, n := range []struct {
		dst *int
		v   *int
	}{{&c.MaxHeaderBytes, fc.HTTPMaxHeaderBytes}, {&c.MaxConns, fc.HTTPMaxConns}, {&c.MaxWSClients, fc.WSMaxClients}} {
		if n.v != nil {
			*n.dst = *n.v
		}
	}
	return nil
}

func registerHTTPFlags(fs *flag.FlagSet, c *HTTPConfig) {
	fs.DurationVar(&c.ReadHeaderTimeout, "http-read-header-timeout", c.ReadHeaderTimeout, "most time to read a request's headers")
	fs.DurationVar(&c.ReadTimeout, "http-read-timeout", c.ReadTimeout, "most time to read a request, headers and body (answers and streams may take longer)")
	fs.DurationVar(&c.IdleTimeout, "http-idle-timeout", c.IdleTimeout, "close a keep-alive connection idle this long")
	fs.IntVar(&c.MaxHeaderBytes, "http-max-header-bytes", c.MaxHeaderBytes, "most bytes of a request's line and headers (+4 KiB slack); more gets 431")
	fs.IntVar(&c.MaxConns, "http-max-conns", c.MaxConns, "most open HTTP connections (WebSockets included); one more gets 503 (0: no cap)")
	fs.IntVar(&c.MaxWSClients, "ws-max-clients", c.MaxWSClients, "server: most WebSocket clients of /v1/ws; one more gets 503 (0: the default 512; negative: no cap)")
	fs.DurationVar(&c.ForwardTimeout, "forward-timeout", c.ForwardTimeout, "server: a follower's deadline for the leader's answer to a forwarded request (blocking reads add their wait); past it 504")
}

// validate refuses settings that would disable a bound by accident.
func (c *HTTPConfig) validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"-http-read-header-timeout", c.ReadHeaderTimeout}, {"-http-read-timeout", c.ReadTimeout}, {"-http-idle-timeout", c.IdleTimeout}, {"-forward-timeout", c.ForwardTimeout}} {
		if d.v <= 0 {
			return fmt.Errorf("invalid %s %s: want a positive duration such as 30s", d.name, d.v)
		}
	}
	if c.MaxHeaderBytes <= 0 {
		return fmt.Errorf("invalid -http-max-header-bytes %d: want a positive number of bytes", c.MaxHeaderBytes)
	}
	if c.MaxConns < 0 {
		return fmt.Errorf("invalid -http-max-conns %d: want a number of connections (0: no cap)", c.MaxConns)
	}
	return nil
}

// withDefaults fills the fields left zero (an agent.Config built in code
// rather than by ParseFlags) with defaultHTTPConfig's.
func (c HTTPConfig) withDefaults() HTTPConfig {
	d := defaultHTTPConfig()
	for _, f := range []struct{ dst, def *time.Duration }{
		{&c.ReadHeaderTimeout, &d.ReadHeaderTimeout}, {&c.ReadTimeout, &d.ReadTimeout},
		{&c.IdleTimeout, &d.IdleTimeout}, {&c.ForwardTimeout, &d.ForwardTimeout},
	} {
		if *f.dst == 0 {
			*f.dst = *f.def
		}
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = d.MaxHeaderBytes
	}
	return c
}

// httpServer builds the agent's http.Server around h, with security
// headers on every answer. There is no WriteTimeout (see HTTPConfig).
func (c *HTTPConfig) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           httpapi.SecurityHeaders(h),
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		ReadTimeout:       c.ReadTimeout,
		IdleTimeout:       c.IdleTimeout,
		MaxHeaderBytes:    c.MaxHeaderBytes,
	}
}
