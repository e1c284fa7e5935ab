#include "formats/core/deflate.h"

#include <zlib.h>

#include <cstring>
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

// zlib inflate; the fallback when libdeflate is missing or refuses a stream
// that zlib accepts (a bare stream cut right after the output is full).
bool zlib_inflate(DeflateWrapper wrapper, const uint8_t* in, size_t in_len, uint8_t* out,
                  size_t out_len) {
  z_stream z{};
  if (inflateInit2(&z, window_bits(wrapper)) != Z_OK) return false;
  z.next_in = const_cast<Bytef*>(in);
  z.avail_in = static_cast<uInt>(in_len);
  z.next_out = out;
  z.avail_out = static_cast<uInt>(out_len);
  int r = inflate(&z, Z_FINISH);
  size_t got = out_len - z.avail_out;
  inflateEnd(&z);
  const bool full_bare =
      wrapper == DeflateWrapper::kRaw && got == out_len && (r == Z_BUF_ERROR || r == Z_OK);
  if (r != Z_STREAM_END && !full_bare) return false;
  if (got < out_len) std::memset(out + got, 0, out_len - got);
  return true;
}

}  // namespace

#ifdef VDISK_HAVE_LIBDEFLATE
struct DeflateCompressor::Impl {
  libdeflate_compressor* c = nullptr;
  DeflateWrapper wrapper;
};
DeflateCompressor::DeflateCompressor(DeflateWrapper wrapper, int level)
    : impl_(std::make_unique<Impl>()) {
  impl_->wrapper = wrapper;
  impl_->c = libdeflate_alloc_compressor(level);
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

bool inflate_buffer(DeflateWrapper wrapper, const uint8_t* in, size_t in_len, uint8_t* out,
                    size_t out_len) {
  // A decompressor is ~32 KiB of tables: one per thread, reused.
  struct Holder {
    libdeflate_decompressor* d = libdeflate_alloc_decompressor();
    ~Holder() { libdeflate_free_decompressor(d); }
  };
  thread_local Holder h;
  if (!h.d) return false;
  size_t got = 0, used = 0;
  libdeflate_result r =
      wrapper == DeflateWrapper::kZlib
          ? libdeflate_zlib_decompress_ex(h.d, in, in_len, out, out_len, &used, &got)
          : libdeflate_deflate_decompress_ex(h.d, in, in_len, out, out_len, &used, &got);
  if (r != LIBDEFLATE_SUCCESS) return zlib_inflate(wrapper, in, in_len, out, out_len);
  if (got < out_len) std::memset(out + got, 0, out_len - got);
  return true;
}
#else
struct DeflateCompressor::Impl {
  z_stream z{};
};
DeflateCompressor::DeflateCompressor(DeflateWrapper wrapper, int level)
    : impl_(std::make_unique<Impl>()) {
  if (deflateInit2(&impl_->z, level, Z_DEFLATED, window_bits(wrapper), 8, Z_DEFAULT_STRATEGY) !=
      Z_OK)
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

bool inflate_buffer(DeflateWrapper wrapper, const uint8_t* in, size_t in_len, uint8_t* out,
                    size_t out_len) {
  return zlib_inflate(wrapper, in, in_len, out, out_len);
}
#endif

}  // namespace vdisk
