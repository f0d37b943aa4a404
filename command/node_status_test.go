package command

import (
	"encoding/json"
	"testing"

	"github.com/ciplat/ciplat/api"
)

func TestNodeStatus(t *testing.T) {
	f := newFakeAgent(t)
	f.nodes = []*api.Node{
		{ID: nodeID, Name: "build1", Address: "10.0.0.5:4680", Status: api.NodeStatusReady, Eligible: true,
			Resources: api.Resources{CPU: 4000, MemoryMB: 8192}, Reserved: api.Resources{CPU: 100, MemoryMB: 256},
			Allocated:  &api.Resources{CPU: 1500, MemoryMB: 512},
			Attributes: map[string]string{"os": "linux", "arch": "amd64"},
			Drivers: map[string]*api.DriverInfo{
				"exec":   {Detected: true, Healthy: true},
				"docker": {Detected: true, Healthy: false, Reason: "Cannot connect to the Docker daemon"},
			}},
		{ID: "11223344-0000-4000-8000-000000000000", Name: "build2", Status: api.NodeStatusDown,
			Resources: api.Resources{CPU: 2000, MemoryMB: 4096}},
	}

	r := runMain(t, "node", "status", "-address", f.addr())
	r.check(t, exitOK, []string{
		"ID        NAME    STATUS  ELIGIBLE  CPU (m)    MEMORY (MiB)  DRIVERS\n",
		"9a8b7c6d  build1  ready   yes       1500/4000  512/8192      exec\n",
		"11223344  build2  down    no        2000       4096          -\n",
	}, nil)

	r = runMain(t, "node", "status", "-address", f.addr(), "9a8b")
	r.check(t, exitOK, []string{
		"ID           = " + nodeID + "\n",
		"Name         = build1\n",
		"Address      = 10.0.0.5:4680\n",
		"Status       = ready\n",
		"CPU (m)      = 1500/4000 (reserved 100)\n",
		"Memory (MiB) = 512/8192 (reserved 256)\n",
		"DRIVER  DETECTED  HEALTHY  VERSION  REASON\n",
		"docker  true      false    -        Cannot connect to the Docker daemon\n",
		"exec    true      true     -        -\n",
		"arch = amd64\nos   = linux\n",
	}, nil)

	r = runMain(t, "node", "status", "-json", "-address", f.addr(), "9a8b")
	var got api.Node
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.ID != nodeID {
		t.Errorf("-json printed %q (%v)", r.stdout, err)
	}

	r = runMain(t, "node", "status", "-address", f.addr(), "ffff")
	r.check(t, exitFailure, nil, []string{`Error: read node "ffff": node ffff not found (HTTP 404)`})
}
