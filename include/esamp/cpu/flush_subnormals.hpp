// FlushSubnormals: while one lives, the calling thread's float arithmetic treats subnormal inputs
// as zero and flushes subnormal results to zero (x86's MXCSR DAZ and FTZ bits); its destructor
// restores the thread's previous mode, so the engine's own arithmetic is never changed.
//
// A distiller that fits its rows closely has gradients far below 1e-19, whose squares and
// products are subnormal, and Intel cores take a microcode assist of about a hundred cycles for
// each such operand: on the overhead benchmark's smooth synthetic rows (`--work`) 7.5% of the
// gradient values were that small and esamp's training step ran three times slower for it (its
// decode steps on a random-weights model showed none; bench/results/overhead-llama-cpp.md). The
// values flushed are below 1.2e-38, far under anything the distiller's update can resolve. On other
// architectures it does nothing.
#pragma once

#ifdef __SSE2__
#include <xmmintrin.h>
#define ESAMP_HAVE_MXCSR 1
#endif

namespace esamp::cpu {

class FlushSubnormals {
 public:
#ifdef ESAMP_HAVE_MXCSR
  FlushSubnormals() : saved_(_mm_getcsr()) {
    _mm_setcsr(saved_ | kFlushToZero | kDenormalsAreZero);
  }
  ~FlushSubnormals() { _mm_setcsr(saved_); }
#else
  FlushSubnormals() = default;
#endif
  FlushSubnormals(const FlushSubnormals&) = delete;
  FlushSubnormals& operator=(const FlushSubnormals&) = delete;

 private:
#ifdef ESAMP_HAVE_MXCSR
  static constexpr unsigned kFlushToZero = 0x8000, kDenormalsAreZero = 0x0040;
  unsigned saved_;
#endif
};

}  // namespace esamp::cpu
