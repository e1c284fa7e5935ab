// Memory bounds of the tests that measure vdisk's peak RSS.
#pragma once

#include <cstdint>

namespace vdisk::test {

// Whether this build (the tests and the vdisk binary, built with the same
// flags) runs under AddressSanitizer: GCC says so with __SANITIZE_ADDRESS__,
// clang with __has_feature.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kAddressSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kAddressSanitized = true;
#else
inline constexpr bool kAddressSanitized = false;
#endif
#else
inline constexpr bool kAddressSanitized = false;
#endif

// The peak RSS (KiB) a memory-bound test allows vdisk for a bound of `kib` in
// a normal build. Under ASan (make test-asan) the process also carries the
// shadow memory (an eighth of what it maps), redzones around every block and
// the quarantine of freed blocks (up to 256 MiB): there the bound is four
// times plus 512 MiB (a 2^50-byte qcow2 convert peaked at 519 MiB under ASan,
// under 64 MiB without). A table sized by such a disk (tens of GiB), what
// these tests guard against, still fails.
inline constexpr uint64_t rss_bound_kib(uint64_t kib) {
  return kAddressSanitized ? 4 * kib + 512 * 1024 : kib;
}

}  // namespace vdisk::test
