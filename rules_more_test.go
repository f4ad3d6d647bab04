//go:build go1.25

package raft

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// Rule tests that need a running leader, in virtual time: the receiver
// tests of rules_test.go cannot drive a heartbeat round.

// A leadership check (VerifyLeader, or the round that confirms a ReadIndex)
// counts only heartbeat answers that accept the leader's term: a quorum of
// refusals fails the check instead of confirming it.
func TestLeadershipCheckRefusedByAQuorumIsNotConfirmed(t *testing.T) {
	checks := []struct {
		name    string
		check   func(r *Raft) error
		refused error
	}{
		{"VerifyLeader", func(r *Raft) error { return r.VerifyLeader().Error() }, ErrNotLeader},
		{"ReadIndex", func(r *Raft) error { return r.ReadIndex(time.Second).Error() }, ErrLeadershipLost},
	}
	for _, tc := range checks {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newTestCluster(t, 3, clusterOptions{})
				defer c.close()
				leader := c.leader()
				require.NoError(t, leader.raft.Barrier(time.Second).Error(), "the term's first commit")
				require.NoError(t, tc.check(leader.raft), "a check the followers accept is confirmed")

				// Both followers now refuse every AppendEntries of the
				// leader's term, heartbeats included.
				leader.trans.setInterceptor(func(_, _ ServerAddress, req interface{}) inmemVerdict {
					if a, ok := req.(*AppendEntriesRequest); ok {
						return inmemVerdict{respond: &AppendEntriesResponse{Term: a.Term, Success: false}}
					}
					return inmemVerdict{}
				})
				require.ErrorIs(t, tc.check(leader.raft), tc.refused, "a check a quorum refused must not be confirmed")
			})
		})
	}
}
