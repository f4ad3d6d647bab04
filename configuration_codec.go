package raft

import (
	"errors"
	"fmt"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// configurationHandle encodes and decodes LogConfiguration payloads and the
// legacy peers lists (docs/WIRE.md §10). A handle caches per-type metadata and is
// safe for concurrent use once built, so one is shared; nothing changes its
// settings after this declaration.
var configurationHandle = func() *codec.MsgpackHandle {
	handle := newMsgpackHandle(false)
	// The decoder sizes a slice from the length the input declares, up to
	// this many elements, and grows it by appending beyond that. A hostile
	// length then costs a few KiB instead of the codec's default 256 KiB,
	// while a real configuration (a handful of servers) is unaffected.
	handle.MaxInitLen = configurationMaxInitLen
	return handle
}()

// configurationMaxInitLen bounds the capacity the decoder gives a slice
// before it has read the elements.
const configurationMaxInitLen = 64

// EncodeConfiguration serialises a Configuration for a LogConfiguration
// entry: a msgpack map {"Servers": [...]} whose servers are maps with the
// sorted keys "Address", "ID" and "Suffrage", strings in the legacy raw
// format. A Configuration with nil Servers encodes Servers as msgpack nil.
// It panics if encoding fails, which cannot happen for a Configuration.
func EncodeConfiguration(configuration Configuration) []byte {
	var buf []byte
	if err := codec.NewEncoderBytes(&buf, configurationHandle).Encode(configuration); err != nil {
		panic(fmt.Errorf("raft: encode configuration: %w", err))
	}
	return buf
}

// DecodeConfiguration is the inverse of EncodeConfiguration. It panics on
// malformed input; code that reads bytes from a disk or a peer should use
// decodeConfiguration, which returns an error instead.
func DecodeConfiguration(buf []byte) Configuration {
	configuration, err := decodeConfiguration(buf)
	if err != nil {
		panic(err)
	}
	return configuration
}

// decodeConfiguration decodes a LogConfiguration payload from untrusted bytes.
// It fails on anything that is not exactly one msgpack value of the expected
// shape: garbage, truncated input, trailing bytes, or a server whose suffrage
// is none of Voter, Nonvoter and Staging. Memory use is bounded by the input
// length, whatever lengths the input declares, because the decoder caps the
// initial size of every collection it makes.
//
// Like the go-msgpack decoder hashicorp/raft uses, it reads a msgpack map
// where an array is expected as its keys and values in turn, and an array of
// small integers where a string is expected as those bytes; a conforming
// encoder never writes either, and nothing in the input is dropped.
//
// It does not run checkConfiguration: the bytes are what a leader wrote, and
// judging whether they form a usable cluster is the caller's business.
func decodeConfiguration(buf []byte) (Configuration, error) {
	var configuration Configuration
	if err := decodeExactly(buf, &configuration); err != nil {
		return Configuration{}, fmt.Errorf("raft: decode configuration: %w", err)
	}
	for i, server := range configuration.Servers {
		switch server.Suffrage {
		case Voter, Nonvoter, Staging:
		default:
			// Treating an unknown suffrage as a nonvoter would silently
			// change who counts towards a quorum.
			return Configuration{}, fmt.Errorf("raft: decode configuration: server %d (%q) has unknown suffrage %d",
				i, server.ID, int(server.Suffrage))
		}
	}
	return configuration, nil
}

// encodePeers serialises the Voters of a configuration in the legacy peers
// format of protocol versions below 3 (docs/WIRE.md §10): a msgpack array of raw
// strings, each the transport's EncodePeer of one Voter. Nonvoters and
// Staging servers are left out, as old peers knew only voters. With no
// Voters the array is msgpack nil.
func encodePeers(configuration Configuration, trans Transport) []byte {
	var peers [][]byte
	for _, server := range configuration.Servers {
		if server.Suffrage == Voter {
			peers = append(peers, trans.EncodePeer(server.ID, server.Address))
		}
	}
	var buf []byte
	if err := codec.NewEncoderBytes(&buf, configurationHandle).Encode(peers); err != nil {
		// A [][]byte always encodes; reaching this is a bug in the codec.
		panic(fmt.Errorf("raft: encode peers: %w", err))
	}
	return buf
}

// decodePeers reads the legacy peers format back into a Configuration. Old
// peers had no server IDs, so every server is a Voter whose ID is its
// address as the transport decodes it.
func decodePeers(buf []byte, trans Transport) (Configuration, error) {
	var peers [][]byte
	if err := decodeExactly(buf, &peers); err != nil {
		return Configuration{}, fmt.Errorf("raft: decode peers: %w", err)
	}
	var configuration Configuration
	for _, peer := range peers {
		address := trans.DecodePeer(peer)
		configuration.Servers = append(configuration.Servers, Server{
			Suffrage: Voter,
			ID:       ServerID(address),
			Address:  address,
		})
	}
	return configuration, nil
}

// decodeExactly decodes one msgpack value from buf into out and fails unless
// that value spans all of buf, so that a payload with bytes appended to it is
// reported rather than half read.
func decodeExactly(buf []byte, out any) error {
	if len(buf) == 0 {
		return errors.New("empty input")
	}
	decoder := codec.NewDecoderBytes(buf, configurationHandle)
	if err := decoder.Decode(out); err != nil {
		return err
	}
	if read := decoder.NumBytesRead(); read != len(buf) {
		return fmt.Errorf("%d trailing bytes after a %d-byte value", len(buf)-read, read)
	}
	return nil
}
