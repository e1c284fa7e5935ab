// The descriptors of the compressed raw formats (read: gzip, xz, zstd,
// bzip2) and the compression option of the raw writer (write: gzip, xz, zstd).
#include <cstring>

#include "formats/compressed/codec.h"
#include "formats/compressed/compressed_layout.h"
#include "formats/compressed/compressed_reader.h"
#include "formats/compressed/compressed_writer.h"
#include "formats/core/endian.h"
#include "formats/core/format.h"

namespace vdisk::compressed {

namespace {

int probe_gzip(const ProbeInput& in) {
  const auto& h = in.head;
  // ID1 ID2 CM=8, FLG reserved bits clear (RFC 1952 2.3.1).
  return h.size() >= 10 && h[0] == kGzipId1 && h[1] == kGzipId2 && h[2] == kGzipDeflate &&
                 (h[3] & 0xe0) == 0
             ? kProbeSignature
             : 0;
}

int probe_xz(const ProbeInput& in) {
  return in.head.size() >= kXzStreamHeader && std::memcmp(in.head.data(), kXzMagic, 6) == 0
             ? kProbeSignature
             : 0;
}

int probe_zstd(const ProbeInput& in) {
  const auto& h = in.head;
  if (h.size() < 8) return 0;
  uint32_t m = load_le32(h.data());
  if (m == kZstdMagic) return kProbeSignature;
  // A skippable frame first (metadata), then a real frame.
  if ((m & kZstdSkippableMask) == kZstdSkippableMagic) {
    uint64_t next = 8 + uint64_t{load_le32(h.data() + 4)};
    if (next + 4 <= h.size() && load_le32(h.data() + next) == kZstdMagic) return kProbeSignature;
  }
  return 0;
}

int probe_bzip2(const ProbeInput& in) {
  const auto& h = in.head;
  // "BZh1".."BZh9", then the first block's magic (byte-aligned: it starts at
  // bit 32) or the end-of-stream magic of an empty stream.
  static const uint8_t kBlock[6] = {0x31, 0x41, 0x59, 0x26, 0x53, 0x59};
  static const uint8_t kEos[6] = {0x17, 0x72, 0x45, 0x38, 0x50, 0x90};
  if (h.size() < 10 || h[0] != 'B' || h[1] != 'Z' || h[2] != 'h' || h[3] < '1' || h[3] > '9')
    return 0;
  return std::memcmp(h.data() + 4, kBlock, 6) == 0 || std::memcmp(h.data() + 4, kEos, 6) == 0
             ? kProbeSignature
             : 0;
}

BlockDevicePtr open_gzip(std::shared_ptr<const File> f, const OpenOptions& o) {
  auto c = make_gzip_codec(f);
  return open_compressed(std::move(f), o, std::move(c));
}
BlockDevicePtr open_xz(std::shared_ptr<const File> f, const OpenOptions& o) {
  auto c = make_xz_codec(f);
  return open_compressed(std::move(f), o, std::move(c));
}
BlockDevicePtr open_zstd(std::shared_ptr<const File> f, const OpenOptions& o) {
  auto c = make_zstd_codec(f);
  return open_compressed(std::move(f), o, std::move(c));
}
BlockDevicePtr open_bzip2(std::shared_ptr<const File> f, const OpenOptions& o) {
  auto c = make_bzip2_codec(f);
  return open_compressed(std::move(f), o, std::move(c));
}

}  // namespace

const FormatDescriptor& gzip_descriptor() {
  static const FormatDescriptor d{
      .name = "gzip",
      .aliases = {"gz"},
      .description =
          "raw disk image compressed with gzip (read; write with -O raw -o compression=gzip)",
      .extensions = {"gz", "gzip", "tgz"},
      .probe = probe_gzip,
      .open = open_gzip,
  };
  return d;
}

const FormatDescriptor& xz_descriptor() {
  static const FormatDescriptor d{
      .name = "xz",
      .description =
          "raw disk image compressed with xz (read; write with -O raw -o compression=xz)",
      .extensions = {"xz", "txz"},
      .probe = probe_xz,
      .open = open_xz,
  };
  return d;
}

const FormatDescriptor& zstd_descriptor() {
  static const FormatDescriptor d{
      .name = "zstd",
      .aliases = {"zst"},
      .description =
          "raw disk image compressed with zstd, seekable format included (read; write with -O raw "
          "-o compression=zstd)",
      .extensions = {"zst", "zstd"},
      .probe = probe_zstd,
      .open = open_zstd,
  };
  return d;
}

const FormatDescriptor& bzip2_descriptor() {
  static const FormatDescriptor d{
      .name = "bzip2",
      .aliases = {"bz2"},
      .description = "raw disk image compressed with bzip2 (read)",
      .extensions = {"bz2", "bzip2"},
      .probe = probe_bzip2,
      .open = open_bzip2,
  };
  return d;
}

}  // namespace vdisk::compressed
