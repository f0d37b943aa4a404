package server

// writeWSMetrics adds the WebSocket feed's and the HTTP listener's gauges
// to GET /v1/metrics.
func (s *Server) writeWSMetrics(p promWriter) {
	st := s.live.hub.Stats()
	p.one("ciplat_ws_clients", "gauge", "WebSocket clients connected to this server.", float64(st.Conns))
	p.one("ciplat_ws_clients_max", "gauge", "Most WebSocket clients this server admits (-ws-max-clients; negative: no cap).", float64(st.MaxClients))
	p.one("ciplat_ws_rejected_total", "counter", "WebSocket upgrades refused with 503 because -ws-max-clients were connected.", float64(st.Rejected))
	if s.cfg.HTTPConns != nil {
		c := s.cfg.HTTPConns()
		p.one("ciplat_http_connections", "gauge", "Open connections of the agent's HTTP listener.", float64(c.Open))
		p.one("ciplat_http_connections_max", "gauge", "Most open HTTP connections the agent admits (-http-max-conns; 0: no cap).", float64(c.Max))
		p.one("ciplat_http_connections_rejected_total", "counter", "HTTP connections answered 503 and closed because -http-max-conns were open.", float64(c.Rejected))
	}
}
