package benchload

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Sample counts for the limit measurements: enough for a steady median,
// few enough to cost well under a second on a slow disk.
const (
	fsyncSamples = 200
	rttSamples   = 2000
)

// fsyncBlock is the size of one measured append, a typical small batch.
const fsyncBlock = 4096

// MeasureFsync appends n blocks of 4 KiB to a new file in dir, making each
// durable with fdatasync (fsync where the OS has no fdatasync), and returns
// the median time of one append and sync: the least a durable write on this
// file system can cost. The file is removed afterwards.
func MeasureFsync(dir string, n int) (time.Duration, error) {
	return MeasureFsyncConcurrent(dir, 1, n)
}

// MeasureFsyncConcurrent is MeasureFsync with writers goroutines, each
// appending and syncing n blocks to a file of its own at the same time, and
// returns the median over all of their samples. With one writer per node it
// is the least a durable write costs while every node of a cluster in one
// process writes to the same file system, as they do under load.
func MeasureFsyncConcurrent(dir string, writers, n int) (time.Duration, error) {
	if n <= 0 {
		return 0, errors.New("benchload: fsync samples must be positive")
	}
	if writers <= 0 {
		return 0, errors.New("benchload: fsync writers must be positive")
	}
	results := make(chan fsyncProbeResult, writers)
	for range writers {
		go func() {
			samples, err := fsyncProbe(dir, n)
			results <- fsyncProbeResult{samples, err}
		}()
	}
	var all []time.Duration
	var firstErr error
	for range writers {
		r := <-results
		all = append(all, r.samples...)
		if firstErr == nil {
			firstErr = r.err
		}
	}
	if firstErr != nil {
		return 0, firstErr
	}
	return median(all), nil
}

type fsyncProbeResult struct {
	samples []time.Duration
	err     error
}

// fsyncProbe times n appends and syncs of one new file in dir, which it
// removes afterwards.
func fsyncProbe(dir string, n int) ([]time.Duration, error) {
	f, err := os.CreateTemp(dir, "fsync-probe-")
	if err != nil {
		return nil, fmt.Errorf("benchload: fsync probe: %w", err)
	}
	name := f.Name()
	defer os.Remove(name)
	block := make([]byte, fsyncBlock)
	for i := range block {
		block[i] = byte(i)
	}
	samples := make([]time.Duration, 0, n)
	for range n {
		begin := time.Now()
		if _, err := f.Write(block); err != nil {
			f.Close()
			return nil, fmt.Errorf("benchload: fsync probe %s: write: %w", filepath.Base(name), err)
		}
		if err := syncData(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("benchload: fsync probe %s: sync: %w", filepath.Base(name), err)
		}
		samples = append(samples, time.Since(begin))
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("benchload: fsync probe %s: close: %w", filepath.Base(name), err)
	}
	return samples, nil
}

// rttMessage is the size of one ping and of its echo.
const rttMessage = 128

// rttTimeout bounds the whole round-trip measurement, so that a broken
// loopback gives an error rather than a hang.
const rttTimeout = 30 * time.Second

// MeasureRTT sends n 128-byte messages over a TCP connection on 127.0.0.1
// to a goroutine that echoes each one back, and returns the median time of
// one round trip: the least an RPC between two nodes of this process can
// cost.
func MeasureRTT(n int) (time.Duration, error) {
	if n <= 0 {
		return 0, errors.New("benchload: rtt samples must be positive")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("benchload: rtt probe: listen: %w", err)
	}
	defer ln.Close()
	deadline := time.Now().Add(rttTimeout)
	echoDone := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			echoDone <- err
			return
		}
		defer conn.Close()
		conn.SetDeadline(deadline)
		buf := make([]byte, rttMessage)
		for {
			if _, err := io.ReadFull(conn, buf); err != nil {
				if errors.Is(err, io.EOF) {
					err = nil // the client hung up: done
				}
				echoDone <- err
				return
			}
			if _, err := conn.Write(buf); err != nil {
				echoDone <- err
				return
			}
		}
	}()
	conn, err := net.DialTimeout("tcp", ln.Addr().String(), rttTimeout)
	if err != nil {
		return 0, fmt.Errorf("benchload: rtt probe: dial: %w", err)
	}
	conn.SetDeadline(deadline)
	ping := make([]byte, rttMessage)
	pong := make([]byte, rttMessage)
	samples := make([]time.Duration, 0, n)
	// A few unmeasured rounds first, so connection setup and the first
	// wake-ups of the echo goroutine stay out of the figures.
	const unmeasured = 50
	for i := range n + unmeasured {
		begin := time.Now()
		if _, err := conn.Write(ping); err != nil {
			conn.Close()
			return 0, fmt.Errorf("benchload: rtt probe: write: %w", err)
		}
		if _, err := io.ReadFull(conn, pong); err != nil {
			conn.Close()
			return 0, fmt.Errorf("benchload: rtt probe: read: %w", err)
		}
		if i >= unmeasured {
			samples = append(samples, time.Since(begin))
		}
	}
	conn.Close()
	if err := <-echoDone; err != nil {
		return 0, fmt.Errorf("benchload: rtt probe: echo: %w", err)
	}
	return median(samples), nil
}

// median returns the middle value of samples (the lower of the two middle
// ones for an even count), sorting samples in place.
func median(samples []time.Duration) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	slices.Sort(samples)
	return samples[(len(samples)-1)/2]
}
