//go:build !amd64

package onnxlocal

// Other architectures: no control register to set here; ORT's worker
// threads still flush denormals where the session option supports it.

func getMXCSR() uint32  { return 0 }
func setMXCSR(v uint32) {}

const mxcsrFlushDenormals = 0
