#include "bitplane_cpu.h"

#include <cstring>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
// One binary, several instruction sets: the loader picks the clone for the running CPU.
#define ABQ_CLONES __attribute__((target_clones("arch=icelake-server", "arch=haswell", "popcnt", "default")))
#else
#define ABQ_CLONES
#endif

namespace abq {

void pack_planes_cpu(const int32_t* codes, int64_t rows, int64_t K, int bits, uint64_t* out,
                     int64_t words) {
  std::memset(out, 0, sizeof(uint64_t) * static_cast<size_t>(bits * rows * words));
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t* row = codes + r * K;
    for (int64_t w = 0; w * 64 < K; ++w) {
      const int64_t k0 = w * 64;
      const int64_t kend = (k0 + 64 < K) ? k0 + 64 : K;
      for (int b = 0; b < bits; ++b) {
        uint64_t word = 0;
        for (int64_t k = k0; k < kend; ++k) {
          word |= static_cast<uint64_t>((static_cast<uint32_t>(row[k]) >> b) & 1u) << (k - k0);
        }
        out[(static_cast<int64_t>(b) * rows + r) * words + w] = word;
      }
    }
  }
}

namespace {

ABQ_CLONES
int64_t and_popcount(const uint64_t* a, const uint64_t* b, int64_t words) {
  int64_t s = 0;
  for (int64_t w = 0; w < words; ++w) s += __builtin_popcountll(a[w] & b[w]);
  return s;
}

inline int64_t coef(int plane, int bits, bool is_signed) {
  const int64_t c = int64_t{1} << plane;
  return (is_signed && plane == bits - 1) ? -c : c;
}

}  // namespace

void gemm_planes_cpu(const uint64_t* xp, const uint64_t* wp, int64_t M, int64_t N, int64_t words,
                     int x_bits, int w_bits, bool is_signed, int32_t* out) {
  const int64_t x_stride = M * words;  // between planes of X
  const int64_t w_stride = N * words;  // between planes of W
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t m = 0; m < M; ++m) {
      int64_t acc = 0;
      for (int j = 0; j < w_bits; ++j) {
        const uint64_t* wrow = wp + j * w_stride + n * words;
        const int64_t cj = coef(j, w_bits, is_signed);
        for (int i = 0; i < x_bits; ++i) {
          const uint64_t* xrow = xp + i * x_stride + m * words;
          acc += coef(i, x_bits, is_signed) * cj * and_popcount(xrow, wrow, words);
        }
      }
      out[m * N + n] = static_cast<int32_t>(acc);
    }
  }
}

}  // namespace abq
