package raft_test

import (
	"testing"

	"github.com/quorumkit/raft"
	"github.com/quorumkit/raft/rafttest/storetest"
)

func TestInmemStoreLogStoreContract(t *testing.T) {
	storetest.TestLogStore(t, func(t *testing.T) raft.LogStore { return raft.NewInmemStore() })
}

func TestInmemStoreStableStoreContract(t *testing.T) {
	storetest.TestStableStore(t, func(t *testing.T) raft.StableStore { return raft.NewInmemStore() })
}
