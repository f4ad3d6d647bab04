//go:build go1.25

package wal

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The kill -9 test runs this test binary again as a child process that
// writes to a store and reports every operation that returned; the parent
// SIGKILLs it at a random moment and checks the store against the reports.

const (
	killChildDirEnv = "WAL_KILL_CHILD_DIR"
	killChildGenEnv = "WAL_KILL_CHILD_GEN"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(killChildDirEnv); dir != "" {
		gen, _ := strconv.ParseUint(os.Getenv(killChildGenEnv), 10, 64)
		os.Exit(runKillChild(dir, gen))
	}
	os.Exit(m.Run())
}

// runKillChild appends, truncates and compacts until it is killed. Each
// line on stdout is written only after the operation returned:
//
//	A from to   entries [from, to] stored in generation gen
//	t k / T k   tail deletion from k started / returned
//	h k / H k   head deletion up to k started / returned
func runKillChild(dir string, gen uint64) int {
	s, err := Open(dir, Options{SegmentSize: 8 << 10, Logger: quietLogger()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: open:", err)
		return 2
	}
	rng := rand.New(rand.NewPCG(gen, 42))
	report := func(format string, args ...any) { fmt.Fprintf(os.Stdout, format+"\n", args...) }
	for {
		first, _ := s.FirstIndex()
		last, err := s.LastIndex()
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 2
		}
		switch r := rng.IntN(20); {
		case r == 0 && last > first+20:
			k := last - uint64(rng.IntN(20))
			report("t %d", k)
			err = s.DeleteRange(k, last)
			report("T %d", k)
		case r == 1 && last > first+300:
			k := first + uint64(rng.IntN(200))
			report("h %d", k)
			err = s.DeleteRange(first, k)
			report("H %d", k)
		default:
			from := last + 1
			to := from + uint64(rng.IntN(16))
			err = s.StoreLogs(testBatch(from, to, gen))
			if err == nil {
				report("A %d %d", from, to)
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 2
		}
	}
}

// TestKill9LosesNoAcknowledgedWrite: real processes, real disk, real time.
// The moment of each kill is random on purpose; nothing waits for time to
// pass for correctness, every check is on what the child reported.
func TestKill9LosesNoAcknowledgedWrite(t *testing.T) {
	const kills = 30
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	model := logModel{} // the log as acknowledged so far
	for gen := uint64(1); gen <= kills; gen++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), killChildDirEnv+"="+dir, killChildGenEnv+"="+strconv.FormatUint(gen, 10))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())

		lines := make(chan string)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		pendingTail, pendingHead := uint64(0), uint64(0)
		apply := func(line string) {
			var op string
			var a, b uint64
			_, err := fmt.Sscan(line, &op, &a, &b)
			if op != "A" {
				_, err = fmt.Sscan(line, &op, &a)
			}
			require.NoError(t, err, "child line %q", line)
			switch op {
			case "A":
				model.store(a, b, gen)
			case "t":
				pendingTail = a
			case "T":
				model.deleteRange(a, ^uint64(0))
				pendingTail = 0
			case "h":
				pendingHead = a
			case "H":
				model.deleteRange(0, a)
				pendingHead = 0
			}
		}
		killAfter := 1 + rng.IntN(40)
		deadline := time.After(30 * time.Second) // bounds a hung child
		for n := 0; n < killAfter; n++ {
			select {
			case line, ok := <-lines:
				require.True(t, ok, "child %d exited early: %s", gen, stderr.String())
				apply(line)
			case <-deadline:
				cmd.Process.Kill()
				t.Fatalf("child %d stopped reporting", gen)
			}
		}
		time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond) // a random moment
		require.NoError(t, cmd.Process.Kill())
		for line := range lines { // reports written before the kill count too
			apply(line)
		}
		require.Error(t, cmd.Wait(), "the child must have been killed")

		s, err := Open(dir, Options{SegmentSize: 8 << 10, Logger: quietLogger()})
		require.NoError(t, err, "reopen after kill %d", gen)
		got := readLog(t, s) // also checks every entry is intact
		maxAcked := uint64(0)
		for i, g := range model {
			maxAcked = max(maxAcked, i)
			mayBeGone := (pendingTail != 0 && i >= pendingTail) || (pendingHead != 0 && i <= pendingHead)
			if have, ok := got[i]; ok {
				require.Equal(t, g, have, "kill %d: entry %d changed", gen, i)
			} else {
				require.True(t, mayBeGone, "kill %d: acknowledged entry %d is lost", gen, i)
			}
		}
		for i, g := range got {
			if _, ok := model[i]; !ok {
				require.True(t, i > maxAcked && g == gen, "kill %d: entry %d (generation %d) was never written", gen, i, g)
			}
		}
		require.NoError(t, s.Close())
		model = got
	}
	require.NotEmpty(t, model, "the children wrote nothing")
}
