//go:build cuda

// gorgonia.org/cu calls cuInit in its package initializer and exits the
// process when it fails (no GPU, no kernel module, the stub library). This
// definition of cuInit, linked into the executable, comes before libcuda's:
// it calls the driver's own cuInit, keeps its answer for cudainfo.Query to
// report, and tells cu's initializer that all went well, so that a cuda
// build of mmft runs on machines without a GPU and says why it has no
// figures.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <cuda.h>

static int mmft_cuinit_called = 0;
static CUresult mmft_cuinit_result = CUDA_ERROR_NOT_INITIALIZED;

CUresult cuInit(unsigned int flags) {
	CUresult (*real)(unsigned int) = (CUresult(*)(unsigned int))dlsym(RTLD_NEXT, "cuInit");
	mmft_cuinit_called = 1;
	if (real == NULL) {
		mmft_cuinit_result = CUDA_ERROR_NOT_FOUND;
		return CUDA_SUCCESS;
	}
	mmft_cuinit_result = real(flags);
	return CUDA_SUCCESS;
}

int mmft_cuinit_status(void) {
	return mmft_cuinit_called ? (int)mmft_cuinit_result : -1;
}
