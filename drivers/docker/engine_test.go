package docker_test

import (
	"context"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/ciplat/ciplat/drivers/docker"
)

// testImage is the image the tests run in: busybox FROM scratch, built by
// tools/test-image/build.sh (`make test-image`) when missing.
const testImage = "ciplat/busybox:test"

// buildScript builds testImage; the tests run from drivers/docker.
const buildScript = "../../tools/test-image/build.sh"

var (
	engineOnce sync.Once
	engineErr  string // why the engine or the image is not usable; "" when they are
)

// needEngine returns when the Docker engine answers and testImage is
// present (building it if needed). Otherwise it skips the test with the
// reason, or fails it under CI=true, where the engine is part of the test
// machine and its absence is a broken setup, not a reason to pass.
func needEngine(t *testing.T) {
	t.Helper()
	engineOnce.Do(func() { engineErr = checkEngine() })
	if engineErr == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and the Docker engine is not usable: %s", engineErr)
	}
	t.Skipf("Docker engine not usable, skipping (set CI=true to make this a failure): %s", engineErr)
}

// checkEngine pings the engine and builds testImage when it is missing.
func checkEngine() string {
	d, err := docker.New(docker.Config{})
	if err != nil {
		return err.Error()
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if fp := d.Fingerprint(ctx); !fp.Healthy {
		return fp.Reason
	}
	cli := rawClient()
	defer cli.Close()
	if _, err := cli.ImageInspect(ctx, testImage); err == nil {
		return ""
	}
	out, err := exec.Command(buildScript).CombinedOutput()
	if err != nil {
		return "building " + testImage + " with " + buildScript + ": " + err.Error() + ": " + string(out)
	}
	return ""
}

// rawClient is a plain Docker client, for the tests to look behind the
// driver's back.
func rawClient() *client.Client {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		panic(err) // only a malformed DOCKER_HOST gets here
	}
	return cli
}

// newDriver returns a driver closed at cleanup.
func newDriver(t *testing.T, cfg docker.Config) *docker.Driver {
	t.Helper()
	d, err := docker.New(cfg)
	if err != nil {
		t.Fatalf("docker.New: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}
