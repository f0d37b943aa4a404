package kubernetes_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ciplat/ciplat/drivers/kubernetes"
)

// testImage has a POSIX sh. On kwok no image runs: execs run on its host.
const testImage = "busybox:1.36"

// cluster is the control plane the tests run against, named by the
// environment that `make k8s-up` writes (.k8s/env): CIPLAT_K8S_KUBECONFIG
// (admin), CIPLAT_K8S_KUBECONFIG_DRIVER (the user ciplat-driver, with only
// what deploy/kubernetes/rbac.yaml grants), CIPLAT_K8S_KUBECONFIG_NOBODY (a
// user with no permissions) and CIPLAT_K8S_BIN (kubectl).
type cluster struct {
	admin, driver, nobody, bin string
	cs                         k8s.Interface // admin
	kwok                       bool          // the nodes are kwok's: execs run on this host
}

var (
	clusterOnce sync.Once
	theCluster  *cluster
	clusterErr  string
)

// needCluster returns the cluster, with the RBAC manifest applied, or skips
// the test saying why; under CI=true, where the control plane is part of
// the test environment, a missing or unusable one fails the test.
func needCluster(tb testing.TB) *cluster {
	tb.Helper()
	clusterOnce.Do(func() { theCluster, clusterErr = setupCluster() })
	if clusterErr == "" {
		return theCluster
	}
	if os.Getenv("CI") == "true" {
		tb.Fatalf("CI=true and the Kubernetes control plane is not usable: %s", clusterErr)
	}
	tb.Skipf("Kubernetes control plane not usable, skipping (run `make k8s-up` and source .k8s/env; CI=true makes this a failure): %s", clusterErr)
	return nil
}

func setupCluster() (*cluster, string) {
	c := &cluster{
		admin:  os.Getenv("CIPLAT_K8S_KUBECONFIG"),
		driver: os.Getenv("CIPLAT_K8S_KUBECONFIG_DRIVER"),
		nobody: os.Getenv("CIPLAT_K8S_KUBECONFIG_NOBODY"),
		bin:    os.Getenv("CIPLAT_K8S_BIN"),
	}
	for name, v := range map[string]string{"CIPLAT_K8S_KUBECONFIG": c.admin, "CIPLAT_K8S_KUBECONFIG_DRIVER": c.driver,
		"CIPLAT_K8S_KUBECONFIG_NOBODY": c.nobody, "CIPLAT_K8S_BIN": c.bin} {
		if v == "" {
			return nil, name + " is not set"
		}
	}
	rc, err := clientcmd.BuildConfigFromFlags("", c.admin)
	if err != nil {
		return nil, fmt.Sprintf("admin kubeconfig %s: %v", c.admin, err)
	}
	rc.Timeout = 20 * time.Second
	if c.cs, err = k8s.NewForConfig(rc); err != nil {
		return nil, err.Error()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	nodes, err := c.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Sprintf("API server of %s does not answer: %v", c.admin, err)
	}
	for _, n := range nodes.Items {
		if n.Annotations["kwok.x-k8s.io/node"] == "fake" {
			c.kwok = true
		}
	}
	if out, err := c.kubectl(ctx, c.admin, "apply", "-f", filepath.Join("..", "..", "deploy", "kubernetes", "rbac.yaml")); err != nil {
		return nil, fmt.Sprintf("applying deploy/kubernetes/rbac.yaml: %v: %s", err, out)
	}
	return c, ""
}

// kubectl runs kubectl with kubeconfig.
func (c *cluster) kubectl(ctx context.Context, kubeconfig string, args ...string) ([]byte, error) {
	args = append([]string{"--kubeconfig", kubeconfig}, args...)
	return exec.CommandContext(ctx, filepath.Join(c.bin, "kubectl"), args...).CombinedOutput()
}

// workspace returns the Workspace for drivers of one test: on kwok, where
// steps run on this host, a directory of the test; else the default.
func (c *cluster) workspace(t testing.TB) string {
	if c.kwok {
		return t.TempDir()
	}
	return ""
}

// newDriver returns a driver as the user of kubeconfig, closed at cleanup.
func newDriver(t testing.TB, kubeconfig string, cfg kubernetes.Config) *kubernetes.Driver {
	t.Helper()
	cfg.Kubeconfig = kubeconfig
	d, err := kubernetes.New(cfg)
	if err != nil {
		t.Fatalf("kubernetes.New: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// randID returns a worker ID unique across test runs.
func randID(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}
