package agent

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestParseFlags_kubernetes: -kubeconfig enables the kubernetes driver with
// its namespace and workspace; the namespace defaults to ciplat.
func TestParseFlags_kubernetes(t *testing.T) {
	cfg, err := ParseFlags([]string{"-dev", "-kubeconfig", "/k/config", "-k8s-workspace", "/tmp/ws"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Drivers, []string{"exec", "kubernetes"}) {
		t.Errorf("drivers %v, want exec and kubernetes", cfg.Drivers)
	}
	if k := cfg.Kubernetes; k != (KubernetesConfig{Kubeconfig: "/k/config", Namespace: "ciplat", Workspace: "/tmp/ws"}) {
		t.Errorf("kubernetes config %+v", k)
	}
	cfg, err = ParseFlags([]string{"-dev", "-driver", "kubernetes", "-kubeconfig", "/k/config", "-k8s-namespace", "ci"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Drivers, []string{"kubernetes"}) || cfg.Kubernetes.Namespace != "ci" {
		t.Errorf("drivers %v, namespace %q", cfg.Drivers, cfg.Kubernetes.Namespace)
	}
}

// TestBuildDrivers_kubernetes: a kubeconfig that cannot be read stops the
// agent at start, naming the flag; a readable one registers the driver
// without contacting the cluster.
func TestBuildDrivers_kubernetes(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	_, _, err := buildDrivers(&Config{Drivers: []string{"kubernetes"}, Kubernetes: KubernetesConfig{Kubeconfig: filepath.Join(t.TempDir(), "none")}}, t.TempDir(), log)
	if err == nil {
		t.Fatal("a missing kubeconfig was accepted")
	}
	t.Logf("missing kubeconfig: %v", err)

	kc := filepath.Join(t.TempDir(), "kubeconfig")
	writeKubeconfig(t, kc)
	reg, closeAll, err := buildDrivers(&Config{Drivers: []string{"kubernetes"}, NodeName: "n1", Kubernetes: KubernetesConfig{Kubeconfig: kc}}, t.TempDir(), log)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll()
	if d := reg["kubernetes"]; d == nil || d.Name() != "kubernetes" {
		t.Errorf("registry %v", reg)
	}
}

func writeKubeconfig(t *testing.T, path string) {
	t.Helper()
	const text = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}
