//go:build cuda

// gorgonia.org/cu calls cuInit in its package initializer and exits the
// process when it fails (no GPU, no kernel module, the stub library). This
// definition of cuInit, linked into the executable, comes before libcuda's:
// it calls the driver's own cuInit and, for the first call only (cu's
// initializer, which runs before main), keeps the driver's answer for
// cudainfo.Query to report and tells cu that all went well, so that a cuda
// build of mmft runs on machines without a GPU and says why it has no
// figures. Every later call (the PJRT CUDA plugin's, for one) gets the
// driver's own answer.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <cuda.h>

static int mmft_cuinit_called = 0;
static CUresult mmft_cuinit_result = CUDA_ERROR_NOT_INITIALIZED;

CUresult cuInit(unsigned int flags) {
	CUresult (*real)(unsigned int) = (CUresult(*)(unsigned int))dlsym(RTLD_NEXT, "cuInit");
	CUresult r = real != NULL ? real(flags) : CUDA_ERROR_NOT_FOUND;
	if (__atomic_exchange_n(&mmft_cuinit_called, 1, __ATOMIC_SEQ_CST) == 0) {
		mmft_cuinit_result = r;
		return CUDA_SUCCESS;
	}
	return r;
}

int mmft_cuinit_status(void) {
	return __atomic_load_n(&mmft_cuinit_called, __ATOMIC_SEQ_CST) ? (int)mmft_cuinit_result : -1;
}
