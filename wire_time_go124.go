//go:build go1.24

package raft

import "time"

// appendMarshalBinary appends t.MarshalBinary's bytes to buf without an
// allocation.
func appendMarshalBinary(buf []byte, t time.Time) ([]byte, error) {
	return t.AppendBinary(buf)
}
