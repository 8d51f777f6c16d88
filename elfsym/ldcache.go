package elfsym

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// The dynamic linker's cache, /etc/ld.so.cache, as glibc's ldconfig writes
// it (elf/cache.c, sysdeps/generic/dl-cache.h). Three layouts exist:
//
//   - new: the "glibc-ld.so.cache1.1" header, 24-byte entries, string
//     offsets from the start of that header (the default since glibc 2.32);
//   - old: the "ld.so-1.7.0" header, 12-byte entries, string offsets from
//     the end of the entries;
//   - compat: an old cache followed by a new one, 8-byte aligned; the
//     dynamic linker reads the new part, and so does parseLDCache.
const (
	ldCacheMagicOld = "ld.so-1.7.0"
	ldCacheMagicNew = "glibc-ld.so.cache" + "1.1"

	ldCacheOldHeader = 16 // magic[11] (+1 of padding), nlibs
	ldCacheOldEntry  = 12 // flags, key, value
	ldCacheNewHeader = 48 // magic[17], version[3], nlibs, len_strings, flags, pad[3], extension_offset, unused[3]
	ldCacheNewEntry  = 24 // flags, key, value, osversion, hwcap

	// ldCacheX8664 is the flags of an x86-64 glibc library,
	// FLAG_ELF_LIBC6 | FLAG_X8664_LIB64: the cache also lists i386 and
	// x32 libraries, which an x86-64 program cannot load.
	ldCacheX8664 = 0x0303

	// ldCacheBigEndian is the value of the new header's endianness
	// bits (flags & 3) for a big-endian cache.
	ldCacheBigEndian = 3

	// maxLDCache bounds the file read: real caches are tens of KiB.
	maxLDCache = 64 << 20
)

// errBadLDCache is wrapped for a cache parseLDCache cannot read.
var errBadLDCache = errors.New("malformed ld.so.cache")

// ldCacheEntry is one x86-64 library of the cache: the name the dynamic
// linker looks up (a soname such as "libc.so.6", or a file name such as
// "libz.so") and the path of the file.
type ldCacheEntry struct {
	name, path string
}

// parseLDCache returns the x86-64 entries of an ld.so.cache, in the
// cache's order (the dynamic linker's order of preference).
func parseLDCache(data []byte) ([]ldCacheEntry, error) {
	switch {
	case bytes.HasPrefix(data, []byte(ldCacheMagicNew)):
		return parseLDCacheNew(data)
	case bytes.HasPrefix(data, []byte(ldCacheMagicOld)):
		if len(data) < ldCacheOldHeader {
			return nil, fmt.Errorf("%w: %d bytes, shorter than its header", errBadLDCache, len(data))
		}
		n := uint64(binary.LittleEndian.Uint32(data[12:]))
		end := ldCacheOldHeader + n*ldCacheOldEntry
		if end > uint64(len(data)) {
			return nil, fmt.Errorf("%w: %d entries do not fit in %d bytes", errBadLDCache, n, len(data))
		}
		// A compat cache: the new cache follows, aligned as its
		// header (which holds 64-bit fields) must be.
		if newAt := (end + 7) &^ 7; newAt < uint64(len(data)) && bytes.HasPrefix(data[newAt:], []byte(ldCacheMagicNew)) {
			return parseLDCacheNew(data[newAt:])
		}
		var out []ldCacheEntry
		strs := data[end:]
		for i := uint64(0); i < n; i++ {
			e := data[ldCacheOldHeader+i*ldCacheOldEntry:]
			if binary.LittleEndian.Uint32(e) != ldCacheX8664 {
				continue
			}
			name, ok1 := cString(strs, binary.LittleEndian.Uint32(e[4:]))
			path, ok2 := cString(strs, binary.LittleEndian.Uint32(e[8:]))
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("%w: entry %d: string offset out of the file", errBadLDCache, i)
			}
			out = append(out, ldCacheEntry{name, path})
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: unknown magic %q", errBadLDCache, data[:min(len(data), len(ldCacheMagicNew))])
}

// parseLDCacheNew parses a cache of the new layout starting at data[0].
func parseLDCacheNew(data []byte) ([]ldCacheEntry, error) {
	if len(data) < ldCacheNewHeader {
		return nil, fmt.Errorf("%w: %d bytes, shorter than its header", errBadLDCache, len(data))
	}
	if data[28]&3 == ldCacheBigEndian {
		return nil, fmt.Errorf("%w: a big-endian cache", errBadLDCache)
	}
	n := uint64(binary.LittleEndian.Uint32(data[20:]))
	if ldCacheNewHeader+n*ldCacheNewEntry > uint64(len(data)) {
		return nil, fmt.Errorf("%w: %d entries do not fit in %d bytes", errBadLDCache, n, len(data))
	}
	var out []ldCacheEntry
	for i := uint64(0); i < n; i++ {
		e := data[ldCacheNewHeader+i*ldCacheNewEntry:]
		if binary.LittleEndian.Uint32(e) != ldCacheX8664 {
			continue
		}
		name, ok1 := cString(data, binary.LittleEndian.Uint32(e[4:]))
		path, ok2 := cString(data, binary.LittleEndian.Uint32(e[8:]))
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("%w: entry %d: string offset out of the file", errBadLDCache, i)
		}
		out = append(out, ldCacheEntry{name, path})
	}
	return out, nil
}

// cString returns the NUL-terminated string at off in b; false when it
// starts or runs beyond b.
func cString(b []byte, off uint32) (string, bool) {
	if uint64(off) >= uint64(len(b)) {
		return "", false
	}
	s := b[off:]
	i := bytes.IndexByte(s, 0)
	if i < 0 {
		return "", false
	}
	return string(s[:i]), true
}
