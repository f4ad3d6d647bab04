package benchload

import (
	"os"
	"syscall"
)

// syncData makes f's data durable with fdatasync, as a log store does.
func syncData(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
