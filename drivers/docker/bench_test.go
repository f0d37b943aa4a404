package docker_test

import (
	"context"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/ciplat/ciplat/drivers"
	"github.com/ciplat/ciplat/drivers/docker"
)

// BenchmarkDriver_oneStepJob measures one job of one `true` step through
// the driver (create, step, destroy) against a bare `docker run --rm IMAGE
// true` of the same image, alternating, and reports the medians and their
// ratio. Run it with -benchtime 20x or more for a stable median.
func BenchmarkDriver_oneStepJob(b *testing.B) {
	if err := checkEngine(); err != "" {
		b.Skip(err)
	}
	d, err := docker.New(docker.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	var driver, bare []time.Duration
	for b.Loop() {
		start := time.Now()
		h, err := d.CreateWorker(ctx, drivers.WorkerConfig{ID: randID("bench"), Image: testImage})
		if err != nil {
			b.Fatal(err)
		}
		res, err := d.RunStep(ctx, h, drivers.StepConfig{Name: "true", Run: "true"}, nil)
		if err != nil || res.ExitCode != 0 {
			b.Fatalf("exit %d, err %v", res.ExitCode, err)
		}
		if err := d.DestroyWorker(ctx, h); err != nil {
			b.Fatal(err)
		}
		driver = append(driver, time.Since(start))

		start = time.Now()
		if out, err := exec.Command("docker", "run", "--rm", testImage, "true").CombinedOutput(); err != nil {
			b.Fatalf("docker run: %v: %s", err, out)
		}
		bare = append(bare, time.Since(start))
	}
	md, mb := median(driver), median(bare)
	b.ReportMetric(float64(md.Nanoseconds()), "driver-ns/job")
	b.ReportMetric(float64(mb.Nanoseconds()), "docker-run-ns/job")
	b.ReportMetric(float64(md)/float64(mb), "driver/docker-run")
}

// median returns the median of ds.
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
