// GrafanaTestServer: the documented Grafana datasource API, for tests.
