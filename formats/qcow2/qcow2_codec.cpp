#include "formats/qcow2/qcow2_codec.h"

#include <zstd.h>

#include <cstring>
#include <stdexcept>

#include "formats/core/deflate.h"
#include "formats/qcow2/qcow2_layout.h"

namespace vdisk::qcow2 {

namespace {

// zstd: QEMU writes one frame per cluster. The frame's own size is not
// stored, only the sectors it occupies, so the data is streamed until the
// cluster is full rather than decoded as a whole buffer.
bool zstd_decompress(const uint8_t* in, size_t in_len, uint8_t* out, size_t out_len) {
  struct Holder {
    ZSTD_DCtx* d = ZSTD_createDCtx();
    ~Holder() { ZSTD_freeDCtx(d); }
  };
  thread_local Holder h;
  if (!h.d) return false;
  ZSTD_DCtx_reset(h.d, ZSTD_reset_session_only);
  ZSTD_inBuffer ib{in, in_len, 0};
  ZSTD_outBuffer ob{out, out_len, 0};
  while (ob.pos < ob.size) {
    const size_t before_in = ib.pos, before_out = ob.pos;
    size_t r = ZSTD_decompressStream(h.d, &ob, &ib);
    if (ZSTD_isError(r)) return false;
    if (r == 0 && ob.pos < ob.size) return false;                   // the frame ended short
    if (ib.pos == before_in && ob.pos == before_out) return false;  // no progress: truncated
  }
  return true;
}

class DeflateClusterCompressor final : public ClusterCompressor {
 public:
  void compress(const uint8_t* in, size_t len, std::vector<uint8_t>& out) override {
    c_.compress(in, len, out);
  }

 private:
  DeflateCompressor c_{DeflateWrapper::kRaw};
};

class ZstdClusterCompressor final : public ClusterCompressor {
 public:
  ZstdClusterCompressor() : c_(ZSTD_createCCtx()) {
    if (!c_) throw std::bad_alloc();
  }
  ~ZstdClusterCompressor() override { ZSTD_freeCCtx(c_); }
  void compress(const uint8_t* in, size_t len, std::vector<uint8_t>& out) override {
    out.resize(ZSTD_compressBound(len));
    size_t n = ZSTD_compressCCtx(c_, out.data(), out.size(), in, len, ZSTD_CLEVEL_DEFAULT);
    if (ZSTD_isError(n)) throw std::runtime_error(ZSTD_getErrorName(n));
    out.resize(n);
  }

 private:
  ZSTD_CCtx* c_;
};

}  // namespace

bool decompress_cluster(uint8_t compression_type, const uint8_t* in, size_t in_len, uint8_t* out,
                        size_t out_len) {
  if (compression_type == kCompressionZstd) return zstd_decompress(in, in_len, out, out_len);
  if (compression_type != kCompressionDeflate) return false;
  // inflate_buffer zero-pads a stream that ends early; QEMU's clusters
  // always inflate to a whole cluster, so that leniency costs nothing.
  return inflate_buffer(DeflateWrapper::kRaw, in, in_len, out, out_len);
}

std::unique_ptr<ClusterCompressor> make_compressor(uint8_t compression_type) {
  if (compression_type == kCompressionZstd) return std::make_unique<ZstdClusterCompressor>();
  return std::make_unique<DeflateClusterCompressor>();
}

}  // namespace vdisk::qcow2
