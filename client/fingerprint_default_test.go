package client

import (
	"testing"

	"github.com/ciplat/ciplat/api"
	"github.com/ciplat/ciplat/drivers"
	"github.com/ciplat/ciplat/drivers/mock"
)

// TestClient_defaultDriver: a job with an image and no driver gets a
// healthy container driver or none at all, never exec (issue 12: such a
// job ran its steps on the host); a job without an image gets exec.
func TestClient_defaultDriver(t *testing.T) {
	healthy := &api.DriverInfo{Detected: true, Healthy: true}
	sick := &api.DriverInfo{Detected: true, Reason: "engine down"}
	d := mock.New(mock.Config{})
	tests := []struct {
		name   string
		health map[string]*api.DriverInfo
		image  string
		want   string
	}{
		{"image, exec only", map[string]*api.DriverInfo{"exec": healthy}, "no/such-image:1", ""},
		{"image, docker sick", map[string]*api.DriverInfo{"exec": healthy, "docker": sick}, "busybox:1", ""},
		{"image, docker healthy", map[string]*api.DriverInfo{"exec": healthy, "docker": healthy}, "busybox:1", "docker"},
		{"image, kubernetes healthy", map[string]*api.DriverInfo{"exec": healthy, "kubernetes": healthy}, "busybox:1", "kubernetes"},
		{"no image", map[string]*api.DriverInfo{"exec": healthy, "docker": healthy}, "", "exec"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := map[string]drivers.Driver{}
			for n := range tt.health {
				reg[n] = d
			}
			c := &Client{cfg: Config{Drivers: reg}, health: tt.health}
			if got := c.defaultDriver(tt.image); got != tt.want {
				t.Errorf("defaultDriver(%q) = %q, want %q", tt.image, got, tt.want)
			}
		})
	}
}
