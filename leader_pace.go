package raft

import "time"

// Pacing the leader's own log writes (docs/ARCHITECTURE.md, "The Apply
// path"). The leader writes its new entries beside replication, and its
// copy is one vote among the voters'. A leader that started a write the
// moment each small batch arrived would fsync several times for every
// write of its followers, who receive whole batches per AppendEntries, and
// those extra fsyncs commit nothing sooner: while the previous write is
// not yet committed, the followers are the ones the commit waits for. So a
// leader starts its next write only once its previous write is committed,
// gathering what arrives meanwhile into that next write, or after
// paceLimit if the commit is slow in coming.
//
// When the leader's copy is the one a commit waits for (a follower is down,
// or its disk is faster than the leader's), its write itself commits the
// batch, and the next write starts at once: pacing then holds nothing. When
// it waits, it waits for an acknowledgment from a follower that is itself
// writing the same batches one after the other, so the delay is about half
// a round trip. Durability is untouched: the leader counts itself toward a
// commit only once its own write is on disk (commitment.match from the
// durable callback), and an entry is acknowledged only once a quorum holds
// it durably.

// paceLimit bounds how long a leader write waits for the previous one to
// commit, so that a leader whose followers are slow or gone keeps writing.
const paceLimit = 5 * time.Millisecond

// leaderPacer is what one term's leader appends are paced by: the term's
// commitment, where the leader's own durable writes are its match index.
// A leader that is not a voter of the latest configuration (removing
// itself) has none there, and is not paced.
type leaderPacer struct {
	commitment *commitment
	self       ServerID
}

// pace holds a leader write w until the previous write of the same term is
// committed, joining to it the leader appends of that term that arrive
// meanwhile. Any other command ends the wait at once and is returned, to
// run after the write; ok is false if the node shut down.
func (l *raftLog) pace(p *leaderPacer, w *leaderWrite) (next *logCommand, ok bool) {
	var timeout <-chan time.Time
	for {
		committed, moved := p.commitment.ownWritesCommitted(p.self)
		if committed {
			return nil, true
		}
		if timeout == nil {
			t := time.NewTimer(paceLimit)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case more := <-l.cmds:
			if !w.join(more) {
				return more, true
			}
		case <-moved:
		case <-timeout:
			return nil, true
		case <-l.shutdownCh:
			return nil, false
		}
	}
}
