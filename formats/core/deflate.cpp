#include "formats/core/deflate.h"

#include <zlib.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <new>
#include <stdexcept>

#ifdef VDISK_HAVE_LIBDEFLATE
#include <libdeflate.h>
#endif

namespace vdisk {

namespace {

// zlib's windowBits: 15 with the zlib wrapper, -15 for a bare stream.
int window_bits(DeflateWrapper w) {
  return w == DeflateWrapper::kZlib ? 15 : -15;
}

// zlib inflate into at most out_len bytes; the bytes produced, or nullopt.
// A bare stream that fills the output before its end counts as complete.
std::optional<size_t> zlib_inflate(DeflateWrapper wrapper, const uint8_t* in, size_t in_len,
                                   uint8_t* out, size_t out_len) {
  if (in_len > UINT_MAX || out_len > UINT_MAX) return std::nullopt;
  z_stream z{};
  if (inflateInit2(&z, window_bits(wrapper)) != Z_OK) return std::nullopt;
  z.next_in = const_cast<Bytef*>(in);
  z.avail_in = static_cast<uInt>(in_len);
  z.next_out = out;
  z.avail_out = static_cast<uInt>(out_len);
  int r = inflate(&z, Z_FINISH);
  size_t got = out_len - z.avail_out;
  inflateEnd(&z);
  const bool full_bare =
      wrapper == DeflateWrapper::kRaw && got == out_len && (r == Z_BUF_ERROR || r == Z_OK);
  if (r != Z_STREAM_END && !full_bare) return std::nullopt;
  return got;
}

#ifdef VDISK_HAVE_LIBDEFLATE
// libdeflate's decompressor is ~32 KiB of tables: one per thread, reused.
// Falls back to zlib for what libdeflate refuses and zlib accepts (a bare
// stream cut right after the output is full).
std::optional<size_t> fast_inflate(DeflateWrapper wrapper, const uint8_t* in, size_t in_len,
                                   uint8_t* out, size_t out_len) {
  struct Holder {
    libdeflate_decompressor* d = libdeflate_alloc_decompressor();
    ~Holder() { libdeflate_free_decompressor(d); }
  };
  thread_local Holder h;
  if (!h.d) return std::nullopt;
  size_t got = 0, used = 0;
  libdeflate_result r =
      wrapper == DeflateWrapper::kZlib
          ? libdeflate_zlib_decompress_ex(h.d, in, in_len, out, out_len, &used, &got)
          : libdeflate_deflate_decompress_ex(h.d, in, in_len, out, out_len, &used, &got);
  if (r == LIBDEFLATE_SUCCESS) return got;
  if (wrapper == DeflateWrapper::kRaw) return zlib_inflate(wrapper, in, in_len, out, out_len);
  return std::nullopt;
}
#else
std::optional<size_t> fast_inflate(DeflateWrapper wrapper, const uint8_t* in, size_t in_len,
                                   uint8_t* out, size_t out_len) {
  return zlib_inflate(wrapper, in, in_len, out, out_len);
}
#endif

}  // namespace

#ifdef VDISK_HAVE_LIBDEFLATE
struct DeflateCompressor::Impl {
  libdeflate_compressor* c = nullptr;
  DeflateWrapper wrapper;
};
DeflateCompressor::DeflateCompressor(DeflateWrapper wrapper, int level)
    : impl_(std::make_unique<Impl>()) {
  impl_->wrapper = wrapper;
  impl_->c = libdeflate_alloc_compressor(std::clamp(level, 0, 12));
  if (!impl_->c) throw std::bad_alloc();
}
DeflateCompressor::~DeflateCompressor() {
  libdeflate_free_compressor(impl_->c);
}
void DeflateCompressor::compress(const uint8_t* in, size_t len, std::vector<uint8_t>& out) {
  const bool zlib = impl_->wrapper == DeflateWrapper::kZlib;
  out.resize(zlib ? libdeflate_zlib_compress_bound(impl_->c, len)
                  : libdeflate_deflate_compress_bound(impl_->c, len));
  size_t n = zlib ? libdeflate_zlib_compress(impl_->c, in, len, out.data(), out.size())
                  : libdeflate_deflate_compress(impl_->c, in, len, out.data(), out.size());
  if (n == 0) throw std::runtime_error("libdeflate compression failed");
  out.resize(n);
}
const char* DeflateCompressor::library() {
  return "libdeflate";
}
int DeflateCompressor::max_level() {
  return 12;
}
uint32_t adler32(const void* data, size_t len, uint32_t adler) {
  return libdeflate_adler32(adler, data, len);
}
#else
struct DeflateCompressor::Impl {
  z_stream z{};
};
DeflateCompressor::DeflateCompressor(DeflateWrapper wrapper, int level)
    : impl_(std::make_unique<Impl>()) {
  if (deflateInit2(&impl_->z, std::clamp(level, 0, 9), Z_DEFLATED, window_bits(wrapper), 8,
                   Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::bad_alloc();
}
DeflateCompressor::~DeflateCompressor() {
  deflateEnd(&impl_->z);
}
void DeflateCompressor::compress(const uint8_t* in, size_t len, std::vector<uint8_t>& out) {
  z_stream& z = impl_->z;
  deflateReset(&z);
  out.resize(deflateBound(&z, static_cast<uLong>(len)));
  z.next_in = const_cast<Bytef*>(in);
  z.avail_in = static_cast<uInt>(len);
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) throw std::runtime_error("deflate failed");
  out.resize(out.size() - z.avail_out);
}
const char* DeflateCompressor::library() {
  return "zlib";
}
int DeflateCompressor::max_level() {
  return 9;
}
uint32_t adler32(const void* data, size_t len, uint32_t adler) {
  const auto* p = static_cast<const Bytef*>(data);
  while (len > 0) {
    uInt n = static_cast<uInt>(std::min<size_t>(len, 1u << 30));
    adler = static_cast<uint32_t>(::adler32(adler, p, n));
    p += n, len -= n;
  }
  return adler;
}
#endif

bool inflate_buffer(DeflateWrapper wrapper, const uint8_t* in, size_t in_len, uint8_t* out,
                    size_t out_len) {
  std::optional<size_t> got = fast_inflate(wrapper, in, in_len, out, out_len);
  if (!got) return false;
  if (*got < out_len) std::memset(out + *got, 0, out_len - *got);
  return true;
}

std::optional<size_t> inflate_zlib(const uint8_t* in, size_t in_len, uint8_t* out, size_t out_cap) {
  return fast_inflate(DeflateWrapper::kZlib, in, in_len, out, out_cap);
}

std::optional<std::vector<uint8_t>> inflate_zlib_bounded(const uint8_t* in, size_t in_len,
                                                         size_t max_out) {
  if (in_len > UINT_MAX) return std::nullopt;
  z_stream z{};
  if (inflateInit(&z) != Z_OK) return std::nullopt;
  std::vector<uint8_t> out(std::min<size_t>(max_out, std::max<size_t>(4096, in_len * 4)));
  z.next_in = const_cast<Bytef*>(in);
  z.avail_in = static_cast<uInt>(in_len);
  int r = Z_OK;
  size_t got = 0;
  for (;;) {
    z.next_out = out.data() + got;
    z.avail_out = static_cast<uInt>(std::min<size_t>(out.size() - got, UINT_MAX));
    const uInt before = z.avail_out;
    r = inflate(&z, Z_NO_FLUSH);
    got += before - z.avail_out;
    if (r == Z_STREAM_END) break;
    if (r != Z_OK && r != Z_BUF_ERROR) break;
    if (got < out.size()) {
      if (z.avail_in == 0) break;  // truncated stream
      continue;
    }
    if (out.size() >= max_out) {
      r = Z_MEM_ERROR;  // would exceed the bound
      break;
    }
    out.resize(std::min<size_t>(max_out, out.size() * 2));
  }
  inflateEnd(&z);
  if (r != Z_STREAM_END) return std::nullopt;
  out.resize(got);
  return out;
}

}  // namespace vdisk
