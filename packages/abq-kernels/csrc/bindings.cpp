// nanobind bindings (DLPack: torch, numpy and cupy arrays are passed zero-copy; no libtorch).
// Outputs are preallocated by the caller; every shape is checked here again.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>  // std::string results (cuda_device_check)

#include <cstdint>
#include <stdexcept>
#include <string>

#include "bitplane_cpu.h"
#ifdef ABQ_WITH_CUDA
#include "bitplane_cuda.h"
#endif

namespace nb = nanobind;

namespace {

template <typename Dev>
using Codes = nb::ndarray<const int32_t, nb::ndim<2>, nb::c_contig, Dev>;
template <typename Dev>
using PlanesIn = nb::ndarray<const int64_t, nb::ndim<3>, nb::c_contig, Dev>;
template <typename Dev>
using PlanesOut = nb::ndarray<int64_t, nb::ndim<3>, nb::c_contig, Dev>;
template <typename Dev>
using Out = nb::ndarray<int32_t, nb::ndim<2>, nb::c_contig, Dev>;

void check_bits(const char* name, int bits) {
  if (bits < 1 || bits > 8) {
    throw std::invalid_argument(std::string(name) + " must be in 1..8, got " + std::to_string(bits));
  }
}

template <typename Dev>
int64_t check_pack(const Codes<Dev>& codes, int bits, const PlanesOut<Dev>& out) {
  check_bits("bits", bits);
  const int64_t rows = static_cast<int64_t>(codes.shape(0));
  const int64_t K = static_cast<int64_t>(codes.shape(1));
  const int64_t words = abq::packed_words(K);
  if (static_cast<int64_t>(out.shape(0)) != bits || static_cast<int64_t>(out.shape(1)) != rows ||
      static_cast<int64_t>(out.shape(2)) != words) {
    throw std::invalid_argument("out must have shape (bits, rows, packed_words(K)) = (" +
                                std::to_string(bits) + ", " + std::to_string(rows) + ", " +
                                std::to_string(words) + ")");
  }
  return words;
}

template <typename Dev>
void check_gemm(const PlanesIn<Dev>& xp, const PlanesIn<Dev>& wp, int x_bits, int w_bits,
                const Out<Dev>& out) {
  check_bits("x_bits", x_bits);
  check_bits("w_bits", w_bits);
  if (static_cast<int>(xp.shape(0)) != x_bits) throw std::invalid_argument("xp.shape[0] != x_bits");
  if (static_cast<int>(wp.shape(0)) != w_bits) throw std::invalid_argument("wp.shape[0] != w_bits");
  if (xp.shape(2) != wp.shape(2)) {
    throw std::invalid_argument("xp and wp have different packed K (" + std::to_string(xp.shape(2)) +
                                " vs " + std::to_string(wp.shape(2)) + " words)");
  }
  if (xp.shape(2) % 2 != 0) throw std::invalid_argument("packed K must be a multiple of 2 words");
  if (out.shape(0) != xp.shape(1) || out.shape(1) != wp.shape(1)) {
    throw std::invalid_argument("out must have shape (M, N)");
  }
}

void pack_cpu(const Codes<nb::device::cpu>& codes, int bits,
              const PlanesOut<nb::device::cpu>& out) {
  const int64_t words = check_pack(codes, bits, out);
  abq::pack_planes_cpu(codes.data(), static_cast<int64_t>(codes.shape(0)),
                       static_cast<int64_t>(codes.shape(1)), bits,
                       reinterpret_cast<uint64_t*>(out.data()), words);
}

void gemm_cpu(const PlanesIn<nb::device::cpu>& xp, const PlanesIn<nb::device::cpu>& wp,
              int x_bits, int w_bits, bool is_signed, const Out<nb::device::cpu>& out) {
  check_gemm(xp, wp, x_bits, w_bits, out);
  abq::gemm_planes_cpu(reinterpret_cast<const uint64_t*>(xp.data()),
                       reinterpret_cast<const uint64_t*>(wp.data()),
                       static_cast<int64_t>(xp.shape(1)), static_cast<int64_t>(wp.shape(1)),
                       static_cast<int64_t>(xp.shape(2)), x_bits, w_bits, is_signed, out.data());
}

#ifdef ABQ_WITH_CUDA
void raise_if(const std::string& err) {
  if (!err.empty()) throw std::runtime_error("CUDA kernel failed: " + err);
}

void pack_cuda(const Codes<nb::device::cuda>& codes, int bits,
               const PlanesOut<nb::device::cuda>& out, uintptr_t stream) {
  const int64_t words = check_pack(codes, bits, out);
  raise_if(abq::pack_planes_cuda(codes.data(), static_cast<int64_t>(codes.shape(0)),
                                 static_cast<int64_t>(codes.shape(1)), bits,
                                 reinterpret_cast<uint64_t*>(out.data()), words, stream));
}

void gemm_cuda(const PlanesIn<nb::device::cuda>& xp, const PlanesIn<nb::device::cuda>& wp,
               int x_bits, int w_bits, bool is_signed, const Out<nb::device::cuda>& out,
               uintptr_t stream) {
  check_gemm(xp, wp, x_bits, w_bits, out);
  raise_if(abq::gemm_planes_cuda(reinterpret_cast<const uint64_t*>(xp.data()),
                                 reinterpret_cast<const uint64_t*>(wp.data()),
                                 static_cast<int64_t>(xp.shape(1)),
                                 static_cast<int64_t>(wp.shape(1)),
                                 static_cast<int64_t>(xp.shape(2)), x_bits, w_bits, is_signed,
                                 out.data(), stream));
}
#endif

}  // namespace

NB_MODULE(_ext, m) {
  m.doc() = "abq-kernels compiled bit-plane kernels (see abq_kernels.kernels for the API)";
  m.def("packed_words", &abq::packed_words, nb::arg("k"),
        "64-bit words per packed row for reduction length k (k padded to a multiple of 128).");
  m.def("pack_cpu", &pack_cpu, nb::arg("codes"), nb::arg("bits"), nb::arg("out"),
        nb::call_guard<nb::gil_scoped_release>());
  m.def("gemm_cpu", &gemm_cpu, nb::arg("xp"), nb::arg("wp"), nb::arg("x_bits"), nb::arg("w_bits"),
        nb::arg("is_signed"), nb::arg("out"), nb::call_guard<nb::gil_scoped_release>());
#ifdef ABQ_WITH_CUDA
  m.attr("HAS_CUDA") = true;
  m.def("pack_cuda", &pack_cuda, nb::arg("codes"), nb::arg("bits"), nb::arg("out"),
        nb::arg("stream"), nb::call_guard<nb::gil_scoped_release>());
  m.def("gemm_cuda", &gemm_cuda, nb::arg("xp"), nb::arg("wp"), nb::arg("x_bits"),
        nb::arg("w_bits"), nb::arg("is_signed"), nb::arg("out"), nb::arg("stream"),
        nb::call_guard<nb::gil_scoped_release>());
  m.def("cuda_device_check", &abq::cuda_device_check, nb::arg("device"));
#else
  m.attr("HAS_CUDA") = false;
#endif
}
