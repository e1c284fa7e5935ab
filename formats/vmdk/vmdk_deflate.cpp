#include "formats/vmdk/vmdk_deflate.h"

#include <zlib.h>

#include <cstring>
#include <stdexcept>

#ifdef VDISK_HAVE_LIBDEFLATE
#include <libdeflate.h>
#endif

namespace vdisk::vmdk {

#ifdef VDISK_HAVE_LIBDEFLATE
struct GrainCompressor::Impl {
  libdeflate_compressor* c = nullptr;
};
GrainCompressor::GrainCompressor(int level) : impl_(std::make_unique<Impl>()) {
  impl_->c = libdeflate_alloc_compressor(level);
  if (!impl_->c) throw std::bad_alloc();
}
GrainCompressor::~GrainCompressor() {
  libdeflate_free_compressor(impl_->c);
}
void GrainCompressor::compress(const uint8_t* in, size_t len, std::vector<uint8_t>& out) {
  out.resize(libdeflate_zlib_compress_bound(impl_->c, len));
  size_t n = libdeflate_zlib_compress(impl_->c, in, len, out.data(), out.size());
  if (n == 0) throw std::runtime_error("libdeflate_zlib_compress failed");
  out.resize(n);
}
const char* GrainCompressor::library() {
  return "libdeflate";
}

bool inflate_grain(const uint8_t* in, size_t in_len, uint8_t* out, size_t out_len) {
  // A decompressor is ~32 KiB of tables: one per thread, reused.
  struct Holder {
    libdeflate_decompressor* d = libdeflate_alloc_decompressor();
    ~Holder() { libdeflate_free_decompressor(d); }
  };
  thread_local Holder h;
  if (!h.d) return false;
  size_t got = 0;
  libdeflate_result r = libdeflate_zlib_decompress(h.d, in, in_len, out, out_len, &got);
  if (r != LIBDEFLATE_SUCCESS && r != LIBDEFLATE_SHORT_OUTPUT) return false;
  if (got < out_len) std::memset(out + got, 0, out_len - got);
  return true;
}
#else
struct GrainCompressor::Impl {
  z_stream z{};
};
GrainCompressor::GrainCompressor(int level) : impl_(std::make_unique<Impl>()) {
  if (deflateInit(&impl_->z, level) != Z_OK) throw std::bad_alloc();
}
GrainCompressor::~GrainCompressor() {
  deflateEnd(&impl_->z);
}
void GrainCompressor::compress(const uint8_t* in, size_t len, std::vector<uint8_t>& out) {
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
const char* GrainCompressor::library() {
  return "zlib";
}

bool inflate_grain(const uint8_t* in, size_t in_len, uint8_t* out, size_t out_len) {
  z_stream z{};
  if (inflateInit(&z) != Z_OK) return false;
  z.next_in = const_cast<Bytef*>(in);
  z.avail_in = static_cast<uInt>(in_len);
  z.next_out = out;
  z.avail_out = static_cast<uInt>(out_len);
  int r = inflate(&z, Z_FINISH);
  size_t got = out_len - z.avail_out;
  inflateEnd(&z);
  if (r != Z_STREAM_END) return false;
  if (got < out_len) std::memset(out + got, 0, out_len - got);
  return true;
}
#endif

}  // namespace vdisk::vmdk
