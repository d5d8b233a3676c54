// Bit-plane GEMM on NVIDIA tensor cores (sm_80+): binary MMA with AND + popcount.
//
// The product X W^T of an x_bits-bit X (M x K) and a w_bits-bit W (N x K) is
//   sum_{i,j} c_i c_j (X_i W_j^T),   c_b = 2^b (or -2^(bits-1) for a signed operand's MSB plane),
// where X_i, W_j are 0/1 bit planes and each X_i W_j^T is one m8n8k128 b1 MMA chain.
// As in ABQ-LLM, the bit planes of X are stacked along the MMA's M dimension: one 8-row A tile
// holds the x_bits planes of floor(8 / x_bits) rows of X, so at decode (M = 1) an 8-bit
// activation fills the tile instead of wasting 7/8 of it. The +-2^(i+j) recombination and the
// reduction over the stacked planes happen in registers and shared memory (int32 throughout).
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "bitplane_cuda.h"

namespace abq {
namespace {

constexpr int kWarpsPerBlock = 4;

__global__ void pack_kernel(const int32_t* __restrict__ codes, int64_t rows, int64_t K, int bits,
                            uint32_t* __restrict__ out, int64_t words32) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= rows * words32) return;
  const int64_t r = idx / words32;
  const int64_t w = idx % words32;
  uint32_t planes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int k = 0; k < 32; ++k) {
    const int64_t col = w * 32 + k;
    const uint32_t code = col < K ? static_cast<uint32_t>(codes[r * K + col]) : 0u;
#pragma unroll
    for (int b = 0; b < 8; ++b) planes[b] |= ((code >> b) & 1u) << k;
  }
  for (int b = 0; b < bits; ++b) out[(b * rows + r) * words32 + w] = planes[b];
}

__device__ __forceinline__ void bmma_and_popc(int& c0, int& c1, uint32_t a, uint32_t b) {
  asm volatile(
      "mma.sync.aligned.m8n8k128.row.col.s32.b1.b1.s32.and.popc {%0, %1}, {%2}, {%3}, {%0, %1};\n"
      : "+r"(c0), "+r"(c1)
      : "r"(a), "r"(b));
}

__device__ __forceinline__ int coef(int plane, int bits, bool is_signed) {
  const int c = 1 << plane;
  return (is_signed && plane == bits - 1) ? -c : c;
}

// One warp computes a (8 / x_bits) x 8 output tile. Fragment layout of m8n8k128 .b1 (PTX ISA):
// lane = 4 * group + t; A: row `group`, bits [32 t, 32 t + 32) of the 128-bit k chunk; B: column
// `group`, same bits; C: row `group`, columns 2 t and 2 t + 1.
template <int WB>
__global__ void gemm_kernel(const uint32_t* __restrict__ xp, const uint32_t* __restrict__ wp,
                            int64_t M, int64_t N, int64_t words32, int x_bits, bool is_signed,
                            int32_t* __restrict__ out) {
  __shared__ int tile[kWarpsPerBlock][8][8];
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int group = lane / 4;
  const int t = lane % 4;
  const int rows_per_tile = 8 / x_bits;  // rows of X per stacked tile
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * rows_per_tile;
  const int64_t n0 = (static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp) * 8;

  // My A row: (row of X, plane) = (m0 + group / x_bits, group % x_bits).
  const int plane_i = group % x_bits;
  const int64_t m = m0 + group / x_bits;
  const bool a_valid = group < rows_per_tile * x_bits && m < M;
  const uint32_t* a_ptr = xp + (static_cast<int64_t>(plane_i) * M + (a_valid ? m : 0)) * words32 + t;
  // My B column: row n of W.
  const int64_t n = n0 + group;
  const bool b_valid = n < N;
  const uint32_t* b_ptr = wp + (b_valid ? n : 0) * words32 + t;
  const int64_t plane_stride_w = N * words32;

  int c[WB][2];
#pragma unroll
  for (int j = 0; j < WB; ++j) c[j][0] = c[j][1] = 0;

  for (int64_t kc = 0; kc < words32; kc += 4) {
    const uint32_t a = a_valid ? __ldg(a_ptr + kc) : 0u;
#pragma unroll
    for (int j = 0; j < WB; ++j) {
      const uint32_t b = b_valid ? __ldg(b_ptr + j * plane_stride_w + kc) : 0u;
      bmma_and_popc(c[j][0], c[j][1], a, b);
    }
  }

  int acc0 = 0, acc1 = 0;
  const int ci = coef(plane_i, x_bits, is_signed);
#pragma unroll
  for (int j = 0; j < WB; ++j) {
    const int cij = ci * coef(j, WB, is_signed);
    acc0 += cij * c[j][0];
    acc1 += cij * c[j][1];
  }
  tile[warp][group][2 * t] = acc0;
  tile[warp][group][2 * t + 1] = acc1;
  __syncwarp();

  // Reduce the stacked planes: output row q of the tile is the sum of A rows q*x_bits ... + x_bits-1.
  for (int e = lane; e < rows_per_tile * 8; e += 32) {
    const int q = e / 8;
    const int col = e % 8;
    const int64_t mo = m0 + q;
    const int64_t no = n0 + col;
    if (mo < M && no < N) {
      int s = 0;
      for (int i = 0; i < x_bits; ++i) s += tile[warp][q * x_bits + i][col];
      out[mo * N + no] = s;
    }
  }
}

template <int WB>
void launch(const uint32_t* xp, const uint32_t* wp, int64_t M, int64_t N, int64_t words32,
            int x_bits, bool is_signed, int32_t* out, cudaStream_t stream) {
  const int rows_per_tile = 8 / x_bits;
  const dim3 grid(static_cast<unsigned>((N + 8 * kWarpsPerBlock - 1) / (8 * kWarpsPerBlock)),
                  static_cast<unsigned>((M + rows_per_tile - 1) / rows_per_tile));
  gemm_kernel<WB><<<grid, 32 * kWarpsPerBlock, 0, stream>>>(xp, wp, M, N, words32, x_bits,
                                                            is_signed, out);
}

std::string last_error() {
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? std::string() : std::string(cudaGetErrorString(err));
}

}  // namespace

std::string pack_planes_cuda(const int32_t* codes, int64_t rows, int64_t K, int bits,
                             uint64_t* out, int64_t words, uintptr_t stream) {
  const int64_t words32 = 2 * words;
  const int64_t total = rows * words32;
  if (total == 0) return "";
  const int threads = 256;
  const auto blocks = static_cast<unsigned>((total + threads - 1) / threads);
  pack_kernel<<<blocks, threads, 0, reinterpret_cast<cudaStream_t>(stream)>>>(
      codes, rows, K, bits, reinterpret_cast<uint32_t*>(out), words32);
  return last_error();
}

std::string gemm_planes_cuda(const uint64_t* xp, const uint64_t* wp, int64_t M, int64_t N,
                             int64_t words, int x_bits, int w_bits, bool is_signed, int32_t* out,
                             uintptr_t stream) {
  if (M == 0 || N == 0) return "";
  const auto* x32 = reinterpret_cast<const uint32_t*>(xp);
  const auto* w32 = reinterpret_cast<const uint32_t*>(wp);
  const int64_t words32 = 2 * words;
  auto s = reinterpret_cast<cudaStream_t>(stream);
  switch (w_bits) {
    case 1: launch<1>(x32, w32, M, N, words32, x_bits, is_signed, out, s); break;
    case 2: launch<2>(x32, w32, M, N, words32, x_bits, is_signed, out, s); break;
    case 3: launch<3>(x32, w32, M, N, words32, x_bits, is_signed, out, s); break;
    case 4: launch<4>(x32, w32, M, N, words32, x_bits, is_signed, out, s); break;
    case 5: launch<5>(x32, w32, M, N, words32, x_bits, is_signed, out, s); break;
    case 6: launch<6>(x32, w32, M, N, words32, x_bits, is_signed, out, s); break;
    case 7: launch<7>(x32, w32, M, N, words32, x_bits, is_signed, out, s); break;
    case 8: launch<8>(x32, w32, M, N, words32, x_bits, is_signed, out, s); break;
    default: return "w_bits must be in 1..8";
  }
  return last_error();
}

std::string cuda_device_check(int device) {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) return std::string("CUDA runtime: ") + cudaGetErrorString(err);
  if (device < 0 || device >= count) return "CUDA device index out of range";
  cudaDeviceProp prop{};
  err = cudaGetDeviceProperties(&prop, device);
  if (err != cudaSuccess) return std::string("CUDA runtime: ") + cudaGetErrorString(err);
  if (prop.major < 8) {
    return "device " + std::string(prop.name) + " has compute capability " +
           std::to_string(prop.major) + "." + std::to_string(prop.minor) +
           "; the AND-popcount binary MMA needs 8.0 or newer";
  }
  return "";
}

}  // namespace abq
