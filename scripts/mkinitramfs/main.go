// Command mkinitramfs writes a gzip-compressed cpio archive ("newc", the
// format the kernel unpacks as an initramfs) of the files named on its
// command line, for the VM of scripts/kernel-vm-test.sh:
//
//	mkinitramfs -o initrd.gz /init=build/init /kernel.test=build/kernel.test ...
//
// Each argument is DEST=SRC: the file SRC of this machine stored at DEST
// in the archive, with SRC's permission bits. The directories above every
// DEST are added, and so are /dev with a /dev/console character device
// (5, 1) and /tmp: the kernel opens /dev/console for init's standard
// input and output before init runs, and making the node here needs no
// root and no cpio program.
package main

import (
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
)

const (
	modeDir  = 0o040000
	modeFile = 0o100000
	modeChr  = 0o020000
)

type entry struct {
	name       string // without the leading '/'
	mode       uint32
	rmaj, rmin uint32
	src        string // regular files: the file to copy
}

func main() {
	out := flag.String("o", "", "the archive to write")
	flag.Parse()
	if *out == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: mkinitramfs -o FILE DEST=SRC...")
		os.Exit(2)
	}
	if err := write(*out, flag.Args()); err != nil {
		fmt.Fprintf(os.Stderr, "mkinitramfs: %v\n", err)
		os.Exit(1)
	}
}

func write(out string, args []string) error {
	dirs := map[string]bool{"dev": true, "tmp": true}
	var files []entry
	for _, a := range args {
		dest, src, ok := strings.Cut(a, "=")
		dest = strings.Trim(path.Clean("/"+dest), "/")
		if !ok || dest == "" || src == "" {
			return fmt.Errorf("bad argument %q: want DEST=SRC", a)
		}
		st, err := os.Stat(src)
		if err != nil {
			return err
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", src)
		}
		files = append(files, entry{name: dest, mode: modeFile | uint32(st.Mode().Perm()), src: src})
		for d := path.Dir(dest); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	var entries []entry
	for d := range dirs {
		mode := uint32(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		entries = append(entries, entry{name: d, mode: modeDir | mode})
	}
	// Parents before children.
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	entries = append(entries, entry{name: "dev/console", mode: modeChr | 0o600, rmaj: 5, rmin: 1})
	entries = append(entries, files...)

	f, err := os.Create(out)
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(f)
	w := &cpioWriter{w: zw}
	for i, e := range entries {
		if err := w.add(uint32(i+1), e); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.header(0, entry{name: "TRAILER!!!"}, 0); err != nil {
		f.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

type cpioWriter struct {
	w   io.Writer
	off int64
	err error
}

func (c *cpioWriter) write(p []byte) {
	if c.err != nil {
		return
	}
	n, err := c.w.Write(p)
	c.off += int64(n)
	c.err = err
}

func (c *cpioWriter) pad() {
	if r := c.off % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

// header writes a newc header and the name.
func (c *cpioWriter) header(ino uint32, e entry, size int64) error {
	nlink := uint32(1)
	if e.mode&0o170000 == modeDir {
		nlink = 2
	}
	h := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, e.mode, 0, 0, nlink, 0, uint32(size), 0, 0, e.rmaj, e.rmin, len(e.name)+1, 0)
	c.write([]byte(h))
	c.write(append([]byte(e.name), 0))
	c.pad()
	return c.err
}

func (c *cpioWriter) add(ino uint32, e entry) error {
	if e.src == "" {
		return c.header(ino, e, 0)
	}
	data, err := os.ReadFile(e.src)
	if err != nil {
		return err
	}
	if int64(len(data)) > 0xffffffff {
		return fmt.Errorf("%s is too big for cpio", e.src)
	}
	if err := c.header(ino, e, int64(len(data))); err != nil {
		return err
	}
	c.write(data)
	c.pad()
	return c.err
}
