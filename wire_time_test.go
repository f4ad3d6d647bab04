//go:build go1.25

package raft

import (
	"bytes"
	"testing"
	"time"
)

// TestAppendMarshalBinaryMatchesMarshalBinary checks both versions of the
// legacy AppendedAt encoding, the one this toolchain builds and the one a
// Go 1.23 toolchain builds, against time.Time.MarshalBinary.
func TestAppendMarshalBinaryMatchesMarshalBinary(t *testing.T) {
	times := []time.Time{
		{},
		time.Date(2025, 3, 4, 5, 6, 7, 891011121, time.UTC),
		time.Date(2025, 3, 4, 5, 6, 7, 8, time.FixedZone("plus-two", 2*3600)),
		time.Date(1890, 1, 1, 0, 0, 0, 0, time.FixedZone("seconds-offset", 3600+30)),
	}
	prefix := []byte{0xa0, 0x01}
	for _, at := range times {
		want, err := at.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		want = append(append([]byte(nil), prefix...), want...)
		for name, appendFn := range map[string]func([]byte, time.Time) ([]byte, error){
			"appendMarshalBinary":     appendMarshalBinary,
			"appendMarshalBinaryCopy": appendMarshalBinaryCopy,
		} {
			got, err := appendFn(append([]byte(nil), prefix...), at)
			if err != nil {
				t.Fatalf("%s(%v): %v", name, at, err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s(%v) = %x, want %x", name, at, got, want)
			}
		}
	}
}
