package onnxlocal

// getMXCSR and setMXCSR read and write the SSE control/status register of
// the current OS thread (mxcsr_amd64.s).
func getMXCSR() uint32
func setMXCSR(v uint32)

// mxcsrFlushDenormals are the MXCSR bits flush-to-zero (bit 15) and
// denormals-are-zero (bit 6).
const mxcsrFlushDenormals = 1<<15 | 1<<6
