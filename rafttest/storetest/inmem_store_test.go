//go:build go1.25

package storetest_test

import (
	"testing"

	"github.com/quorumkit/raft"
	"github.com/quorumkit/raft/rafttest/storetest"
)

// The contract runs against the root package's InmemStore from here, not
// from the root's own tests: the root package and its tests import no
// other package of this module, so that an application that knows the
// module as github.com/hashicorp/raft (through a replace) never meets an
// import path of ours it cannot resolve.

func TestInmemStoreLogStoreContract(t *testing.T) {
	storetest.TestLogStore(t, func(t *testing.T) raft.LogStore { return raft.NewInmemStore() })
}

func TestInmemStoreStableStoreContract(t *testing.T) {
	storetest.TestStableStore(t, func(t *testing.T) raft.StableStore { return raft.NewInmemStore() })
}
