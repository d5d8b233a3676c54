// Bit-plane GEMM on the CPU: popcount(AND) over packed words, recombined with +-2^(i+j).
// Independent of Python and torch; the bindings in bindings.cpp are the only caller.
#pragma once
#include <cstdint>

namespace abq {

// Number of 64-bit words per packed row for a reduction length K: K is zero-padded to a multiple
// of 128 bits so that the same buffer also feeds the 128-bit binary MMA of the CUDA kernel.
inline int64_t packed_words(int64_t K) { return ((K + 127) / 128) * 2; }

// codes: rows x K int32, row-major. Writes out[b][r][w] (bits x rows x words uint64) with bit k of
// word w = bit b of the two's-complement code at column 64*w + k (LSB-first); padding is zero.
void pack_planes_cpu(const int32_t* codes, int64_t rows, int64_t K, int bits, uint64_t* out,
                     int64_t words);

// out[m][n] = sum_{i,j} c_i c_j popcount(X_i[m] & W_j[n]) with c_b = 2^b, except the most
// significant plane of a signed operand, which has c = -2^(bits-1) (two's complement).
void gemm_planes_cpu(const uint64_t* xp, const uint64_t* wp, int64_t M, int64_t N, int64_t words,
                     int x_bits, int w_bits, bool is_signed, int32_t* out);

}  // namespace abq
