//go:build !linux

package onnxlocal

// Transparent huge pages are a Linux feature (see hugepages_linux.go).

func anonRegions() map[uintptr]uintptr   { return nil }
func hugePagesSince(map[uintptr]uintptr) {}
