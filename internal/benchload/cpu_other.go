//go:build !unix

package benchload

import "time"

// processCPUTime reports that CPU time is not known on this OS.
func processCPUTime() (time.Duration, bool) { return 0, false }
