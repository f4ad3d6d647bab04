package main

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// The demo runs three real nodes over loopback TCP with real disks, in real
// time; its own waits are bounded, so a stuck cluster fails it.
func TestDemoRunsToCompletionInShortMode(t *testing.T) {
	var out bytes.Buffer
	err := runDemo([]string{"-keys", "300", "-writers", "8"}, &out)
	require.NoError(t, err, "demo output:\n%s", out.String())

	text := out.String()
	for _, want := range []string{
		`(?m)^node\d leads \(elected `,
		`Wrote 300 keys in .*writes/s`,
		`(?m)^Killing the leader, node\d`,
		`(?m)^node\d took over after `,
		`All 300 keys readable on node\d and node\d`,
		`Wrote 30 more keys while node\d was down`,
		`node\d caught up to index \d+ in .* and serves all 330 keys`,
		`(?m)^Summary$`,
		`(?m)^  node1 .* 330 keys$`,
		`(?m)^  node2 .* 330 keys$`,
		`(?m)^  node3 .* 330 keys$`,
	} {
		require.Regexp(t, regexp.MustCompile(want), text)
	}

	removed := regexp.MustCompile(`Stopped all nodes and removed (\S+)`).FindStringSubmatch(text)
	require.Len(t, removed, 2, "the demo should say which directory it removed:\n%s", text)
	_, err = os.Stat(removed[1])
	require.True(t, os.IsNotExist(err), "the demo left its directory %s behind (stat: %v)", removed[1], err)
}

// The built binary's demo subcommand is what a newcomer runs first.
func TestDemoSubcommandOfTheBinary(t *testing.T) {
	out, err := exec.Command(raftkvBinary, "demo", "-keys", "50").CombinedOutput()
	require.NoError(t, err, "output:\n%s", out)
	require.Contains(t, string(out), "serves all 55 keys")
}
