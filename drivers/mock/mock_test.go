package mock_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ciplat/ciplat/drivers"
	"github.com/ciplat/ciplat/drivers/drivertest"
	"github.com/ciplat/ciplat/drivers/mock"
)

// lang writes the conformance suite's steps in the mock's language.
type lang struct{}

func (lang) Name() string { return "the mock's line language" }
func (lang) Echo(s drivers.Stream, text string) string {
	if s == drivers.Stderr {
		return "echoerr " + text
	}
	return "echo " + text
}
func (lang) Exit(code int) string               { return fmt.Sprintf("exit %d", code) }
func (lang) Sleep(d time.Duration) string       { return "sleep " + d.String() }
func (lang) PrintEnv(name string) string        { return "printenv " + name }
func (lang) WriteFile(name, text string) string { return "write " + name + " " + text }
func (lang) ReadFile(name string) string        { return "cat " + name }

func TestDriver_Conformance(t *testing.T) {
	var mu sync.Mutex
	hosts := map[string]*mock.Host{} // by subtest: same subtest, same host
	drivertest.Run(t, func(t *testing.T) drivers.Driver {
		mu.Lock()
		defer mu.Unlock()
		if hosts[t.Name()] == nil {
			hosts[t.Name()] = mock.NewHost()
		}
		return mock.New(mock.Config{Host: hosts[t.Name()]})
	}, drivertest.Options{Lang: lang{}, KillWithin: time.Second})
}

// run runs script in a fresh worker of d with worker env env.
func run(t *testing.T, ctx context.Context, d *mock.Driver, env map[string]string, script string) (drivers.StepResult, *drivertest.Recorder, error) {
	t.Helper()
	h, err := d.CreateWorker(t.Context(), drivers.WorkerConfig{ID: t.Name(), Env: env})
	if err != nil {
		t.Fatal(err)
	}
	defer d.DestroyWorker(context.Background(), h)
	rec := drivertest.NewRecorder()
	res, err := d.RunStep(ctx, h, drivers.StepConfig{Name: "s", Run: script}, rec)
	return res, rec, err
}

func TestDriver_RunStep_language(t *testing.T) {
	tests := []struct {
		name     string
		script   string
		env      map[string]string
		wantCode int
		want     string // lines as "stream:text", joined by "|"
	}{
		{"echo", "echo hello world\n  # comment\n\nechoerr oops", nil, 0, "stdout:hello world|stderr:oops"},
		{"exit", "echo a\nexit 42\necho b", nil, 42, "stdout:a"},
		{"unknown is a no-op", "make all\necho done", nil, 0, "stdout:done"},
		{"bad exit", "exit x", nil, 2, `stderr:mock: line 1: exit: want an integer exit code, got "x"`},
		{"sleep", "sleep 1ms\nsleep 0.001\necho slept", nil, 0, "stdout:slept"},
		{"printenv", "printenv CI\nprintenv NOPE\nprintenv W", map[string]string{"W": "w"}, 0, "stdout:CI=true|stdout:NOPE unset|stdout:W=w"},
		{"files", "write f hello there\ncat f\ncat g", nil, 1, "stdout:hello there|stderr:cat: g: No such file or directory"},
		{"fail-until-attempt, unset is 1", "fail-until-attempt 2", nil, 1, "stderr:mock: attempt 1 fails until attempt 2"},
		{"fail-until-attempt reached", "fail-until-attempt 2\necho ok", map[string]string{"CIPLAT_ATTEMPT": "2"}, 0, "stdout:ok"},
		{"fail-until-attempt 1", "fail-until-attempt 1\necho ok", nil, 0, "stdout:ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, rec, err := run(t, t.Context(), mock.New(mock.Config{}), tt.env, tt.script)
			if err != nil || res.ExitCode != tt.wantCode {
				t.Fatalf("exit %d, err %v; want exit %d", res.ExitCode, err, tt.wantCode)
			}
			var got []string
			for _, l := range rec.Lines() {
				got = append(got, string(l.Stream)+":"+l.Line)
			}
			if g := strings.Join(got, "|"); g != tt.want {
				t.Errorf("output %q, want %q", g, tt.want)
			}
		})
	}
}

func TestDriver_RunStep_sleepHook(t *testing.T) {
	var slept []time.Duration
	d := mock.New(mock.Config{Sleep: func(ctx context.Context, d time.Duration) error {
		slept = append(slept, d)
		return nil
	}})
	if res, _, err := run(t, t.Context(), d, nil, "sleep 1h\nsleep 2"); err != nil || res.ExitCode != 0 {
		t.Fatalf("exit %d, err %v", res.ExitCode, err)
	}
	if len(slept) != 2 || slept[0] != time.Hour || slept[1] != 2*time.Second {
		t.Errorf("slept %v, want [1h 2s]", slept)
	}
}

func TestDriver_SetHealthy(t *testing.T) {
	d := mock.New(mock.Config{Name: "sim"})
	if d.Name() != "sim" {
		t.Errorf("Name = %q", d.Name())
	}
	d.SetHealthy(false, "disk full")
	if fp := d.Fingerprint(t.Context()); !fp.Detected || fp.Healthy || fp.Reason != "disk full" {
		t.Errorf("Fingerprint = %+v", fp)
	}
	if _, err := d.CreateWorker(t.Context(), drivers.WorkerConfig{ID: "w"}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("CreateWorker while unhealthy: %v", err)
	}
	d.SetHealthy(true, "")
	if fp := d.Fingerprint(t.Context()); !fp.Healthy {
		t.Errorf("Fingerprint after SetHealthy(true) = %+v", fp)
	}
}

func TestDriver_Stats(t *testing.T) {
	d := mock.New(mock.Config{})
	ctx := t.Context()
	h, err := d.CreateWorker(ctx, drivers.WorkerConfig{ID: "w"})
	if err != nil {
		t.Fatal(err)
	}
	rec := drivertest.NewRecorder()
	done := make(chan error, 1)
	go func() {
		_, err := d.RunStep(ctx, h, drivers.StepConfig{Run: "echo started\nsleep 1h"}, rec)
		done <- err
	}()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rec.WaitLine(wctx, drivers.Stdout, "started"); err != nil {
		t.Fatal(err)
	}
	if st := d.Stats(); st != (mock.Stats{Created: 1, Running: 1}) {
		t.Errorf("while running: %+v", st)
	}
	d.DestroyWorker(ctx, h)
	// Right after DestroyWorker returns, nothing runs any more.
	if st := d.Stats(); st != (mock.Stats{Created: 1, Destroyed: 1, Steps: 1}) {
		t.Errorf("after destroy: %+v", st)
	}
	if err := <-done; !errors.Is(err, drivers.ErrWorkerNotFound) {
		t.Errorf("interrupted step: %v", err)
	}
	d.DestroyWorker(ctx, h)
	if st := d.Stats(); st.Destroyed != 1 {
		t.Errorf("idempotent destroy counted: %+v", st)
	}
}
