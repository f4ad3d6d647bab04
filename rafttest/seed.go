package rafttest

import (
	"flag"
	"math/rand/v2"
	"os"

	"github.com/hashicorp/go-hclog"
)

// Command-line flags of the kit. They are registered on the default flag set
// when a test binary links this package, next to the testing package's own.
var (
	seedFlag = flag.Int64("rafttest.seed", 0,
		"replay a failing cluster: the seed every random choice of the kit is drawn from (0 picks a fresh one)")
	logFlag = flag.String("rafttest.log", "",
		"log level of the nodes' loggers (trace, debug, info, warn, error); empty keeps them silent")
)

// SeedFromFlag returns the seed given with -rafttest.seed and whether one
// was given. Suites that run many seeded schedules use it to replay only the
// one that failed.
func SeedFromFlag() (int64, bool) {
	if !flag.Parsed() || *seedFlag == 0 {
		return 0, false
	}
	return *seedFlag, true
}

// NewSeed returns the seed of -rafttest.seed when it was given, and a fresh
// random one otherwise. The fresh seed comes from the runtime's random
// source, not from the clock: inside a testing/synctest bubble every test
// starts at the same instant.
func NewSeed() int64 {
	if s, ok := SeedFromFlag(); ok {
		return s
	}
	for {
		if s := rand.Int64(); s != 0 {
			return s
		}
	}
}

// newRand returns a deterministic source for one consumer of a seed; stream
// keeps the consumers (the cluster, each link, each store) independent so
// that one drawing more numbers does not shift the others.
func newRand(seed int64, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), stream))
}

// nodeLogger returns the logger a node of the kit gets unless the config
// hook sets one: silent unless -rafttest.log or RAFTTEST_LOG names a level.
func nodeLogger(name string) hclog.Logger {
	level := ""
	if logFlag != nil && *logFlag != "" {
		level = *logFlag
	} else {
		level = os.Getenv("RAFTTEST_LOG")
	}
	if level == "" {
		return hclog.NewNullLogger()
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.LevelFromString(level), Output: os.Stderr})
}
