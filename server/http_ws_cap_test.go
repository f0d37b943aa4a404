package server

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/ciplat/ciplat/server/httpapi"
)

// TestWS_ClientCap: at the cap every client is served; one more gets 503
// with Retry-After, counted in /v1/metrics; a slot freed is taken again.
func TestWS_ClientCap(t *testing.T) {
	ts := newTestServer(t, "")
	ts.srv.live.hub.SetOptions(func(o *httpapi.FeedOptions) { o.MaxClients = 2 })
	sub := httpapi.WSSubscribe{Subscribe: []string{"pipelines"}}
	a := dialWS(t, ts, sub, nil)
	dialWS(t, ts, sub, nil) // at the cap: served

	url := "ws" + strings.TrimPrefix(ts.web.URL, "http") + "/v1/ws"
	_, resp, err := websocket.DefaultDialer.Dial(url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third client: err %v, resp %+v; want 503 with Retry-After", err, resp)
	}
	b, _ := io.ReadAll(ts.do("GET", "/v1/metrics", nil, nil, nil).Body)
	metrics := string(b)
	for _, want := range []string{"ciplat_ws_clients 2\n", "ciplat_ws_clients_max 2\n", "ciplat_ws_rejected_total 1\n"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", strings.TrimSpace(want))
		}
	}

	a.conn.Close()
	waitFor(t, "the closed client's slot to be freed", func() bool { return ts.srv.live.hub.Stats().Conns == 1 })
	dialWS(t, ts, sub, nil)
}
