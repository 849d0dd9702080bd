// Command floor is the fsync floor of an hsmkit command that writes N HSMs,
// as a process: for each of N files in DIR it does what one durable HSM
// write costs at least — write a 4 KiB temp file, fsync it, rename it into
// place, fsync the directory — and exits. benchreport runs it beside the
// command it measures, in the same run, the same way (fork, exec, wait).
//
//	floor [-n 3] DIR
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	n := flag.Int("n", 3, "number of files (HSMs) to write")
	size := flag.Int("size", 4096, "bytes per file")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: floor [-n N] [-size BYTES] DIR")
		os.Exit(2)
	}
	dir := flag.Arg(0)
	data := make([]byte, *size)
	for i := range data {
		data[i] = byte(i)
	}
	for i := range *n {
		if err := durableWrite(dir, fmt.Sprintf("hsm-%02d.db", i), data); err != nil {
			fmt.Fprintln(os.Stderr, "floor:", err)
			os.Exit(1)
		}
	}
}

// durableWrite replaces dir/name with data atomically and durably.
func durableWrite(dir, name string, data []byte) error {
	tmp := filepath.Join(dir, "."+name+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
