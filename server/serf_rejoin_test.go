package server

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/hashicorp/serf/serf"
)

func TestServerBook_PersistsAndFindsMissingPeers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "servers.json")
	b, err := openServerBook(path)
	if err != nil {
		t.Fatal(err)
	}
	err = b.note([]serverMember{
		{ID: "s1", Addr: "127.0.0.1:1001", Status: serf.StatusAlive},
		{ID: "s2", Addr: "127.0.0.1:1002", Status: serf.StatusAlive},
		{ID: "s3", Addr: "127.0.0.1:1003", Status: serf.StatusFailed}, // not alive: not noted
	})
	if err != nil {
		t.Fatal(err)
	}
	// A restart reads the book back.
	b, err = openServerBook(path)
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := b.lookup("s2"); !ok || a != "127.0.0.1:1002" {
		t.Fatalf("lookup s2 = %q %v", a, ok)
	}
	if _, ok := b.lookup("s3"); ok {
		t.Fatal("a member never seen alive must not be in the book")
	}
	cfg := raft.Configuration{Servers: []raft.Server{{ID: "s1"}, {ID: "s2"}, {ID: "s3"}, {ID: "s4"}}}
	for _, tc := range []struct {
		name    string
		members []serverMember
		want    []string
	}{
		{"alone after a restart", nil, []string{"127.0.0.1:1002"}},
		{"peer alive", []serverMember{{ID: "s2", Status: serf.StatusAlive}}, nil},
		{"peer failed", []serverMember{{ID: "s2", Status: serf.StatusFailed}}, []string{"127.0.0.1:1002"}},
	} {
		got := missingPeerAddrs("s1", cfg, tc.members, b)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: missing = %v, want %v (self, unknown s3/s4 never listed)", tc.name, got, tc.want)
		}
	}
}
