package agent_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/ciplat/ciplat/api"
	"github.com/ciplat/ciplat/command/agent"
)

// The browser tests drive the web UI in headless Debian chromium (chromedp)
// against a real in-process dev agent: server, client with the exec
// driver, embedded NATS. .ci/run installs chromium; under CI=true a missing
// browser fails the tests instead of skipping them.

// chromiumPath finds the browser, or skips (fails under CI) the test.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed: the browser tests need it under CI (apt-get install chromium; .ci/run does)")
	}
	t.Skip("chromium is not installed (apt-get install chromium): skipping the browser tests")
	return ""
}

// devAgent starts `ciplat agent -dev` in this process on free ports.
func devAgent(t *testing.T) (*agent.Agent, *api.Client) {
	t.Helper()
	cfg, err := agent.ParseFlags([]string{"-dev", "-http-addr", "127.0.0.1:0", "-data-dir", t.TempDir(), "-driver", "exec"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("start dev agent: %v", err)
	}
	t.Cleanup(a.Shutdown)
	c, err := api.NewClient(&api.Config{Address: "http://" + a.HTTPAddr()})
	if err != nil {
		t.Fatal(err)
	}
	return a, c
}

// browser opens a headless chromium tab of width × height.
func browser(t *testing.T, width, height int) context.Context {
	t.Helper()
	path := chromiumPath(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // CI runs as root
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(width, height),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	// The first run starts the browser; it lives as long as ctx.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// shotDir is where screenshots go: $CIPLAT_SCREENSHOTS, else the test's
// artifact dir (kept with go test -artifacts).
func shotDir(t *testing.T) string {
	if d := os.Getenv("CIPLAT_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.ArtifactDir()
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(shotDir(t), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// waitJS polls a JavaScript expression until it is true.
func waitJS(ctx context.Context, what, expr string, timeout time.Duration) error {
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(50*time.Millisecond)))
	if err != nil {
		return fmt.Errorf("waiting for %s: %w", what, err)
	}
	return nil
}

const uiSpec = `name: ui-e2e
jobs:
  build:
    steps:
      - name: greet
        run: echo "hello from build"; sleep 1
  test:
    needs: [build]
    steps:
      - name: unit
        run: echo "unit tests passed"
  lint:
    needs: [build]
    steps:
      - name: vet
        run: echo "lint clean"
`

// TestUI_SubmitWatchDAGAndLogs submits a pipeline through the form, then
// watches (without reloading) its DAG nodes turn SUCCEEDED and its log
// lines appear.
func TestUI_SubmitWatchDAGAndLogs(t *testing.T) {
	ctx := browser(t, 1280, 900)
	a, _ := devAgent(t)
	base := "http://" + a.HTTPAddr() + "/ui/"

	err := chromedp.Do(ctx,
		watchCSP(),
		chromedp.Navigate(base+"#/submit"),
		chromedp.WaitVisible(chromedp.ID("spec")),
		js(`window.__noReload = 42`),
		chromedp.SetValue(chromedp.ID("spec"), uiSpec),
		chromedp.Click(chromedp.ID("submit")),
	)
	if err != nil {
		t.Fatal(err)
	}
	if err := waitJS(ctx, "the pipeline page", `location.hash.startsWith("#/pipelines/") && document.querySelectorAll(".dag-node").length === 3`, 20*time.Second); err != nil {
		screenshot(t, ctx, "submit-failed.png")
		t.Fatal(err)
	}
	// Record every state the DAG shows from now on.
	first, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`(() => {
		window.__states = [];
		const nodes = [...document.querySelectorAll(".dag-node")];
		new MutationObserver((ms) => ms.forEach((m) => window.__states.push(m.target.dataset.job + ":" + m.target.dataset.state)))
			.observe(document.querySelector("svg.dag"), { subtree: true, attributes: true, attributeFilter: ["data-state"] });
		return nodes.map((n) => n.dataset.job + ":" + n.dataset.state);
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	if err := waitJS(ctx, "every DAG node SUCCEEDED",
		`[...document.querySelectorAll(".dag-node")].every((n) => n.dataset.state === "SUCCEEDED")`, 60*time.Second); err != nil {
		screenshot(t, ctx, "dag-timeout.png")
		t.Fatal(err)
	}
	if err := waitJS(ctx, "the log lines", `(() => { const l = document.querySelector(".log").textContent;
		return l.includes("hello from build") && l.includes("unit tests passed") && l.includes("lint clean"); })()`, 30*time.Second); err != nil {
		screenshot(t, ctx, "logs-timeout.png")
		t.Fatal(err)
	}
	if err := waitJS(ctx, "the pipeline badge", `document.querySelector(".view-head .badge").textContent === "SUCCEEDED"`, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	changes, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.__states`))
	if err != nil {
		t.Fatal(err)
	}
	marker, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.__noReload || 0`))
	if err != nil {
		t.Fatal(err)
	}
	if marker != 42 {
		t.Fatal("the page reloaded: the UI must update in place")
	}
	if strings.Count(strings.Join(first, " "), ":SUCCEEDED") == 3 || len(changes) == 0 {
		t.Fatalf("the DAG never changed in place: first %v, changes %v", first, changes)
	}
	t.Logf("DAG at first %v, then %v", first, changes)
	screenshot(t, ctx, "pipeline-succeeded.png")

	// The list, the nodes and the cluster pages render too.
	for _, page := range []struct{ hash, ready, file string }{
		{"#/pipelines", `document.querySelectorAll("table.pipelines tbody tr").length >= 1`, "pipelines.png"},
		{"#/nodes", `document.querySelectorAll(".card.node").length >= 1`, "nodes.png"},
		{"#/events", `document.querySelectorAll(".events-table tbody tr").length >= 5`, "events.png"},
		{"#/cluster", `document.querySelector("#raft-index") !== null`, "cluster.png"},
	} {
		if err := chromedp.Do(ctx, js(fmt.Sprintf(`location.hash = %q`, page.hash))); err != nil {
			t.Fatal(err)
		}
		if err := waitJS(ctx, page.hash, page.ready, 15*time.Second); err != nil {
			screenshot(t, ctx, "timeout-"+page.file)
			t.Fatal(err)
		}
		screenshot(t, ctx, page.file)
	}
	checkCSP(t, ctx)
}

// watchCSP records, from the next page on, every Content-Security-Policy
// violation in window.__csp (a script devtools injects before the page's
// own, which the policy does not apply to).
func watchCSP() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
			Source: `window.__csp = [];
			document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective + " blocked " + (e.blockedURI || "inline") + " at " + e.sourceFile + ":" + e.lineNumber));`,
		})
		return err
	})
}

// checkCSP fails the test if the UI did anything the agent's
// Content-Security-Policy refused (inline script or style, eval, a foreign
// connection): under that policy such a feature silently breaks.
func checkCSP(t *testing.T, ctx context.Context) {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.__csp || ["the CSP watcher did not run"]`))
	if err != nil {
		t.Fatal(err)
	}
	if len(v) > 0 {
		t.Fatalf("the UI broke the Content-Security-Policy: %v", v)
	}
}

// TestUI_CancelRunningPipeline cancels a running pipeline with the
// pipeline page's button.
func TestUI_CancelRunningPipeline(t *testing.T) {
	ctx := browser(t, 1280, 900)
	a, c := devAgent(t)
	p, err := c.SubmitPipeline(context.Background(), []byte(`name: long
jobs:
  sleepy:
    steps:
      - name: wait
        run: echo "started"; sleep 120
  after:
    needs: [sleepy]
    steps: [ { run: echo never } ]
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = chromedp.Do(ctx, chromedp.Navigate("http://"+a.HTTPAddr()+"/ui/#/pipelines/"+p.ID))
	if err != nil {
		t.Fatal(err)
	}
	if err := waitJS(ctx, "the job to run", `document.querySelector('.dag-node[data-job="sleepy"]')?.dataset.state === "RUNNING"`, 30*time.Second); err != nil {
		screenshot(t, ctx, "cancel-not-running.png")
		t.Fatal(err)
	}
	if err := waitJS(ctx, "its first log line", `document.querySelector(".log").textContent.includes("started")`, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "cancel-running.png")
	// The first click arms the button, the second cancels.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("cancel")), chromedp.Click(chromedp.ID("cancel"))); err != nil {
		t.Fatal(err)
	}
	if err := waitJS(ctx, "the pipeline CANCELLED", `document.querySelector(".view-head .badge").textContent === "CANCELLED" &&
		[...document.querySelectorAll(".dag-node")].every((n) => n.dataset.state === "CANCELLED")`, 30*time.Second); err != nil {
		screenshot(t, ctx, "cancel-timeout.png")
		t.Fatal(err)
	}
	screenshot(t, ctx, "cancelled.png")
	got, _, err := c.Pipeline(context.Background(), p.ID, nil)
	if err != nil || got.State != api.StateCancelled {
		t.Fatalf("pipeline %v, %v; want CANCELLED", got.State, err)
	}
}

// TestUI_Phone renders the pipeline list and a pipeline on a phone-sized
// screen.
func TestUI_Phone(t *testing.T) {
	ctx := browser(t, 390, 844)
	a, c := devAgent(t)
	p, err := c.SubmitPipeline(context.Background(), []byte(uiSpec), nil)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + a.HTTPAddr() + "/ui/"
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Navigate(base+"#/pipelines/"+p.ID)); err != nil {
		t.Fatal(err)
	}
	if err := waitJS(ctx, "the DAG", `[...document.querySelectorAll(".dag-node")].every((n) => n.dataset.state === "SUCCEEDED") &&
		document.querySelectorAll(".dag-node").length === 3`, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	overflow, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`))
	if err != nil {
		t.Fatal(err)
	}
	if overflow {
		t.Error("the pipeline page scrolls sideways on a phone")
	}
	screenshot(t, ctx, "phone-pipeline.png")
	if err := chromedp.Do(ctx, js(`location.hash = "#/"`)); err != nil {
		t.Fatal(err)
	}
	if err := waitJS(ctx, "the list", `document.querySelectorAll("table.pipelines tbody tr").length === 1`, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "phone-pipelines.png")
}

// js runs a JavaScript statement and ignores its value.
func js(expr string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Evaluate[any](expr)(ctx, t)
		return chromedp.Void{}, err
	}
}
