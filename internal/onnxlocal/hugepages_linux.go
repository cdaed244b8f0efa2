package onnxlocal

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// Transparent huge pages. A Kronos step streams every weight of the
// predictor once (84 MB at Kronos-small size), and with 4 KiB pages a new
// page (and often a page walk) comes every 64 cache lines. Linux backs
// memory with 2 MiB pages only where asked to (MADV_HUGEPAGE) under the
// common "madvise" setting of /sys/kernel/mm/transparent_hugepage/enabled,
// and ORT does not ask. So Open asks for the anonymous memory that appeared
// while ORT loaded the graphs: mostly its pre-packed weights, and the
// allocator's heap that later holds the graphs' intermediate tensors.
// MADV_COLLAPSE (Linux 6.1) moves the pages already filled into huge pages
// at once. Everything here is best effort: errors (an older kernel, THP
// disabled) are ignored.

const (
	hugePageSize  = 2 << 20
	madvHugePage  = 14 // MADV_HUGEPAGE
	madvCollapse  = 25 // MADV_COLLAPSE
	minHugeRegion = 2 * hugePageSize
)

// memRegion is one mapping [lo, hi) of the process.
type memRegion struct{ lo, hi uintptr }

// anonRegions lists the private, writable, anonymous mappings of the
// process (including the brk heap), keyed by start address.
func anonRegions() map[uintptr]uintptr {
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return nil
	}
	out := map[uintptr]uintptr{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		// "lo-hi perms offset dev inode [path]"
		f := bytes.Fields(sc.Bytes())
		if len(f) < 5 || !bytes.HasPrefix(f[1], []byte("rw-p")) || string(f[4]) != "0" {
			continue
		}
		if len(f) > 5 && string(f[5]) != "[heap]" {
			continue
		}
		lo, hi, ok := bytes.Cut(f[0], []byte("-"))
		if !ok {
			continue
		}
		a, err1 := strconv.ParseUint(string(lo), 16, 64)
		z, err2 := strconv.ParseUint(string(hi), 16, 64)
		if err1 == nil && err2 == nil {
			out[uintptr(a)] = uintptr(z)
		}
	}
	return out
}

// grownRegions returns the parts of the mappings in after that were not
// mapped in before: new mappings, and the tails of mappings that grew.
func grownRegions(before, after map[uintptr]uintptr) []memRegion {
	var out []memRegion
	for lo, hi := range after {
		if old, ok := before[lo]; ok {
			if hi > old {
				out = append(out, memRegion{old, hi})
			}
			continue
		}
		out = append(out, memRegion{lo, hi})
	}
	return out
}

// adviseHugePages asks for huge pages over the 2 MiB-aligned interior of
// [lo, hi) and collapses the pages already there.
func adviseHugePages(lo, hi uintptr) {
	a := (lo + hugePageSize - 1) &^ (hugePageSize - 1)
	z := hi &^ (hugePageSize - 1)
	if z <= a || z-a < minHugeRegion {
		return
	}
	syscall.Syscall(syscall.SYS_MADVISE, a, z-a, madvHugePage)
	syscall.Syscall(syscall.SYS_MADVISE, a, z-a, madvCollapse)
}

// hugePagesSince advises huge pages for the anonymous memory mapped since
// the snapshot before (from anonRegions).
func hugePagesSince(before map[uintptr]uintptr) {
	if before == nil {
		return
	}
	for _, r := range grownRegions(before, anonRegions()) {
		adviseHugePages(r.lo, r.hi)
	}
}
