// GrafanaClient: the Grafana datasource HTTP API.
