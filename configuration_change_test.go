//go:build go1.25

package raft

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func memberVoter(id ServerID, address ServerAddress) Server {
	return Server{Suffrage: Voter, ID: id, Address: address}
}

func memberNonvoter(id ServerID, address ServerAddress) Server {
	return Server{Suffrage: Nonvoter, ID: id, Address: address}
}

func memberStaging(id ServerID, address ServerAddress) Server {
	return Server{Suffrage: Staging, ID: id, Address: address}
}

func membership(list ...Server) Configuration {
	return Configuration{Servers: list}
}

func TestCheckConfiguration(t *testing.T) {
	cases := []struct {
		name          string
		configuration Configuration
		wantErr       string
	}{
		{"one voter", membership(memberVoter("a", "1")), ""},
		{"voters, nonvoter and staging", membership(memberVoter("a", "1"), memberNonvoter("b", "2"), memberStaging("c", "3"), memberVoter("d", "4")), ""},
		{"nil servers", Configuration{}, "need at least one voter in configuration: {[]}"},
		{"only a nonvoter", membership(memberNonvoter("a", "1")), "need at least one voter in configuration: "},
		{"only staging", membership(memberStaging("a", "1")), "need at least one voter in configuration: "},
		{"empty ID", membership(memberVoter("a", "1"), memberVoter("", "2")), "empty ID in configuration: {Voter  2}"},
		{"empty address", membership(memberVoter("a", "1"), memberVoter("b", "")), "empty address in configuration: {Voter b }"},
		{"duplicate ID", membership(memberVoter("a", "1"), memberNonvoter("a", "2")), "found duplicate ID in configuration: a"},
		{"duplicate address", membership(memberVoter("a", "1"), memberNonvoter("b", "1")), "found duplicate address in configuration: 1"},

		// Order of checks: each server in turn, for empty ID, empty address,
		// repeated ID, repeated address; the voter count last.
		{"empty ID before empty address", membership(memberVoter("", "")), "empty ID in configuration: "},
		{"empty address before duplicate ID", membership(memberVoter("a", "1"), memberVoter("a", "")), "empty address in configuration: "},
		{"duplicate ID before duplicate address", membership(memberVoter("a", "1"), memberVoter("a", "1")), "found duplicate ID in configuration: a"},
		{"earlier server reported first", membership(memberVoter("a", "1"), memberVoter("a", "2"), memberVoter("", "3")), "found duplicate ID in configuration: a"},
		{"server problems before voter count", membership(memberNonvoter("a", "1"), memberNonvoter("b", "1")), "found duplicate address in configuration: 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := checkConfiguration(tc.configuration)
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.wantErr)
		})
	}
}

// membershipRule is one change applied to membershipRuleBase at index 7 and
// the configuration it must give.
type membershipRule struct {
	name   string
	change configurationChangeRequest
	want   Configuration
}

// membershipRuleBase is the configuration every membershipRule starts from:
// a Voter, a Nonvoter, a Staging server and a second Voter.
func membershipRuleBase() Configuration {
	return membership(memberVoter("v", "10"), memberNonvoter("n", "20"), memberStaging("s", "30"), memberVoter("w", "50"))
}

func TestNextConfigurationAppliesMembershipRules(t *testing.T) {
	base := membershipRuleBase()
	for _, tc := range append(membershipAdditionRules(), membershipDemotionAndRemovalRules()...) {
		t.Run(tc.name, func(t *testing.T) {
			got, err := nextConfiguration(base, 7, tc.change)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// membershipAdditionRules are the rules of AddVoter, AddStaging and
// AddNonvoter.
func membershipAdditionRules() []membershipRule {
	return []membershipRule{
		{
			name:   "AddVoter adds a new server as a Voter at the end",
			change: configurationChangeRequest{command: AddVoter, serverID: "x", serverAddress: "40"},
			want:   membership(memberVoter("v", "10"), memberNonvoter("n", "20"), memberStaging("s", "30"), memberVoter("w", "50"), memberVoter("x", "40")),
		},
		{
			name:   "AddVoter on a Voter only updates its address",
			change: configurationChangeRequest{command: AddVoter, serverID: "v", serverAddress: "11"},
			want:   membership(memberVoter("v", "11"), memberNonvoter("n", "20"), memberStaging("s", "30"), memberVoter("w", "50")),
		},
		{
			name:   "AddVoter replaces a Nonvoter by a Voter",
			change: configurationChangeRequest{command: AddVoter, serverID: "n", serverAddress: "21"},
			want:   membership(memberVoter("v", "10"), memberVoter("n", "21"), memberStaging("s", "30"), memberVoter("w", "50")),
		},
		{
			name:   "AddVoter replaces a Staging server by a Voter",
			change: configurationChangeRequest{command: AddVoter, serverID: "s", serverAddress: "30"},
			want:   membership(memberVoter("v", "10"), memberNonvoter("n", "20"), memberVoter("s", "30"), memberVoter("w", "50")),
		},
		{
			name:   "AddStaging is AddVoter",
			change: configurationChangeRequest{command: AddStaging, serverID: "x", serverAddress: "40"},
			want:   membership(memberVoter("v", "10"), memberNonvoter("n", "20"), memberStaging("s", "30"), memberVoter("w", "50"), memberVoter("x", "40")),
		},
		{
			name:   "AddNonvoter adds a new server as a Nonvoter",
			change: configurationChangeRequest{command: AddNonvoter, serverID: "x", serverAddress: "40"},
			want:   membership(memberVoter("v", "10"), memberNonvoter("n", "20"), memberStaging("s", "30"), memberVoter("w", "50"), memberNonvoter("x", "40")),
		},
		{
			name:   "AddNonvoter replaces a Nonvoter",
			change: configurationChangeRequest{command: AddNonvoter, serverID: "n", serverAddress: "21"},
			want:   membership(memberVoter("v", "10"), memberNonvoter("n", "21"), memberStaging("s", "30"), memberVoter("w", "50")),
		},
		{
			name:   "AddNonvoter on a Voter only updates its address",
			change: configurationChangeRequest{command: AddNonvoter, serverID: "v", serverAddress: "11"},
			want:   membership(memberVoter("v", "11"), memberNonvoter("n", "20"), memberStaging("s", "30"), memberVoter("w", "50")),
		},
		{
			name:   "AddNonvoter on a Staging server only updates its address",
			change: configurationChangeRequest{command: AddNonvoter, serverID: "s", serverAddress: "31"},
			want:   membership(memberVoter("v", "10"), memberNonvoter("n", "20"), memberStaging("s", "31"), memberVoter("w", "50")),
		},
	}
}

// membershipDemotionAndRemovalRules are the rules of DemoteVoter,
// RemoveServer and Promote, and of a matching prevIndex.
func membershipDemotionAndRemovalRules() []membershipRule {
	base := membershipRuleBase()
	return []membershipRule{
		{
			name:   "DemoteVoter turns a Voter into a Nonvoter",
			change: configurationChangeRequest{command: DemoteVoter, serverID: "v"},
			want:   membership(memberNonvoter("v", "10"), memberNonvoter("n", "20"), memberStaging("s", "30"), memberVoter("w", "50")),
		},
		{
			name:   "DemoteVoter turns a Staging server into a Nonvoter",
			change: configurationChangeRequest{command: DemoteVoter, serverID: "s"},
			want:   membership(memberVoter("v", "10"), memberNonvoter("n", "20"), memberNonvoter("s", "30"), memberVoter("w", "50")),
		},
		{
			name:   "DemoteVoter leaves a Nonvoter as it is",
			change: configurationChangeRequest{command: DemoteVoter, serverID: "n"},
			want:   base,
		},
		{
			name:   "DemoteVoter of an absent server changes nothing",
			change: configurationChangeRequest{command: DemoteVoter, serverID: "x"},
			want:   base,
		},
		{
			name:   "RemoveServer deletes the entry and keeps the order of the rest",
			change: configurationChangeRequest{command: RemoveServer, serverID: "n"},
			want:   membership(memberVoter("v", "10"), memberStaging("s", "30"), memberVoter("w", "50")),
		},
		{
			name:   "RemoveServer deletes a Voter while another remains",
			change: configurationChangeRequest{command: RemoveServer, serverID: "v"},
			want:   membership(memberNonvoter("n", "20"), memberStaging("s", "30"), memberVoter("w", "50")),
		},
		{
			name:   "RemoveServer of an absent server changes nothing",
			change: configurationChangeRequest{command: RemoveServer, serverID: "x"},
			want:   base,
		},
		{
			name:   "prevIndex equal to the latest index is accepted",
			change: configurationChangeRequest{command: RemoveServer, serverID: "s", prevIndex: 7},
			want:   membership(memberVoter("v", "10"), memberNonvoter("n", "20"), memberVoter("w", "50")),
		},
	}
}

func TestNextConfigurationRefusesInvalidChanges(t *testing.T) {
	base := membership(memberVoter("v", "10"), memberNonvoter("n", "20"))
	cases := []struct {
		name         string
		current      Configuration
		currentIndex uint64
		change       configurationChangeRequest
		wantErr      string
	}{
		{
			name:         "prevIndex behind the latest index",
			current:      base,
			currentIndex: 9,
			change:       configurationChangeRequest{command: AddVoter, serverID: "x", serverAddress: "40", prevIndex: 5},
			wantErr:      "configuration changed since 5 (latest is 9)",
		},
		{
			name:         "prevIndex ahead of the latest index",
			current:      base,
			currentIndex: 9,
			change:       configurationChangeRequest{command: RemoveServer, serverID: "n", prevIndex: 12},
			wantErr:      "configuration changed since 12 (latest is 9)",
		},
		{
			name:         "removing the last voter",
			current:      base,
			currentIndex: 9,
			change:       configurationChangeRequest{command: RemoveServer, serverID: "v"},
			wantErr:      "need at least one voter in configuration: ",
		},
		{
			name:         "demoting the last voter",
			current:      base,
			currentIndex: 9,
			change:       configurationChangeRequest{command: DemoteVoter, serverID: "v"},
			wantErr:      "need at least one voter in configuration: ",
		},
		{
			name:         "adding a voter at an address already in use",
			current:      base,
			currentIndex: 9,
			change:       configurationChangeRequest{command: AddVoter, serverID: "x", serverAddress: "20"},
			wantErr:      "found duplicate address in configuration: 20",
		},
		{
			name:         "moving a nonvoter to an address already in use",
			current:      base,
			currentIndex: 9,
			change:       configurationChangeRequest{command: AddNonvoter, serverID: "n", serverAddress: "10"},
			wantErr:      "found duplicate address in configuration: 10",
		},
		{
			name:         "adding a server without an ID",
			current:      base,
			currentIndex: 9,
			change:       configurationChangeRequest{command: AddNonvoter, serverAddress: "40"},
			wantErr:      "empty ID in configuration: ",
		},
		{
			name:         "adding a server without an address",
			current:      base,
			currentIndex: 9,
			change:       configurationChangeRequest{command: AddVoter, serverID: "x"},
			wantErr:      "empty address in configuration: ",
		},
		{
			name:         "an empty configuration cannot take a nonvoter first",
			current:      Configuration{},
			currentIndex: 0,
			change:       configurationChangeRequest{command: AddNonvoter, serverID: "x", serverAddress: "40"},
			wantErr:      "need at least one voter in configuration: ",
		},
		{
			name:         "unknown command",
			current:      base,
			currentIndex: 9,
			change:       configurationChangeRequest{command: ConfigurationChangeCommand(42), serverID: "v"},
			wantErr:      "raft: unknown configuration change command 42",
		},
		{
			name:         "Promote, which no method issues, is refused",
			current:      base,
			currentIndex: 9,
			change:       configurationChangeRequest{command: Promote, serverID: "s"},
			wantErr:      "raft: unknown configuration change command 4",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := nextConfiguration(tc.current, tc.currentIndex, tc.change)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.wantErr)
			require.Equal(t, Configuration{}, got)
		})
	}
}

func TestNextConfigurationPrevIndexZeroSkipsTheCheck(t *testing.T) {
	got, err := nextConfiguration(membership(memberVoter("v", "10")), 99,
		configurationChangeRequest{command: AddVoter, serverID: "x", serverAddress: "40"})
	require.NoError(t, err)
	require.Equal(t, membership(memberVoter("v", "10"), memberVoter("x", "40")), got)
}

func TestNextConfigurationNeverModifiesCurrent(t *testing.T) {
	changes := []configurationChangeRequest{
		{command: AddVoter, serverID: "x", serverAddress: "40"},
		{command: AddVoter, serverID: "n", serverAddress: "21"},
		{command: AddNonvoter, serverID: "v", serverAddress: "11"},
		{command: AddNonvoter, serverID: "x", serverAddress: "40"},
		{command: DemoteVoter, serverID: "v"},
		{command: RemoveServer, serverID: "v"},
		{command: RemoveServer, serverID: "n"},
	}
	for _, change := range changes {
		// Spare capacity would let an append write into current's array.
		current := Configuration{Servers: make([]Server, 0, 10)}
		current.Servers = append(current.Servers, memberVoter("v", "10"), memberVoter("w", "50"), memberNonvoter("n", "20"), memberStaging("s", "30"))
		snapshot := current.Clone()

		got, err := nextConfiguration(current, 3, change)
		require.NoError(t, err, "%v %s", change.command, change.serverID)
		require.Equal(t, snapshot, current, "%v %s modified current", change.command, change.serverID)

		// Nor may the result share memory with current.
		for i := range got.Servers {
			got.Servers[i].ID = "changed"
		}
		require.Equal(t, snapshot, current.Clone(), "%v %s result aliases current", change.command, change.serverID)
		require.Equal(t, snapshot.Servers, current.Servers[:len(snapshot.Servers)])
	}
}

func TestHasVoteAndInConfiguration(t *testing.T) {
	configuration := membership(memberVoter("v", "10"), memberNonvoter("n", "20"), memberStaging("s", "30"))
	cases := []struct {
		id       ServerID
		wantVote bool
		wantIn   bool
	}{
		{"v", true, true},
		{"n", false, true},
		{"s", false, true},
		{"absent", false, false},
		{"", false, false},
	}
	for _, tc := range cases {
		require.Equal(t, tc.wantVote, hasVote(configuration, tc.id), "hasVote(%q)", tc.id)
		require.Equal(t, tc.wantIn, inConfiguration(configuration, tc.id), "inConfiguration(%q)", tc.id)
	}
	require.False(t, hasVote(Configuration{}, "v"))
	require.False(t, inConfiguration(Configuration{}, "v"))
}
