#include "formats/qcow2/qcow2_layout.h"

#include <cstring>

#include "formats/core/endian.h"

namespace vdisk::qcow2 {

Header decode_header(const uint8_t* p, size_t len) {
  Header h;
  h.version = load_be32(p + kHdrVersion);
  h.backing_file_offset = load_be64(p + kHdrBackingOffset);
  h.backing_file_size = load_be32(p + kHdrBackingSize);
  h.cluster_bits = load_be32(p + kHdrClusterBits);
  h.size = load_be64(p + kHdrSize);
  h.crypt_method = load_be32(p + kHdrCryptMethod);
  h.l1_size = load_be32(p + kHdrL1Size);
  h.l1_table_offset = load_be64(p + kHdrL1Offset);
  h.refcount_table_offset = load_be64(p + kHdrRefcountOffset);
  h.refcount_table_clusters = load_be32(p + kHdrRefcountClusters);
  h.nb_snapshots = load_be32(p + kHdrNbSnapshots);
  h.snapshots_offset = load_be64(p + kHdrSnapshotsOffset);
  if (h.version < 3 || len < kHeaderV3MinLength) return h;  // v2: the implied values
  h.incompatible = load_be64(p + kHdrIncompatible);
  h.compatible = load_be64(p + kHdrCompatible);
  h.autoclear = load_be64(p + kHdrAutoclear);
  h.refcount_order = load_be32(p + kHdrRefcountOrder);
  h.header_length = load_be32(p + kHdrHeaderLength);
  // "Additional fields": present only when header_length covers them.
  if (h.header_length > kHdrCompressionType && len > kHdrCompressionType)
    h.compression_type = p[kHdrCompressionType];
  return h;
}

void encode_header(const Header& h, uint8_t* p) {
  std::memset(p, 0, h.header_length);
  std::memcpy(p + kHdrMagic, kMagic, 4);
  store_be32(p + kHdrVersion, h.version);
  store_be64(p + kHdrBackingOffset, h.backing_file_offset);
  store_be32(p + kHdrBackingSize, h.backing_file_size);
  store_be32(p + kHdrClusterBits, h.cluster_bits);
  store_be64(p + kHdrSize, h.size);
  store_be32(p + kHdrCryptMethod, h.crypt_method);
  store_be32(p + kHdrL1Size, h.l1_size);
  store_be64(p + kHdrL1Offset, h.l1_table_offset);
  store_be64(p + kHdrRefcountOffset, h.refcount_table_offset);
  store_be32(p + kHdrRefcountClusters, h.refcount_table_clusters);
  store_be32(p + kHdrNbSnapshots, h.nb_snapshots);
  store_be64(p + kHdrSnapshotsOffset, h.snapshots_offset);
  if (h.version < 3) return;
  store_be64(p + kHdrIncompatible, h.incompatible);
  store_be64(p + kHdrCompatible, h.compatible);
  store_be64(p + kHdrAutoclear, h.autoclear);
  store_be32(p + kHdrRefcountOrder, h.refcount_order);
  store_be32(p + kHdrHeaderLength, h.header_length);
  if (h.header_length > kHdrCompressionType) p[kHdrCompressionType] = h.compression_type;
}

void append_extension(std::vector<uint8_t>& out, uint32_t type, const void* data, size_t len) {
  const size_t at = out.size();
  out.resize(at + 8 + (len + 7) / 8 * 8, 0);
  store_be32(out.data() + at, type);
  store_be32(out.data() + at + 4, static_cast<uint32_t>(len));
  if (len) std::memcpy(out.data() + at + 8, data, len);
}

const std::vector<FeatureName>& known_feature_names() {
  static const std::vector<FeatureName> names = {
      {0, 0, "dirty bit"},        {0, 1, "corrupt bit"},         {0, 2, "external data file"},
      {0, 3, "compression type"}, {0, 4, "extended L2 entries"}, {1, 0, "lazy refcounts"},
      {2, 0, "bitmaps"},          {2, 1, "raw external data"},
  };
  return names;
}

uint64_t load_refcount(const uint8_t* block, uint64_t index, uint32_t order) {
  const uint32_t bits = 1u << order;
  if (bits < 8) {
    const uint64_t bit = index * bits;
    return (block[bit / 8] >> (bit % 8)) & ((1u << bits) - 1);
  }
  const uint8_t* e = block + index * (bits / 8);
  switch (bits) {
    case 8:
      return e[0];
    case 16:
      return load_be16(e);
    case 32:
      return load_be32(e);
    default:
      return load_be64(e);
  }
}

void store_refcount(uint8_t* block, uint64_t index, uint32_t order, uint64_t value) {
  const uint32_t bits = 1u << order;
  if (bits < 8) {
    const uint64_t bit = index * bits;
    const uint8_t mask = static_cast<uint8_t>(((1u << bits) - 1) << (bit % 8));
    block[bit / 8] = static_cast<uint8_t>((block[bit / 8] & ~mask) | ((value << (bit % 8)) & mask));
    return;
  }
  uint8_t* e = block + index * (bits / 8);
  switch (bits) {
    case 8:
      e[0] = static_cast<uint8_t>(value);
      break;
    case 16:
      store_be16(e, static_cast<uint16_t>(value));
      break;
    case 32:
      store_be32(e, static_cast<uint32_t>(value));
      break;
    default:
      store_be64(e, value);
  }
}

}  // namespace vdisk::qcow2
