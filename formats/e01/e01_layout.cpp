#include "formats/e01/e01_layout.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "formats/core/deflate.h"
#include "formats/core/endian.h"

namespace vdisk::e01 {

SectionDescriptor decode_section_descriptor(const uint8_t* p) {
  SectionDescriptor d;
  size_t n = 0;
  while (n < kSdTypeSize && p[kSdType + n] != 0) ++n;
  d.type.assign(reinterpret_cast<const char*>(p + kSdType), n);
  d.next = load_le64(p + kSdNext);
  d.size = load_le64(p + kSdSize);
  d.checksum = load_le32(p + kSdChecksum);
  d.computed = adler32(p, kSdChecksum);
  return d;
}

void encode_section_descriptor(const std::string& type, uint64_t next, uint64_t size, uint8_t* p) {
  std::memset(p, 0, kSectionDescriptorSize);
  std::memcpy(p + kSdType, type.data(), std::min(type.size(), kSdTypeSize));
  store_le64(p + kSdNext, next);
  store_le64(p + kSdSize, size);
  store_le32(p + kSdChecksum, adler32(p, kSdChecksum));
}

std::optional<Volume> decode_volume(const uint8_t* p, size_t len) {
  Volume v;
  if (len == kVolumeS01Size) {
    v.smart_layout = true;
    v.smart_signature = std::memcmp(p + kVolS01Signature, "SMART", 5) == 0;
    v.chunk_count = load_le32(p + kVolChunkCount);
    v.sectors_per_chunk = load_le32(p + kVolSectorsPerChunk);
    v.bytes_per_sector = load_le32(p + kVolBytesPerSector);
    v.sector_count = load_le32(p + kVolSectorCount);
    v.media_flags = 0;
    v.checksum_ok = load_le32(p + kVolS01Checksum) == adler32(p, kVolS01Checksum);
    return v;
  }
  if (len != kVolumeE01Size) return std::nullopt;
  v.media_type = p[kVolMediaType];
  v.chunk_count = load_le32(p + kVolChunkCount);
  v.sectors_per_chunk = load_le32(p + kVolSectorsPerChunk);
  v.bytes_per_sector = load_le32(p + kVolBytesPerSector);
  v.sector_count = load_le64(p + kVolSectorCount);
  v.cylinders = load_le32(p + kVolCylinders);
  v.heads = load_le32(p + kVolHeads);
  v.chs_sectors = load_le32(p + kVolChsSectors);
  v.media_flags = p[kVolMediaFlags];
  v.compression_level = p[kVolCompressionLevel];
  v.error_granularity = load_le32(p + kVolErrorGranularity);
  std::memcpy(v.set_identifier.data(), p + kVolSetIdentifier, 16);
  v.checksum_ok = load_le32(p + kVolE01Checksum) == adler32(p, kVolE01Checksum);
  return v;
}

void encode_volume(const Volume& v, uint8_t* p) {
  std::memset(p, 0, kVolumeE01Size);
  p[kVolMediaType] = v.media_type;
  store_le32(p + kVolChunkCount, v.chunk_count);
  store_le32(p + kVolSectorsPerChunk, v.sectors_per_chunk);
  store_le32(p + kVolBytesPerSector, v.bytes_per_sector);
  store_le64(p + kVolSectorCount, v.sector_count);
  store_le32(p + kVolCylinders, v.cylinders);
  store_le32(p + kVolHeads, v.heads);
  store_le32(p + kVolChsSectors, v.chs_sectors);
  p[kVolMediaFlags] = v.media_flags;
  p[kVolCompressionLevel] = v.compression_level;
  store_le32(p + kVolErrorGranularity, v.error_granularity);
  std::memcpy(p + kVolSetIdentifier, v.set_identifier.data(), 16);
  store_le32(p + kVolE01Checksum, adler32(p, kVolE01Checksum));
}

TableHeader decode_table_header(const uint8_t* p) {
  TableHeader h;
  h.entry_count = load_le32(p + kThEntryCount);
  h.base_offset = load_le64(p + kThBaseOffset);
  h.checksum_ok = load_le32(p + kThChecksum) == adler32(p, kThChecksum);
  return h;
}

void encode_table_header(uint32_t entries, uint64_t base, uint8_t* p) {
  std::memset(p, 0, kTableHeaderSize);
  store_le32(p + kThEntryCount, entries);
  store_le64(p + kThBaseOffset, base);
  store_le32(p + kThChecksum, adler32(p, kThChecksum));
}

std::optional<std::string> segment_extension(char first_letter, uint32_t n) {
  if (n == 0 || !std::isalpha(static_cast<unsigned char>(first_letter))) return std::nullopt;
  const bool upper = std::isupper(static_cast<unsigned char>(first_letter)) != 0;
  std::string ext(1, first_letter);
  if (n <= 99) {
    ext += static_cast<char>('0' + n / 10);
    ext += static_cast<char>('0' + n % 10);
    return ext;
  }
  const uint32_t i = n - 100;
  const char a = upper ? 'A' : 'a';
  const uint32_t lead = static_cast<uint32_t>(first_letter - a) + i / (26 * 26);
  if (lead >= 26) return std::nullopt;
  ext[0] = static_cast<char>(a + lead);
  ext += static_cast<char>(a + (i / 26) % 26);
  ext += static_cast<char>(a + i % 26);
  return ext;
}

uint32_t max_segment_number(char first_letter) {
  if (!std::isalpha(static_cast<unsigned char>(first_letter))) return 0;
  const char a = std::isupper(static_cast<unsigned char>(first_letter)) ? 'A' : 'a';
  return 99 + static_cast<uint32_t>(26 - (first_letter - a)) * 26 * 26;
}

}  // namespace vdisk::e01
