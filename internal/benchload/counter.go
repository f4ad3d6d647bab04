package benchload

import (
	"encoding/binary"
	"fmt"
	"io"
)

// The benchmark FSM of either library counts the commands it applied and
// their bytes: cheap enough that the figures measure the library, not the
// state machine. Its snapshot is the two counters, 16 bytes.

// EncodeCounters writes the FSM's counters in snapshot form.
func EncodeCounters(w io.Writer, commands, bytes uint64) error {
	var buf [16]byte
	binary.LittleEndian.PutUint64(buf[:8], commands)
	binary.LittleEndian.PutUint64(buf[8:], bytes)
	if _, err := w.Write(buf[:]); err != nil {
		return fmt.Errorf("benchload: write snapshot: %w", err)
	}
	return nil
}

// DecodeCounters reads what EncodeCounters wrote.
func DecodeCounters(r io.Reader) (commands, bytes uint64, err error) {
	var buf [16]byte
	if _, err := io.ReadFull(r, buf[:]); err != nil {
		return 0, 0, fmt.Errorf("benchload: read snapshot: %w", err)
	}
	return binary.LittleEndian.Uint64(buf[:8]), binary.LittleEndian.Uint64(buf[8:]), nil
}
