//go:build !go1.24

package raft

import "time"

// appendMarshalBinary appends t.MarshalBinary's bytes to buf; Go 1.23 has
// no time.Time.AppendBinary, so this costs an allocation per entry there.
func appendMarshalBinary(buf []byte, t time.Time) ([]byte, error) {
	return appendMarshalBinaryCopy(buf, t)
}
