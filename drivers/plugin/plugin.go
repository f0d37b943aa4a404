// Package plugin runs ciplat drivers as separate executables, so a
// platform team can add a provider without forking ciplat. It is both the
// SDK a plugin author uses and the host side the agent uses.
//
// A plugin is a program whose main calls Serve with its drivers.Driver:
//
//	func main() { plugin.Serve(mydriver.New()) }
//
// The agent finds plugins named ciplat-driver-* in its -plugin-dir
// (Discover), or opens one by path (Open), and gets back a *Driver that
// implements drivers.Driver by calling the plugin. The plugin passes the
// same conformance suite (drivers/drivertest) as a driver built in.
//
// # Protocol
//
// Host and plugin speak gRPC over hashicorp/go-plugin: the host starts the
// plugin as a child process with the magic cookie CIPLAT_PLUGIN in its
// environment, and both check the handshake (cookie and protocol version
// ProtocolVersion) before anything else, so a plugin built for another
// protocol version fails at start with go-plugin's version error instead of
// misbehaving later. The gRPC service ciplat.driver.v1.Driver is written
// by hand (no protoc): its messages are the JSON of this package's Go
// types, carried by a codec that leaves go-plugin's own protobuf messages
// to protobuf. RunStep is a bidirectional stream: the host sends the step,
// then perhaps a cancel; the plugin sends batches of log lines as they
// come, then the result. Cancelling ctx on the host therefore kills the step
// in the plugin and waits for it, as drivers.Driver requires, and no line
// reaches the sink after RunStep returns.
//
// # Crashes
//
// When the plugin process dies, calls in flight return an error wrapping
// ErrPluginExited (their jobs fail and are retried per policy), Fingerprint
// reports the driver unhealthy with the reason, and the next call other
// than Fingerprint starts a new plugin process; Fingerprint itself restarts
// it only after Config.RestartDelay, so the node is seen unhealthy
// meanwhile. Workers survive a plugin restart as far as the plugin's own
// state does (the example keeps them in Config.StateDir).
package plugin

import (
	"errors"

	goplugin "github.com/hashicorp/go-plugin"
)

// ProtocolVersion is the version of the host–plugin protocol. It changes
// when the service changes incompatibly; host and plugin must agree.
const ProtocolVersion = 1

// Handshake is what host and plugin check before talking. The cookie is not
// security: it tells a user who runs a plugin by hand that it is a plugin.
var Handshake = goplugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "CIPLAT_PLUGIN",
	MagicCookieValue: "ciplat-driver-plugin",
}

// EnvStateDir is the environment variable in which the host tells a plugin
// where to keep its state (workspaces, worker records). It is the same for
// every start of one plugin, so workers survive a plugin restart. See
// StateDir.
const EnvStateDir = "CIPLAT_PLUGIN_STATE_DIR"

// FilePrefix is how Discover recognises plugin executables.
const FilePrefix = "ciplat-driver-"

// ErrPluginExited is wrapped by the errors of calls that failed because
// the plugin process exited or stopped answering.
var ErrPluginExited = errors.New("driver plugin exited")

// pluginKey names the one plugin each executable serves, in go-plugin's
// plugin set.
const pluginKey = "driver"
