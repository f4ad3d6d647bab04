package raft

import (
	"github.com/hashicorp/go-msgpack/v2/codec"
)

// newMsgpackHandle returns the msgpack handle of the wire and of
// LogConfiguration payloads (docs/WIRE.md §4): maps with sorted field names,
// legacy raw strings, and time.Time as its MarshalBinary bytes unless
// useNewTimeFormat is set. Decoding accepts both time formats.
func newMsgpackHandle(useNewTimeFormat bool) *codec.MsgpackHandle {
	return &codec.MsgpackHandle{
		BasicHandle: codec.BasicHandle{
			TimeNotBuiltin: !useNewTimeFormat,
		},
	}
}
