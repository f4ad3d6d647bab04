// Package rafttest is a kit for testing applications built on
// github.com/quorumkit/raft, and the harness of the library's own chaos
// suite: in-memory clusters, fault injection, crash and restart with lost
// writes, and linearizability checking with porcupine.
//
// # A cluster
//
// NewCluster starts bootstrapped voters (and optional nonvoters) on
// in-memory transports, each running the FSM your factory returns, on
// in-memory stores or on wal stores in t.TempDir(); Close runs on test
// cleanup.
//
//	func TestMyFSM(t *testing.T) {
//		synctest.Test(t, func(t *testing.T) {
//			c := rafttest.NewCluster(t, rafttest.Options{
//				Voters: 3,
//				FSM:    func(raft.ServerID) raft.FSM { return newMyFSM() },
//			})
//			f, err := c.Apply([]byte("set x 1"), time.Second) // follows the leader
//			require.NoError(t, err)
//			c.WaitForApplied(f.Index())
//			c.CheckConsistent() // every replica holds the same state
//		})
//	}
//
// Run it inside a testing/synctest bubble and it runs on virtual time: an
// election or a ten-second partition costs microseconds of wall time and
// timing never flakes. Everything must be created inside the bubble, and
// every goroutine of the cluster exits on Close, before the bubble ends.
// The kit also works outside a bubble, in real time.
//
// # Faults
//
// Partition, Isolate, CutLink and Heal cut and restore links; SetLinkFault
// and SetAllLinkFaults make links lose (request or answer) and delay
// messages. Crash stops a node as a power loss would and Restart brings it
// back from the same stores with a fresh FSM. With Options.SyncDelay, every
// store write takes time to reach the disk, and a crash in that window
// loses it (CrashableStore documents the model), so tests exercise what a
// node forgets when it loses power. AddNode, AddVoter, AddNonvoter,
// DemoteVoter, RemoveServer and TransferLeadership change the cluster
// through whichever node leads.
//
// # Linearizability
//
// A History records the operations of concurrent clients (Client.Do) and
// CheckLinearizable checks them with porcupine against a model. KV and
// KVModel are a ready key-value store (get, put, append, compare-and-swap)
// and its model, and KVClient records KV operations. An operation whose
// outcome the client never learned (a timeout, lost leadership, a shutdown)
// is recorded as Unknown: it may have happened at any time after its call,
// or never. A get that fails is left out (Client.Read): it had no effect.
// Options.ReadMode (or KVClient.ReadMode) picks how gets are served:
// through the log (ReadLog), through (*raft.Raft).ReadIndex on the leader
// and a read of its local KV (ReadIndex), or the same with the nodes'
// lease reads on (ReadLease); KVClient.ReadFrom pins gets to one node, to
// read from a deposed leader; Options.ClockDrift makes nodes' clocks run
// fast or slow, to check lease reads within and beyond the drift they
// allow (SafeClockDrift). Errors for which NotApplied is true (the command never entered
// a log) are retried by Cluster.Apply and left out of the history. For your
// own model, make Step accept Unknown as an output. When a check fails,
// the porcupine visualization is written under os.TempDir() and its path
// printed.
//
// # Seeds
//
// Every random choice of the kit (lost messages, delays, what a crash
// keeps) is drawn from the cluster's seed, printed when the test fails;
// -rafttest.seed=N runs with that seed again. Goroutine scheduling is not
// under the kit's control, so a replay repeats the same faults, not
// necessarily the same interleaving; inside a synctest bubble the two are
// usually close enough to reproduce a failure. -rafttest.log=debug turns on
// the nodes' logs.
package rafttest
