package agent

import (
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"

	"github.com/ciplat/ciplat/drivers"
	"github.com/ciplat/ciplat/drivers/docker"
	"github.com/ciplat/ciplat/drivers/kubernetes"
	"github.com/ciplat/ciplat/drivers/mock"
	"github.com/ciplat/ciplat/drivers/plugin"
)

// builtinDrivers are the drivers compiled into this binary; -driver picks
// among them, and -plugin-dir adds external ones.
var builtinDrivers = []string{"exec", "docker", "kubernetes", "mock"}

// KubernetesConfig is the agent's configuration of the kubernetes driver.
type KubernetesConfig struct {
	// Kubeconfig is the kubeconfig file; empty means in-cluster, else
	// KUBECONFIG or ~/.kube/config. Giving it enables the driver.
	Kubeconfig string
	// Namespace is where the job Pods go (default "ciplat").
	Namespace string
	// Workspace is where the workspace emptyDir is mounted in each Pod
	// (default /workspace; on kwok a directory of its host).
	Workspace string
}

// registerKubernetesFlags adds the kubernetes driver's flags to fs.
func registerKubernetesFlags(fs *flag.FlagSet, k *KubernetesConfig) {
	fs.StringVar(&k.Kubeconfig, "kubeconfig", k.Kubeconfig, "client: kubeconfig of the cluster the kubernetes driver runs job Pods in; enables the driver (default with -driver kubernetes: in-cluster, else KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&k.Namespace, "k8s-namespace", kubernetes.DefaultNamespace, "client: namespace of the kubernetes driver's job Pods (apply deploy/kubernetes/rbac.yaml there)")
	fs.StringVar(&k.Workspace, "k8s-workspace", "", "client: where the kubernetes driver mounts each Pod's workspace emptyDir (default /workspace; with kwok, a directory of kwok's host)")
}

// buildDrivers is the client's explicit driver registry (no init()
// side effects): the -driver list plus every plugin found in -plugin-dir.
// The returned func closes what needs closing (engine clients, plugin
// processes) after the client has stopped.
func buildDrivers(cfg *Config, clientDir string, log *slog.Logger) (map[string]drivers.Driver, func(), error) {
	reg := map[string]drivers.Driver{}
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	for _, name := range cfg.Drivers {
		switch name {
		case "exec":
			reg[name] = cfg.Exec.newDriver(clientDir, log) // exec_config.go
		case "mock":
			reg[name] = mock.New(mock.Config{})
		case "docker":
			d, err := docker.New(docker.Config{NodeID: cfg.NodeName, Logger: log, AuthFile: cfg.Docker.AuthFile})
			if err != nil {
				closeAll()
				return nil, nil, fmt.Errorf("docker driver: %w", err)
			}
			reg[name] = d
			closers = append(closers, func() { _ = d.Close() })
		case "kubernetes":
			routeKlog(log)
			k := cfg.Kubernetes
			d, err := kubernetes.New(kubernetes.Config{Kubeconfig: k.Kubeconfig, Namespace: k.Namespace, Workspace: k.Workspace, NodeID: cfg.NodeName, Logger: log})
			if err != nil {
				closeAll()
				return nil, nil, fmt.Errorf("kubernetes driver: %w", err)
			}
			reg[name] = d
			closers = append(closers, func() { _ = d.Close() })
		default:
			closeAll()
			return nil, nil, fmt.Errorf("unknown driver %q: this build has %v, plus plugins from -plugin-dir", name, builtinDrivers)
		}
	}
	if cfg.PluginDir != "" {
		found, err := plugin.Discover(cfg.PluginDir, plugin.Config{StateDir: filepath.Join(clientDir, "plugins"), Logger: log})
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("plugins in %s: %w", cfg.PluginDir, err)
		}
		for name, d := range found {
			if slices.Contains(builtinDrivers, name) || reg[name] != nil {
				closeAll()
				_ = d.Close()
				return nil, nil, fmt.Errorf("plugin driver %q in %s clashes with a built-in driver", name, cfg.PluginDir)
			}
			reg[name] = d
			closers = append(closers, func() { _ = d.Close() })
		}
	}
	if len(reg) == 0 {
		return nil, nil, fmt.Errorf("no driver enabled: give -driver (%v) or -plugin-dir", builtinDrivers)
	}
	return reg, closeAll, nil
}
