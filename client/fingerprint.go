package client

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ciplat/ciplat/api"
)

// defaultMemoryMB is assumed when /proc/meminfo cannot be read (not Linux).
const defaultMemoryMB = 1024

// fingerprintTimeout bounds one driver's Fingerprint call.
const fingerprintTimeout = 10 * time.Second

// fingerprint builds the node record this client registers: capacity, host
// attributes, labels and the health of every driver.
func (c *Client) fingerprint(ctx context.Context) *api.Node {
	attrs := map[string]string{
		"os":        runtime.GOOS,
		"arch":      runtime.GOARCH,
		"hostname":  c.hostname,
		"cpu.cores": strconv.Itoa(runtime.NumCPU()),
	}
	for k, v := range c.cfg.Labels {
		attrs["label."+k] = v
	}
	infos, driverAttrs := c.fingerprintDrivers(ctx)
	for name, fp := range infos {
		attrs["driver."+name] = strconv.FormatBool(fp.Healthy)
		// Driver attributes travel as driver.<name>.<key>; a driver may
		// already name them so.
		for k, v := range driverAttrs[name] {
			if !strings.HasPrefix(k, "driver."+name+".") {
				k = "driver." + name + "." + k
			}
			attrs[k] = v
		}
	}
	return &api.Node{
		ID:              c.nodeID,
		Name:            c.cfg.Name,
		Status:          api.NodeStatusReady,
		Eligible:        true,
		Resources:       api.Resources{CPU: runtime.NumCPU() * 1000, MemoryMB: c.memoryMB},
		Reserved:        c.cfg.Reserved,
		Attributes:      attrs,
		Drivers:         infos,
		StatusUpdatedAt: c.now(),
	}
}

// fingerprintDrivers asks every driver for its health, records the answers
// for the runners (see driverHealth) and returns them in wire form with each
// driver's attributes.
func (c *Client) fingerprintDrivers(ctx context.Context) (map[string]*api.DriverInfo, map[string]map[string]string) {
	out := make(map[string]*api.DriverInfo, len(c.cfg.Drivers))
	attrs := make(map[string]map[string]string, len(c.cfg.Drivers))
	for _, name := range slices.Sorted(maps.Keys(c.cfg.Drivers)) {
		fctx, cancel := context.WithTimeout(ctx, fingerprintTimeout)
		fp := c.cfg.Drivers[name].Fingerprint(fctx)
		cancel()
		out[name] = &api.DriverInfo{Detected: fp.Detected, Healthy: fp.Healthy, Reason: fp.Reason, Version: fp.Version}
		attrs[name] = maps.Clone(fp.Attributes)
	}
	c.mu.Lock()
	c.health = out
	c.mu.Unlock()
	return out, attrs
}

// driverHealth returns the last fingerprint of a driver; ok is false when the
// driver is not configured.
func (c *Client) driverHealth(name string) (info api.DriverInfo, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.cfg.Drivers[name]; !ok {
		return api.DriverInfo{}, false
	}
	if p := c.health[name]; p != nil {
		return *p, true
	}
	return api.DriverInfo{}, true
}

// containerDrivers run a job's `image`; a job with an image that names no
// driver goes to the first of them that is healthy here (the same list as
// structs.ContainerDrivers, which the scheduler's driver check uses).
var containerDrivers = []string{"docker", "kubernetes"}

// defaultDriver names the driver for a job that names none. A job with an
// image gets a healthy container driver, or "" when there is none: an
// image never runs on the host unless the job says `driver: exec` (the
// scheduler placed it here because one was healthy; it may have failed
// since). A job without an image gets "exec" when it is configured;
// otherwise the first healthy driver in name order; otherwise (nothing
// healthy) the first in name order, so the job fails with that driver's
// health reason.
func (c *Client) defaultDriver(image string) string {
	names := slices.Sorted(maps.Keys(c.cfg.Drivers))
	c.mu.Lock()
	defer c.mu.Unlock()
	if image != "" {
		for _, n := range containerDrivers {
			if h := c.health[n]; h != nil && h.Healthy {
				return n
			}
		}
		return ""
	}
	if _, ok := c.cfg.Drivers["exec"]; ok {
		return "exec"
	}
	for _, n := range names {
		if h := c.health[n]; h != nil && h.Healthy {
			return n
		}
	}
	return names[0]
}

// nodeChanged reports whether two fingerprints differ in anything the
// servers schedule on (the timestamp and indexes do not count).
func nodeChanged(a, b *api.Node) bool {
	if a.Resources != b.Resources || a.Reserved != b.Reserved || a.Name != b.Name {
		return true
	}
	if !maps.Equal(a.Attributes, b.Attributes) {
		return true
	}
	return !maps.EqualFunc(a.Drivers, b.Drivers, func(x, y *api.DriverInfo) bool { return *x == *y })
}

// meminfoPath is read for the host's memory; a variable for tests.
var meminfoPath = "/proc/meminfo"

// hostMemoryMB reads MemTotal from /proc/meminfo.
func hostMemoryMB() (int, error) {
	f, err := os.Open(meminfoPath)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// MemTotal:       16314484 kB
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.Atoi(fields[1])
			if err != nil || kb <= 0 {
				return 0, fmt.Errorf("%s: bad MemTotal %q", meminfoPath, fields[1])
			}
			return kb / 1024, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s: no MemTotal line", meminfoPath)
}

// register sends the node record until the servers accept it or ctx ends.
func (c *Client) register(ctx context.Context, n *api.Node) error {
	b := newBackoff(100*time.Millisecond, 5*time.Second)
	for {
		_, err := c.cfg.API.RegisterNode(ctx, n)
		if err == nil {
			c.log.Info("node registered", "name", n.Name,
				"cpu", n.Resources.CPU, "memory_mb", n.Resources.MemoryMB)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// Registration must eventually succeed, so even a 4xx is retried
		// (a server that is still electing a leader may answer oddly).
		d := retryAfter(err, b.next())
		c.log.Warn("node registration failed; retrying", "err", err, "in", d.Round(time.Millisecond))
		if err := c.sleep(ctx, d); err != nil {
			return err
		}
	}
}

// refingerprintLoop re-checks driver health every fingerprintInterval and
// re-registers the node only when something the servers use changed. It
// also re-registers when the watcher reports that the servers lost the node.
func (c *Client) refingerprintLoop(ctx context.Context, last *api.Node) {
	t := time.NewTicker(c.fingerprintInterval)
	defer t.Stop()
	for {
		force := false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.reregister:
			force = true
		}
		n := c.fingerprint(ctx)
		if !force && !nodeChanged(last, n) {
			continue
		}
		c.setNode(n) // gossip it at once, whatever the registration does
		c.log.Info("node fingerprint changed; re-registering", "forced", force)
		if err := c.register(ctx, n); err != nil {
			return
		}
		last = n
	}
}
