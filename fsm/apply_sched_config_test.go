package fsm

import (
	"strings"
	"testing"

	"github.com/ciplat/ciplat/fsm/structs"
)

func TestFSM_SchedulerConfig(t *testing.T) {
	h := newHarness(t)
	two := 2
	set := func(c *structs.SchedulerConfig, cas bool, casIndex uint64) *structs.SchedulerConfigResponse {
		t.Helper()
		return h.must(structs.SchedulerConfigRequestType, &structs.SchedulerConfigRequest{
			WriteRequest: h.wr(), Config: c, CAS: cas, CASIndex: casIndex,
		}).(*structs.SchedulerConfigResponse)
	}
	if r := set(&structs.SchedulerConfig{Algorithm: "spread", Workers: &two}, true, 0); !r.Applied || r.Index != 1 {
		t.Fatalf("first CAS at 0: %+v, want applied at 1", r)
	}
	if r := set(&structs.SchedulerConfig{Algorithm: "binpack"}, true, 0); r.Applied || r.Index != 1 {
		t.Fatalf("stale CAS: %+v, want refused with index 1", r)
	}
	if r := set(&structs.SchedulerConfig{Algorithm: "binpack", Preemption: true}, false, 0); !r.Applied {
		t.Fatalf("plain set: %+v, want applied", r)
	}
	got, err := h.f.State().SchedulerConfig(nil)
	if err != nil || got == nil {
		t.Fatalf("config: %v %v", got, err)
	}
	if got.Algorithm != "binpack" || !got.Preemption || got.Workers != nil || got.CreateIndex != 1 || got.ModifyIndex != 3 {
		t.Fatalf("config = %+v; want binpack with preemption, created 1, modified 3", got)
	}

	for _, tt := range []struct {
		name string
		c    *structs.SchedulerConfig
		want string
	}{
		{"no config", nil, "config: missing"},
		{"unknown algorithm", &structs.SchedulerConfig{Algorithm: "random"}, `algorithm "random"`},
		{"negative workers", &structs.SchedulerConfig{Algorithm: "spread", Workers: ptr(-1)}, "workers -1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := errOf(h.apply(structs.SchedulerConfigRequestType, &structs.SchedulerConfigRequest{WriteRequest: h.wr(), Config: tt.c}))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("apply = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
