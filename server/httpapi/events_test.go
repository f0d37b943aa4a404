package httpapi

import (
	"bufio"
	"context"
	"io"
	"testing"
	"time"

	"github.com/ciplat/ciplat/fsm/state"
)

func TestEventStream_Heartbeat(t *testing.T) {
	st, err := state.NewStateStore()
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		streamEvents(ctx, func() *state.StateStore { return st }, &eventWriter{w: pw}, &eventFilter{keys: map[string]bool{}}, eventCursor{}, 20*time.Millisecond)
		pw.Close()
	}()
	r := bufio.NewReader(pr)
	for i := 0; i < 3; i++ {
		line, err := r.ReadString('\n')
		if err != nil || line != "{}\n" {
			t.Fatalf("heartbeat %d = %q, %v", i, line, err)
		}
	}
}
