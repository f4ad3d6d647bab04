//go:build hashicorpmetrics

package wal

// This file and its twin send the package's metrics to the same go-metrics
// package as the root raft package: github.com/armon/go-metrics by default,
// github.com/hashicorp/go-metrics with the hashicorpmetrics build tag.

import (
	"time"

	gometrics "github.com/hashicorp/go-metrics"
)

func incrCounter(key []string, val float32) { gometrics.IncrCounter(key, val) }

func measureSince(key []string, start time.Time) { gometrics.MeasureSince(key, start) }
