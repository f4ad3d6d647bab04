//go:build go1.25

package raft

import (
	"bytes"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// msgpackRaw returns s in msgpack's legacy raw string format (fixraw below 32
// bytes, raw16 up to 65535), the only string format the spec lets us emit.
func msgpackRaw(s string) []byte {
	if len(s) < 32 {
		return append([]byte{0xa0 | byte(len(s))}, s...)
	}
	return append([]byte{0xda, byte(len(s) >> 8), byte(len(s))}, s...)
}

// msgpackServer returns the expected encoding of one Server: a fixmap of three
// entries with keys in byte order and a small suffrage as a positive fixint.
func msgpackServer(address, id string, suffrage byte) []byte {
	out := []byte{0x83}
	out = append(out, msgpackRaw("Address")...)
	out = append(out, msgpackRaw(address)...)
	out = append(out, msgpackRaw("ID")...)
	out = append(out, msgpackRaw(id)...)
	out = append(out, msgpackRaw("Suffrage")...)
	return append(out, suffrage)
}

// exampleConfigurationBytes is the EncodeConfiguration example of docs/WIRE.md §10,
// written out byte by byte.
func exampleConfigurationBytes() []byte {
	out := []byte{0x81, 0xa7, 'S', 'e', 'r', 'v', 'e', 'r', 's', 0x92,
		0x83,
		0xa7, 'A', 'd', 'd', 'r', 'e', 's', 's', 0xae, '1', '2', '7', '.', '0', '.', '0', '.', '1', ':', '7', '0', '0', '0',
		0xa2, 'I', 'D', 0xa2, 'n', '1',
		0xa8, 'S', 'u', 'f', 'f', 'r', 'a', 'g', 'e', 0x00,
		0x83,
		0xa7, 'A', 'd', 'd', 'r', 'e', 's', 's', 0xae, '1', '2', '7', '.', '0', '.', '0', '.', '1', ':', '7', '0', '0', '1',
		0xa2, 'I', 'D', 0xa2, 'n', '2',
		0xa8, 'S', 'u', 'f', 'f', 'r', 'a', 'g', 'e', 0x01,
	}
	return out
}

func exampleConfiguration() Configuration {
	return Configuration{Servers: []Server{
		{Suffrage: Voter, ID: "n1", Address: "127.0.0.1:7000"},
		{Suffrage: Nonvoter, ID: "n2", Address: "127.0.0.1:7001"},
	}}
}

func TestEncodeConfigurationMatchesGoldenBytes(t *testing.T) {
	longAddress := strings.Repeat("a", 40) + ".example.com:7000" // 57 bytes: raw16, never str8
	serversPrefix := append([]byte{0x81}, msgpackRaw("Servers")...)

	cases := []struct {
		name          string
		configuration Configuration
		want          []byte
	}{
		{
			name:          "the example of WIRE §10 in docs",
			configuration: exampleConfiguration(),
			want:          exampleConfigurationBytes(),
		},
		{
			name:          "nil servers encode as msgpack nil",
			configuration: Configuration{},
			want:          append(bytes.Clone(serversPrefix), 0xc0),
		},
		{
			name:          "empty non-nil servers encode as an empty array",
			configuration: Configuration{Servers: []Server{}},
			want:          append(bytes.Clone(serversPrefix), 0x90),
		},
		{
			name: "staging suffrage and a long address in raw16",
			configuration: Configuration{Servers: []Server{
				{Suffrage: Staging, ID: "s", Address: ServerAddress(longAddress)},
			}},
			want: append(append(bytes.Clone(serversPrefix), 0x91), msgpackServer(longAddress, "s", 0x02)...),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := EncodeConfiguration(tc.configuration)
			require.Equal(t, tc.want, got, "encoding of %+v:\nwant % x\ngot  % x", tc.configuration, tc.want, got)
		})
	}
}

func TestEncodeConfigurationNeverEmitsNewStringFormats(t *testing.T) {
	// str8 (0xd9) and bin (0xc4-0xc6) would be unreadable by peers still on
	// go-msgpack v0.5.5; every length class of string must use the raw family.
	for _, length := range []int{0, 1, 31, 32, 255, 256, 65535, 65536} {
		address := ServerAddress(strings.Repeat("x", length))
		encoded := EncodeConfiguration(Configuration{Servers: []Server{{ID: "n1", Address: address}}})
		keyAt := bytes.Index(encoded, msgpackRaw("Address"))
		require.GreaterOrEqual(t, keyAt, 0)
		marker := encoded[keyAt+len("Address")+1]
		switch {
		case length < 32:
			require.Equal(t, byte(0xa0|length), marker, "length %d", length)
		case length <= 65535:
			require.Equal(t, byte(0xda), marker, "length %d", length)
		default:
			require.Equal(t, byte(0xdb), marker, "length %d", length)
		}
		require.Equal(t, address, DecodeConfiguration(encoded).Servers[0].Address, "length %d", length)
	}
}

func TestDecodeConfigurationReadsGoldenBytes(t *testing.T) {
	require.Equal(t, exampleConfiguration(), DecodeConfiguration(exampleConfigurationBytes()))
}

func TestConfigurationRoundTrips(t *testing.T) {
	cases := []Configuration{
		{},
		exampleConfiguration(),
		{Servers: []Server{
			{Suffrage: Voter, ID: "a", Address: "10.0.0.1:8300"},
			{Suffrage: Staging, ID: "b", Address: "10.0.0.2:8300"},
			{Suffrage: Nonvoter, ID: "ünïcode", Address: "[::1]:8300"},
		}},
	}
	for _, configuration := range cases {
		decoded, err := decodeConfiguration(EncodeConfiguration(configuration))
		require.NoError(t, err)
		require.Equal(t, configuration, decoded)
	}
}

func TestDecodeConfigurationAcceptsNewStringFormats(t *testing.T) {
	// A peer on a newer codec may send str8 or bin; reading them costs
	// nothing and keeps mixed clusters working.
	buf := []byte{0x81, 0xd9, 7, 'S', 'e', 'r', 'v', 'e', 'r', 's', 0x91,
		0x83,
		0xc4, 7, 'A', 'd', 'd', 'r', 'e', 's', 's', 0xc4, 1, 'x',
		0xd9, 2, 'I', 'D', 0xd9, 1, 'y',
		0xa8, 'S', 'u', 'f', 'f', 'r', 'a', 'g', 'e', 0x01,
	}
	configuration, err := decodeConfiguration(buf)
	require.NoError(t, err)
	require.Equal(t, Configuration{Servers: []Server{{Suffrage: Nonvoter, ID: "y", Address: "x"}}}, configuration)
}

func TestDecodeConfigurationSkipsUnknownKeys(t *testing.T) {
	buf := append([]byte{0x82}, msgpackRaw("Extra")...)
	buf = append(buf, 0x2a)
	buf = append(buf, msgpackRaw("Servers")...)
	buf = append(buf, 0x91)
	buf = append(buf, msgpackServer("addr", "id", 0)...)
	configuration, err := decodeConfiguration(buf)
	require.NoError(t, err)
	require.Equal(t, Configuration{Servers: []Server{{Suffrage: Voter, ID: "id", Address: "addr"}}}, configuration)
}

func TestDecodeConfigurationRejectsMalformedInput(t *testing.T) {
	golden := exampleConfigurationBytes()
	serversPrefix := append([]byte{0x81}, msgpackRaw("Servers")...)
	withSuffrage := func(suffrage []byte) []byte {
		out := append(bytes.Clone(serversPrefix), 0x91, 0x83)
		out = append(out, msgpackRaw("Address")...)
		out = append(out, msgpackRaw("a")...)
		out = append(out, msgpackRaw("ID")...)
		out = append(out, msgpackRaw("i")...)
		out = append(out, msgpackRaw("Suffrage")...)
		return append(out, suffrage...)
	}

	cases := []struct {
		name    string
		buf     []byte
		wantErr string
	}{
		{"nil input", nil, "empty input"},
		{"empty input", []byte{}, "empty input"},
		{"reserved byte", []byte{0xc1}, ""},
		{"integer instead of map", []byte{0x2a}, ""},
		{"servers is a string", append(bytes.Clone(serversPrefix), msgpackRaw("x")...), ""},
		{"server is an integer", append(bytes.Clone(serversPrefix), 0x91, 0x07), ""},
		{"trailing byte", append(bytes.Clone(golden), 0x00), "1 trailing bytes"},
		{"two configurations back to back", append(bytes.Clone(golden), golden...), "trailing bytes"},
		{"array32 claiming 4 billion servers", append(bytes.Clone(serversPrefix), 0xdd, 0xff, 0xff, 0xff, 0xff), ""},
		{"map32 claiming 4 billion keys", []byte{0xdf, 0xff, 0xff, 0xff, 0xff}, ""},
		{"raw32 claiming 4 GiB", append(bytes.Clone(serversPrefix), 0x91, 0x81, 0xdb, 0xff, 0xff, 0xff, 0xff), ""},
		{"unknown suffrage", withSuffrage([]byte{0x03}), "unknown suffrage 3"},
		{"negative suffrage", withSuffrage([]byte{0xff}), "unknown suffrage -1"},
		{"huge suffrage", withSuffrage([]byte{0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			configuration, err := decodeConfiguration(tc.buf)
			require.Error(t, err, "decoded % x as %+v", tc.buf, configuration)
			require.Contains(t, err.Error(), "raft: decode configuration: ")
			require.Contains(t, err.Error(), tc.wantErr)
			require.Equal(t, Configuration{}, configuration)
			require.Panics(t, func() { DecodeConfiguration(tc.buf) })
		})
	}

	// Every strict prefix of a valid encoding is truncated input.
	for length := range len(golden) {
		_, err := decodeConfiguration(golden[:length])
		require.Error(t, err, "prefix of %d bytes", length)
	}
}

func TestDecodeConfigurationMemoryIsBoundedForAbsurdLengths(t *testing.T) {
	inputs := map[string][]byte{
		"array32 of servers": append(append([]byte{0x81}, msgpackRaw("Servers")...), 0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0),
		"raw32 address":      append(append([]byte{0x81}, msgpackRaw("Servers")...), 0x91, 0x81, 0xa7, 'A', 'd', 'd', 'r', 'e', 's', 's', 0xdb, 0xff, 0xff, 0xff, 0xff, 'x'),
		"array32 of peers":   {0xdd, 0xff, 0xff, 0xff, 0xff, 0xa1, 'x'},
		"raw32 peer":         {0x91, 0xdb, 0x7f, 0xff, 0xff, 0xff, 'x'},
	}
	// The inputs claim gigabytes; initial capacity is capped at
	// configurationMaxInitLen elements, so a few tens of KiB is plenty.
	const limit = 64 << 10
	for name, buf := range inputs {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, configurationErr := decodeConfiguration(buf)
			_, peersErr := decodePeers(buf, confCodecTransport{})
			runtime.ReadMemStats(&after)
			require.Error(t, configurationErr)
			require.Error(t, peersErr)
			allocated := after.TotalAlloc - before.TotalAlloc
			require.Less(t, allocated, uint64(limit), "decoding %d bytes allocated %d bytes", len(buf), allocated)
		})
	}
}

// confCodecTransport is a Transport that only knows how to encode and decode
// peers; any other method panics through the nil embedded interface, which
// would show that the code under test used more of the transport than it
// should. It writes "id@address" so tests can see that encodePeers goes
// through the transport and that decodePeers takes only the address back.
type confCodecTransport struct {
	Transport
}

func (confCodecTransport) EncodePeer(id ServerID, addr ServerAddress) []byte {
	return []byte(string(id) + "@" + string(addr))
}

func (confCodecTransport) DecodePeer(buf []byte) ServerAddress {
	_, address, _ := strings.Cut(string(buf), "@")
	return ServerAddress(address)
}

func TestEncodePeersWritesVotersThroughTheTransport(t *testing.T) {
	cases := []struct {
		name          string
		configuration Configuration
		want          []byte
	}{
		{
			name:          "no servers",
			configuration: Configuration{},
			want:          []byte{0xc0},
		},
		{
			name: "no voters",
			configuration: Configuration{Servers: []Server{
				{Suffrage: Nonvoter, ID: "b", Address: "2"},
				{Suffrage: Staging, ID: "c", Address: "3"},
			}},
			want: []byte{0xc0},
		},
		{
			name: "voters only, in order",
			configuration: Configuration{Servers: []Server{
				{Suffrage: Voter, ID: "a", Address: "1"},
				{Suffrage: Nonvoter, ID: "b", Address: "2"},
				{Suffrage: Staging, ID: "c", Address: "3"},
				{Suffrage: Voter, ID: "d", Address: "4"},
			}},
			want: []byte{0x92, 0xa3, 'a', '@', '1', 0xa3, 'd', '@', '4'},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, encodePeers(tc.configuration, confCodecTransport{}))
		})
	}
}

func TestDecodePeersMakesEveryPeerAVoterNamedByAddress(t *testing.T) {
	cases := []struct {
		name string
		buf  []byte
		want Configuration
	}{
		{"nil", []byte{0xc0}, Configuration{}},
		{"empty array", []byte{0x90}, Configuration{}},
		{
			name: "two peers",
			buf:  []byte{0x92, 0xa3, 'a', '@', '1', 0xa3, 'd', '@', '4'},
			want: Configuration{Servers: []Server{
				{Suffrage: Voter, ID: "1", Address: "1"},
				{Suffrage: Voter, ID: "4", Address: "4"},
			}},
		},
		{
			name: "str8 and bin from a newer codec",
			buf:  []byte{0x92, 0xd9, 3, 'a', '@', '1', 0xc4, 3, 'd', '@', '4'},
			want: Configuration{Servers: []Server{
				{Suffrage: Voter, ID: "1", Address: "1"},
				{Suffrage: Voter, ID: "4", Address: "4"},
			}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			configuration, err := decodePeers(tc.buf, confCodecTransport{})
			require.NoError(t, err)
			require.Equal(t, tc.want, configuration)
		})
	}
}

func TestDecodePeersRejectsMalformedInput(t *testing.T) {
	cases := []struct {
		name string
		buf  []byte
	}{
		{"empty", nil},
		{"reserved byte", []byte{0xc1}},
		{"integer instead of array", []byte{0x07}},
		{"string instead of array", []byte{0xa1, 'a'}},
		{"truncated", []byte{0x92, 0xa3, 'a', '@', '1', 0xa3, 'd'}},
		{"trailing bytes", []byte{0x91, 0xa1, 'a', 0x00}},
		{"element is an integer", []byte{0x91, 0x07}},
		{"element is a bool", []byte{0x91, 0xc3}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			configuration, err := decodePeers(tc.buf, confCodecTransport{})
			require.ErrorContains(t, err, "raft: decode peers: ")
			require.Equal(t, Configuration{}, configuration)
		})
	}
}

func TestPeersRoundTripKeepsVoterAddresses(t *testing.T) {
	configuration := Configuration{Servers: []Server{
		{Suffrage: Voter, ID: "a", Address: "10.0.0.1:8300"},
		{Suffrage: Nonvoter, ID: "b", Address: "10.0.0.2:8300"},
		{Suffrage: Voter, ID: "c", Address: "10.0.0.3:8300"},
	}}
	decoded, err := decodePeers(encodePeers(configuration, confCodecTransport{}), confCodecTransport{})
	require.NoError(t, err)
	require.Equal(t, Configuration{Servers: []Server{
		{Suffrage: Voter, ID: "10.0.0.1:8300", Address: "10.0.0.1:8300"},
		{Suffrage: Voter, ID: "10.0.0.3:8300", Address: "10.0.0.3:8300"},
	}}, decoded)
}

// sameServers compares server lists, treating nil and empty as equal since
// msgpack nil and an empty array both mean "no servers".
func sameServers(a, b []Server) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func FuzzDecodeConfiguration(f *testing.F) {
	f.Add(exampleConfigurationBytes())
	f.Add(EncodeConfiguration(Configuration{}))
	f.Add(EncodeConfiguration(Configuration{Servers: []Server{{Suffrage: Staging, ID: "s", Address: "a"}}}))
	f.Fuzz(func(t *testing.T, buf []byte) {
		configuration, err := decodeConfiguration(buf)
		if err != nil {
			require.Equal(t, Configuration{}, configuration, "a failed decode must not return a partial configuration")
			return
		}
		// Whatever decodes must survive a round trip unchanged, or a
		// configuration would drift as it is copied from log to snapshot.
		reencoded := EncodeConfiguration(configuration)
		again, err := decodeConfiguration(reencoded)
		require.NoError(t, err, "re-decoding % x", reencoded)
		require.True(t, sameServers(configuration.Servers, again.Servers),
			"round trip changed %+v into %+v", configuration, again)
	})
}

func FuzzDecodePeers(f *testing.F) {
	f.Add([]byte{0x92, 0xa3, 'a', '@', '1', 0xa3, 'd', '@', '4'})
	f.Add([]byte{0xc0})
	f.Fuzz(func(t *testing.T, buf []byte) {
		configuration, err := decodePeers(buf, confCodecTransport{})
		if err != nil {
			require.Equal(t, Configuration{}, configuration)
			return
		}
		for _, server := range configuration.Servers {
			require.Equal(t, Voter, server.Suffrage)
			require.Equal(t, ServerID(server.Address), server.ID)
		}
	})
}
