/* tests/cuda/emu_shim.h -- lets g++ compile segc's generated CUDA C for the host, so that the
 * kernels can be checked on a machine without a GPU (tests/cuda/segc_cuda.py, mode emu).
 * Included before the generated source (g++ -include).  Threads are run one after another
 * by the caller, which sets blockIdx/threadIdx/blockDim/gridDim through segc_emu_set(): the
 * generated kernels' iterations are independent, so any order gives the GPU's result. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(n)

struct segc_emu_dim3 {
	unsigned x, y, z;
};
static segc_emu_dim3 threadIdx, blockIdx, blockDim, gridDim;

extern "C" void
segc_emu_set(unsigned block, unsigned thread, unsigned nblock, unsigned nthread)
{
	blockIdx.x = block;
	threadIdx.x = thread;
	gridDim.x = nblock;
	blockDim.x = nthread;
	blockIdx.y = blockIdx.z = threadIdx.y = threadIdx.z = 0;
	gridDim.y = gridDim.z = blockDim.y = blockDim.z = 1;
}

template <typename T>
static inline T
__ldg(const T *p)
{
	return *p;
}

static inline float
__int_as_float(int i)
{
	float f;
	memcpy(&f, &i, sizeof f);
	return f;
}
