package raft

// readRounds queues a leader's ReadIndex calls for the leadership checks
// that confirm them. Until an entry of the leader's term has committed, the
// commit index may lag behind what earlier leaders committed (dissertation
// §6.4), so reads wait for that first commit. After it, one check is out at
// a time: reads that come while one is out go together in the next, so
// under load every check confirms a whole batch. It holds no lock and
// starts nothing: the leader loop asks it what to do and does it.
type readRounds struct {
	// startIndex is the first index of the leader's term.
	startIndex uint64
	// pending wait for the first commit of the term.
	pending []*readIndexFuture
	// out is the check in progress, if any; next wait for it to finish.
	out  *verifyFuture
	next []*readIndexFuture
}

// admit returns the reads that may take the commit index as their read
// index now. Before the term's first commit it keeps them all and returns
// none; release gives them back.
func (q *readRounds) admit(reads []*readIndexFuture, commitIndex uint64) []*readIndexFuture {
	if commitIndex < q.startIndex {
		q.pending = append(q.pending, reads...)
		return nil
	}
	return reads
}

// release returns the reads that waited for the term's first commit, once
// commitIndex has reached it.
func (q *readRounds) release(commitIndex uint64) []*readIndexFuture {
	if len(q.pending) == 0 || commitIndex < q.startIndex {
		return nil
	}
	reads := q.pending
	q.pending = nil
	return reads
}

// join reports whether reads may start a check now. If one is out, they
// wait for the next and join returns false.
func (q *readRounds) join(reads []*readIndexFuture) bool {
	if q.out != nil {
		q.next = append(q.next, reads...)
		return false
	}
	return true
}

// started records v as the check out.
func (q *readRounds) started(v *verifyFuture) { q.out = v }

// finished reports whether v was the check out, which then no longer is.
func (q *readRounds) finished(v *verifyFuture) bool {
	if q.out == nil || q.out != v {
		return false
	}
	q.out = nil
	return true
}

// takeNext returns the reads that waited for the check to finish.
func (q *readRounds) takeNext() []*readIndexFuture {
	reads := q.next
	q.next = nil
	return reads
}

// drain returns every read still queued, when leadership ends.
func (q *readRounds) drain() []*readIndexFuture {
	reads := append(q.pending, q.next...)
	q.pending, q.next = nil, nil
	return reads
}
