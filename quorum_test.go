package raft

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// suffrageConfiguration builds a configuration from "id:suffrage" pairs, where
// suffrage is v (Voter), n (Nonvoter) or s (Staging).
func suffrageConfiguration(t *testing.T, servers ...string) Configuration {
	t.Helper()
	suffrages := map[byte]ServerSuffrage{'v': Voter, 'n': Nonvoter, 's': Staging}
	var configuration Configuration
	for _, s := range servers {
		suffrage, ok := suffrages[s[len(s)-1]]
		require.True(t, ok && s[len(s)-2] == ':', "bad server %q", s)
		id := ServerID(s[:len(s)-2])
		configuration.Servers = append(configuration.Servers, Server{Suffrage: suffrage, ID: id, Address: ServerAddress(id)})
	}
	return configuration
}

// Only Voters vote, and a majority is more than half of them: Nonvoter and
// Staging servers change neither the count nor the quorum.
func TestVotersCountOnlyVotersAndAMajorityIsMoreThanHalf(t *testing.T) {
	cases := []struct {
		servers    []string
		size       int
		quorum     int
		voters     []ServerID
		nonvoters  []ServerID
		strangerID ServerID
	}{
		{nil, 0, 1, nil, nil, "x"},
		{[]string{"a:v"}, 1, 1, []ServerID{"a"}, nil, "x"},
		{[]string{"a:v", "b:v"}, 2, 2, []ServerID{"a", "b"}, nil, "x"},
		{[]string{"a:v", "b:v", "c:v"}, 3, 2, []ServerID{"a", "b", "c"}, nil, "x"},
		{[]string{"a:v", "b:v", "c:v", "d:v"}, 4, 3, []ServerID{"a", "b", "c", "d"}, nil, "x"},
		{[]string{"a:v", "b:v", "c:v", "d:v", "e:v"}, 5, 3, []ServerID{"a", "b", "c", "d", "e"}, nil, "x"},
		{[]string{"a:v", "b:n", "c:v"}, 2, 2, []ServerID{"a", "c"}, []ServerID{"b"}, "x"},
		{[]string{"a:s", "b:v", "c:n", "d:v", "e:v"}, 3, 2, []ServerID{"b", "d", "e"}, []ServerID{"a", "c"}, "x"},
		{[]string{"a:n", "b:s"}, 0, 1, nil, []ServerID{"a", "b"}, "x"},
	}
	for _, tc := range cases {
		v := votersOf(suffrageConfiguration(t, tc.servers...))
		require.Equal(t, tc.size, v.size(), "size of %v", tc.servers)
		require.Equal(t, tc.quorum, v.quorum(), "quorum of %v", tc.servers)
		require.True(t, slices.Equal(tc.voters, v.ids), "voters of %v in configuration order: want %v, got %v", tc.servers, tc.voters, v.ids)
		for _, id := range tc.voters {
			require.True(t, v.isVoter(id), "%s votes in %v", id, tc.servers)
		}
		for _, id := range append(tc.nonvoters, tc.strangerID) {
			require.False(t, v.isVoter(id), "%s does not vote in %v", id, tc.servers)
		}
	}
}

// A round is won once a majority of the voters granted and lost once a
// majority refused; each voter counts once, and answers of servers without
// a vote count for nothing.
func TestTallyReachesMajorityOnlyWithDistinctVoters(t *testing.T) {
	type answer struct {
		id      ServerID
		granted bool
	}
	yes := func(id ServerID) answer { return answer{id, true} }
	no := func(id ServerID) answer { return answer{id, false} }
	five := []string{"a:v", "b:v", "c:v", "d:v", "e:v", "n:n", "s:s"}
	cases := []struct {
		name    string
		servers []string
		answers []answer
		won     bool
		lost    bool
		grants  int
		refused int
	}{
		{"no answers", five, nil, false, false, 0, 0},
		{"two of five", five, []answer{yes("a"), yes("b")}, false, false, 2, 0},
		{"three of five", five, []answer{yes("a"), yes("b"), yes("c")}, true, false, 3, 0},
		{"a repeated yes counts once", five, []answer{yes("a"), yes("a"), yes("b")}, false, false, 2, 0},
		{"nonvoter and staging yes count for nothing", five, []answer{yes("a"), yes("b"), yes("n"), yes("s")}, false, false, 2, 0},
		{"stranger counts for nothing", five, []answer{yes("a"), yes("b"), yes("x")}, false, false, 2, 0},
		{"three refusals lose", five, []answer{no("a"), no("b"), yes("c"), no("d")}, false, true, 1, 3},
		{"a refusal after a yes does not take it back", five, []answer{yes("a"), no("a"), yes("b"), yes("c")}, true, false, 3, 0},
		{"a yes after a refusal does not count", five, []answer{no("a"), yes("a"), yes("b"), yes("c")}, false, false, 2, 1},
		{"single voter wins alone", []string{"a:v"}, []answer{yes("a")}, true, false, 1, 0},
		{"two voters need both", []string{"a:v", "b:v"}, []answer{yes("a")}, false, false, 1, 0},
		{"no voters never win", []string{"n:n"}, []answer{yes("n")}, false, false, 0, 0},
	}
	for _, tc := range cases {
		count := votersOf(suffrageConfiguration(t, tc.servers...)).newTally()
		for _, a := range tc.answers {
			if a.granted {
				require.Equal(t, count.grant(a.id), count.won(), "%s: grant(%s) reports whether the round is won", tc.name, a.id)
			} else {
				require.Equal(t, count.refuse(a.id), count.lost(), "%s: refuse(%s) reports whether the round is lost", tc.name, a.id)
			}
		}
		require.Equal(t, tc.won, count.won(), "%s: won", tc.name)
		require.Equal(t, tc.lost, count.lost(), "%s: lost", tc.name)
		require.Equal(t, tc.grants, count.grants(), "%s: grants", tc.name)
		require.Equal(t, tc.refused, count.refusals(), "%s: refusals", tc.name)
	}
}
