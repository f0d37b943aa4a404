package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/ciplat/ciplat/api"
)

// The CSRF and DNS rebinding guards (server/httpapi/browser.go) against a
// real browser: a page of another origin, and a page whose name was
// re-resolved to the agent's loopback address, try to submit a pipeline;
// the agent refuses every attempt and runs nothing.

// The specs the attacks post: a pipeline and a job that would run id.
const (
	csrfPipeline = "name: csrf\njobs:\n  pwn:\n    steps:\n      - run: id\n"
	csrfJob      = "name: csrf\nsteps:\n  - run: id\n"
)

// evilPage is served from another origin (another port): it posts the spec
// to the agent the ways a page can without a CORS preflight.
const evilPage = `<!doctype html><html><body>
<iframe name="sink"></iframe>
<script>
// A text/plain form sends "name=value": with the spec and an ignored
// x- field as the name, that is a valid spec.
function formPost(action, enctype, spec) {
  const f = document.createElement("form");
  f.method = "POST"; f.action = action; f.enctype = enctype; f.target = "sink";
  const i = document.createElement("textarea");
  if (enctype === "text/plain") { i.name = spec + "x-pad: "; i.value = ""; } else { i.name = "spec"; i.value = spec; }
  f.appendChild(i); document.body.appendChild(f); f.submit();
}
</script></body></html>`

// csrfBrowser opens a headless chromium tab whose resolver maps
// rebind.test to 127.0.0.1 (a DNS rebinding, without a DNS server), and
// records the status of every answer from the agent's port.
func csrfBrowser(t *testing.T, agentPort string) (context.Context, func() map[string][]int) {
	t.Helper()
	path := chromiumPath(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("host-resolver-rules", "MAP rebind.test 127.0.0.1"),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	var mu sync.Mutex
	seen := map[string][]int{}
	err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventResponseReceived); ok && strings.Contains(e.Response.URL, ":"+agentPort+"/v1/") {
			mu.Lock()
			seen[e.Response.URL] = append(seen[e.Response.URL], int(e.Response.Status))
			mu.Unlock()
		}
	})
	if err == nil {
		_, err = chromedp.Call(ctx, network.Enable, network.EnableParams{})
	}
	if err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx, func() map[string][]int {
		mu.Lock()
		defer mu.Unlock()
		out := map[string][]int{}
		for k, v := range seen {
			out[k] = append([]int(nil), v...)
		}
		return out
	}
}

// evalAsync evaluates a JavaScript expression, awaiting its promise.
func evalAsync(ctx context.Context, expr string) (string, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
}

// TestBrowser_CrossOriginWritesRefused: a page on another port posts a
// spec with no-cors fetches (text/plain, an untyped Blob) and with forms
// (text/plain, urlencoded, multipart): every answer is a 4xx and no
// pipeline exists afterwards.
func TestBrowser_CrossOriginWritesRefused(t *testing.T) {
	a, c := devAgent(t)
	agentURL := "http://" + a.HTTPAddr()
	_, port, _ := net.SplitHostPort(a.HTTPAddr())
	ctx, seen := csrfBrowser(t, port)
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, evilPage)
	}))
	defer evil.Close()
	if err := chromedp.Do(ctx, chromedp.Navigate(evil.URL)); err != nil {
		t.Fatal(err)
	}
	spec, _ := json.Marshal(csrfPipeline)
	job, _ := json.Marshal(csrfJob)
	attempts := []struct{ name, js string }{
		{"no-cors fetch, text/plain", fmt.Sprintf(`fetch(%q, {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: %s}).then(() => "sent", e => "failed: " + e)`, agentURL+"/v1/pipelines", spec)},
		{"no-cors fetch, untyped Blob", fmt.Sprintf(`fetch(%q, {method: "POST", mode: "no-cors", body: new Blob([%s])}).then(() => "sent", e => "failed: " + e)`, agentURL+"/v1/jobs", job)},
	}
	for _, at := range attempts {
		res, err := evalAsync(ctx, at.js)
		if err != nil {
			t.Fatalf("%s: %v", at.name, err)
		}
		t.Logf("%s: %s", at.name, res)
	}
	// The forms go one after the other (they navigate the same frame): the
	// first /v1/pipelines answer is the fetch's, then one per form.
	for i, enctype := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"} {
		jsCode := fmt.Sprintf(`formPost(%q, %q, %s)`, agentURL+"/v1/pipelines", enctype, spec)
		if err := chromedp.Do(ctx, js(jsCode)); err != nil {
			t.Fatalf("form %s: %v", enctype, err)
		}
		waitFor(func() bool { return len(seen()[agentURL+"/v1/pipelines"]) >= 2+i })
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && total(seen()) < 5 {
		time.Sleep(50 * time.Millisecond)
	}
	got := seen()
	if total(got) < 5 {
		t.Fatalf("the browser made %d requests to the agent, want 5: %v", total(got), got)
	}
	for u, codes := range got {
		for _, code := range codes {
			if code < 400 || code >= 500 {
				t.Errorf("%s answered %d, want 4xx", u, code)
			}
		}
	}
	t.Logf("the agent answered: %v", got)
	assertNoPipelines(t, c)
}

// waitFor polls cond for up to 10s.
func waitFor(cond func() bool) {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && !cond(); {
		time.Sleep(50 * time.Millisecond)
	}
}

func total(m map[string][]int) int {
	n := 0
	for _, v := range m {
		n += len(v)
	}
	return n
}

// assertNoPipelines fails the test unless the agent holds no pipeline.
func assertNoPipelines(t *testing.T, c *api.Client) {
	t.Helper()
	ps, _, err := c.Pipelines(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 0 {
		t.Fatalf("%d pipelines were created, want none: %+v", len(ps), ps[0])
	}
}

// TestBrowser_DNSRebindingRefused: a page of rebind.test whose name now
// resolves to 127.0.0.1 is same-origin with the agent as far as the
// browser knows; the agent (bound to loopback) refuses its Host, on reads
// and writes.
func TestBrowser_DNSRebindingRefused(t *testing.T) {
	a, c := devAgent(t)
	_, port, _ := net.SplitHostPort(a.HTTPAddr())
	ctx, _ := csrfBrowser(t, port)
	rebound := "http://rebind.test:" + port
	// The UI's static files hold nothing secret and are served to any Host.
	if err := chromedp.Do(ctx, chromedp.Navigate(rebound+"/ui/")); err != nil {
		t.Fatal(err)
	}
	spec, _ := json.Marshal(`{"name":"rebind","jobs":{"pwn":{"steps":[{"run":"id"}]}}}`)
	for _, code := range []string{
		`fetch("/v1/pipelines").then(r => r.status + " " + r.headers.get("Content-Type"))`,
		fmt.Sprintf(`fetch("/v1/pipelines", {method: "POST", headers: {"Content-Type": "application/json"}, body: %s}).then(async r => r.status + " " + (await r.json()).error)`, spec),
	} {
		res, err := evalAsync(ctx, code)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(res, "403 ") {
			t.Errorf("%s: %s, want 403", code, res)
		}
		t.Logf("%s", res)
	}
	assertNoPipelines(t, c)
}

// TestHTTP_CSRFGuardWithCurl: what curl sends by default with -d
// (application/x-www-form-urlencoded) is refused with 415; with a JSON
// Content-Type the submit is accepted; a foreign Origin gets 403.
func TestHTTP_CSRFGuardWithCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed")
	}
	a, c := devAgent(t)
	u := "http://" + a.HTTPAddr() + "/v1/jobs"
	body := `{"name":"curl","steps":[{"run":"true"}]}`
	for _, tc := range []struct {
		args []string
		code string
	}{
		{[]string{"-d", body}, "415"},
		{[]string{"-H", "Content-Type: text/plain", "--data-binary", body}, "415"},
		{[]string{"-H", "Content-Type: application/json", "-H", "Origin: http://evil.example", "-d", body}, "403"},
		{[]string{"-H", "Content-Type: application/json", "-H", "Host: evil.example", "-d", body}, "403"},
		{[]string{"-H", "Content-Type: application/json", "-d", body}, "201"},
	} {
		args := append([]string{"-s", "-o", "/dev/stderr", "-w", "%{http_code}"}, tc.args...)
		cmd := exec.Command(curl, append(args, u)...)
		var answer bytes.Buffer
		cmd.Stderr = &answer
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("curl %v: %v", tc.args, err)
		}
		if string(out) != tc.code {
			t.Errorf("curl %v: %s %s, want %s", tc.args, out, answer.String(), tc.code)
		}
		if tc.code != "201" && !strings.Contains(answer.String(), `"error"`) {
			t.Errorf("curl %v: answer %s is not a JSON error", tc.args, answer.String())
		}
	}
	ps, _, err := c.Pipelines(context.Background(), nil)
	if err != nil || len(ps) != 1 {
		t.Fatalf("pipelines: %v %v, want only the JSON submit's", len(ps), err)
	}
}
