// Package raft lets this repository build its bench package, which imports
// the root package by the path an application knows it by: an application
// switches from hashicorp/raft with
//
//	replace github.com/hashicorp/raft => github.com/quorumkit/raft ...
//
// and from then on its store tests import github.com/hashicorp/raft/bench,
// which is our bench directory, and that package must name the root
// package as github.com/hashicorp/raft to hand them its LogStore type.
//
// Inside this repository nothing answers to that path, so the go.mod of
// the repository replaces it with this directory, a module of its own that
// only aliases the root package's names that bench and its tests use.
// Applications never see it: a dependency's replace lines do not apply to
// them, and their own replace points github.com/hashicorp/raft at the root.
package raft

import quorumkit "github.com/quorumkit/raft"

type (
	// Log is the root package's Log.
	Log = quorumkit.Log
	// LogType is the root package's LogType.
	LogType = quorumkit.LogType
	// LogStore is the root package's LogStore.
	LogStore = quorumkit.LogStore
	// StableStore is the root package's StableStore.
	StableStore = quorumkit.StableStore
	// InmemStore is the root package's InmemStore.
	InmemStore = quorumkit.InmemStore
)

// LogCommand is the root package's LogCommand.
const LogCommand = quorumkit.LogCommand

// ErrLogNotFound is the root package's ErrLogNotFound.
var ErrLogNotFound = quorumkit.ErrLogNotFound

// NewInmemStore returns the root package's InmemStore.
func NewInmemStore() *InmemStore { return quorumkit.NewInmemStore() }
