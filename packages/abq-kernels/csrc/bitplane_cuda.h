// Host launchers of the CUDA bit-plane kernels (compiled only when nvcc is found).
// Buffers are device pointers with the CPU kernel's layout (bitplane_cpu.h); the packed planes
// are read as 32-bit words, which on little-endian devices is the same memory.
#pragma once
#include <cstdint>
#include <string>

namespace abq {

// Returns "" on success, else the CUDA error string.
std::string pack_planes_cuda(const int32_t* codes, int64_t rows, int64_t K, int bits,
                             uint64_t* out, int64_t words, uintptr_t stream);

std::string gemm_planes_cuda(const uint64_t* xp, const uint64_t* wp, int64_t M, int64_t N,
                             int64_t words, int x_bits, int w_bits, bool is_signed, int32_t* out,
                             uintptr_t stream);

// "" when a device of compute capability >= 8.0 is usable, else why not.
std::string cuda_device_check(int device);

}  // namespace abq
