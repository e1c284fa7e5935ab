#include "formats/vmdk/vmdk_layout.h"

#include <cstring>

#include "formats/core/endian.h"

namespace vdisk::vmdk {

std::optional<SparseHeader> decode_sparse_header(const uint8_t* p) {
  if (load_le32(p) != kSparseMagic) return std::nullopt;
  SparseHeader h;
  h.version = load_le32(p + 4);
  h.flags = load_le32(p + 8);
  h.capacity = load_le64(p + 12);
  h.grain_size = load_le64(p + 20);
  h.descriptor_offset = load_le64(p + 28);
  h.descriptor_size = load_le64(p + 36);
  h.num_gtes_per_gt = load_le32(p + 44);
  h.rgd_offset = load_le64(p + 48);
  h.gd_offset = load_le64(p + 56);
  h.overhead = load_le64(p + 64);
  h.unclean_shutdown = p[72];
  h.compress_algorithm = load_le16(p + 77);
  return h;
}

void encode_sparse_header(const SparseHeader& h, uint8_t* p) {
  std::memset(p, 0, kSector);
  store_le32(p, kSparseMagic);
  store_le32(p + 4, h.version);
  store_le32(p + 8, h.flags);
  store_le64(p + 12, h.capacity);
  store_le64(p + 20, h.grain_size);
  store_le64(p + 28, h.descriptor_offset);
  store_le64(p + 36, h.descriptor_size);
  store_le32(p + 44, h.num_gtes_per_gt);
  store_le64(p + 48, h.rgd_offset);
  store_le64(p + 56, h.gd_offset);
  store_le64(p + 64, h.overhead);
  p[72] = h.unclean_shutdown;
  // The newline-detection characters let a reader notice a file mangled by a
  // text-mode FTP transfer (VDF, "Hosted Sparse Extent Header").
  p[73] = '\n';
  p[74] = ' ';
  p[75] = '\r';
  p[76] = '\n';
  store_le16(p + 77, h.compress_algorithm);
}

std::optional<SeSparseHeader> decode_sesparse_header(const uint8_t* p) {
  if (load_le64(p) != kSeSparseMagic) return std::nullopt;
  SeSparseHeader h;
  h.version = load_le64(p + 8);
  h.capacity = load_le64(p + 16);
  h.grain_size = load_le64(p + 24);
  h.grain_table_size = load_le64(p + 32);
  h.flags = load_le64(p + 40);
  h.grain_dir_offset = load_le64(p + kSeGrainDirOffset);
  h.grain_dir_size = load_le64(p + kSeGrainDirOffset + 8);
  h.grain_tables_offset = load_le64(p + kSeGrainTablesOffset);
  h.grain_tables_size = load_le64(p + kSeGrainTablesOffset + 8);
  h.grains_offset = load_le64(p + kSeGrainsOffset);
  h.grains_size = load_le64(p + kSeGrainsOffset + 8);
  return h;
}

}  // namespace vdisk::vmdk
