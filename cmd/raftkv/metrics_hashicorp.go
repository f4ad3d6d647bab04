//go:build hashicorpmetrics

package main

// This file and its twin connect the go-metrics package the raft library
// emits to (github.com/armon/go-metrics by default, github.com/hashicorp/go-metrics
// with the hashicorpmetrics tag) to a Prometheus registry for GET /metrics.

import (
	"net/http"

	gometrics "github.com/hashicorp/go-metrics"
	gmprom "github.com/hashicorp/go-metrics/prometheus"
)

// installMetrics makes a Prometheus sink the process-wide go-metrics sink
// and returns the handler that serves it in the Prometheus text format.
func installMetrics() (http.Handler, error) {
	reg := newMetricsRegistry()
	sink, err := gmprom.NewPrometheusSinkFrom(gmprom.PrometheusOpts{Registerer: reg, Expiration: metricsExpiration})
	if err != nil {
		return nil, err
	}
	if _, err := gometrics.NewGlobal(metricsConfig(gometrics.DefaultConfig("")), sink); err != nil {
		return nil, err
	}
	return metricsHandler(reg), nil
}

// metricsConfig keeps metric names as the library writes them (raft_apply,
// not raftkv_myhost_raft_apply); the Go and process collectors registered
// with the Prometheus registry replace go-metrics' runtime metrics.
func metricsConfig(c *gometrics.Config) *gometrics.Config {
	c.EnableHostname = false
	c.EnableHostnameLabel = false
	c.EnableRuntimeMetrics = false
	return c
}
