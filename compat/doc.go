// Package compat holds the interoperation tests between quorumkit/raft and
// hashicorp/raft. It is a separate module so that the main module never
// depends on hashicorp/raft: mixed clusters of both libraries' nodes talk
// over real TCP on 127.0.0.1 and must elect, replicate, transfer
// leadership, change membership and install snapshots in both directions.
//
// Run the tests with:
//
//	cd compat && go test ./...
package compat
