package raft

import "time"

// appendMarshalBinaryCopy appends t.MarshalBinary's bytes to buf through a
// copy: appendMarshalBinary before Go 1.24, which has no
// time.Time.AppendBinary. The module's go line (1.23) still allows such a
// toolchain; wire_time_go124.go and wire_time_go123.go pick the version.
func appendMarshalBinaryCopy(buf []byte, t time.Time) ([]byte, error) {
	data, err := t.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return append(buf, data...), nil
}
