//go:build hashicorpmetrics

package raft

// This file and its twin route the package's metrics to one go-metrics
// package, chosen at build time: github.com/armon/go-metrics by default,
// github.com/hashicorp/go-metrics with the hashicorpmetrics tag. The rest of
// the package calls only these functions.

import (
	"time"

	gometrics "github.com/hashicorp/go-metrics"
)

// metricLabel is a name/value pair attached to a metric.
type metricLabel = gometrics.Label

func incrCounter(key []string, val float32, labels ...metricLabel) {
	gometrics.IncrCounterWithLabels(key, val, labels)
}

func measureSince(key []string, start time.Time, labels ...metricLabel) {
	gometrics.MeasureSinceWithLabels(key, start, labels)
}

func setGauge(key []string, val float32, labels ...metricLabel) {
	gometrics.SetGaugeWithLabels(key, val, labels)
}

func addSample(key []string, val float32, labels ...metricLabel) {
	gometrics.AddSampleWithLabels(key, val, labels)
}
