#include "formats/vhd/vhd_layout.h"

#include <cstdio>
#include <cstring>
#include <ctime>

#include "formats/core/endian.h"

namespace vdisk::vhd {

const char* disk_type_name(uint32_t type) {
  switch (static_cast<DiskType>(type)) {
    case DiskType::kFixed:
      return "fixed";
    case DiskType::kDynamic:
      return "dynamic";
    case DiskType::kDifferencing:
      return "differencing";
    case DiskType::kNone:
      return "none";
  }
  return "unknown";
}

uint32_t vhd_checksum(const uint8_t* bytes, size_t len, size_t checksum_off) {
  uint32_t sum = 0;
  for (size_t i = 0; i < len; ++i) {
    if (i >= checksum_off && i < checksum_off + 4) continue;
    sum += bytes[i];
  }
  return ~sum;
}

Footer decode_footer(const uint8_t* b) {
  Footer f;
  f.features = load_be32(b + kFooterFeaturesOff);
  f.version = load_be32(b + kFooterVersionOff);
  f.data_offset = load_be64(b + kFooterDataOffsetOff);
  f.timestamp = load_be32(b + kFooterTimestampOff);
  std::memcpy(f.creator_app.data(), b + kFooterCreatorAppOff, 4);
  f.creator_version = load_be32(b + kFooterCreatorVerOff);
  f.creator_os = load_be32(b + kFooterCreatorOsOff);
  f.original_size = load_be64(b + kFooterOriginalSizeOff);
  f.current_size = load_be64(b + kFooterCurrentSizeOff);
  f.cylinders = load_be16(b + kFooterGeometryOff);
  f.heads = b[kFooterGeometryOff + 2];
  f.sectors_per_track = b[kFooterGeometryOff + 3];
  f.disk_type = load_be32(b + kFooterDiskTypeOff);
  f.checksum = load_be32(b + kFooterChecksumOff);
  f.unique_id = Guid::decode(b + kFooterUniqueIdOff, GuidByteOrder::kBigEndian);
  f.saved_state = b[kFooterSavedStateOff];
  return f;
}

std::array<uint8_t, kFooterSize> encode_footer(const Footer& f) {
  std::array<uint8_t, kFooterSize> b{};
  std::memcpy(b.data() + kFooterCookieOff, kFooterCookie, 8);
  store_be32(b.data() + kFooterFeaturesOff, f.features);
  store_be32(b.data() + kFooterVersionOff, f.version);
  store_be64(b.data() + kFooterDataOffsetOff, f.data_offset);
  store_be32(b.data() + kFooterTimestampOff, f.timestamp);
  std::memcpy(b.data() + kFooterCreatorAppOff, f.creator_app.data(), 4);
  store_be32(b.data() + kFooterCreatorVerOff, f.creator_version);
  store_be32(b.data() + kFooterCreatorOsOff, f.creator_os);
  store_be64(b.data() + kFooterOriginalSizeOff, f.original_size);
  store_be64(b.data() + kFooterCurrentSizeOff, f.current_size);
  store_be16(b.data() + kFooterGeometryOff, f.cylinders);
  b[kFooterGeometryOff + 2] = f.heads;
  b[kFooterGeometryOff + 3] = f.sectors_per_track;
  store_be32(b.data() + kFooterDiskTypeOff, f.disk_type);
  f.unique_id.encode(b.data() + kFooterUniqueIdOff, GuidByteOrder::kBigEndian);
  b[kFooterSavedStateOff] = f.saved_state;
  store_be32(b.data() + kFooterChecksumOff, vhd_checksum(b.data(), b.size(), kFooterChecksumOff));
  return b;
}

DynamicHeader decode_header(const uint8_t* b) {
  DynamicHeader h;
  h.data_offset = load_be64(b + kHeaderDataOffsetOff);
  h.table_offset = load_be64(b + kHeaderTableOffsetOff);
  h.version = load_be32(b + kHeaderVersionOff);
  h.max_table_entries = load_be32(b + kHeaderMaxEntriesOff);
  h.block_size = load_be32(b + kHeaderBlockSizeOff);
  h.checksum = load_be32(b + kHeaderChecksumOff);
  h.parent_unique_id = Guid::decode(b + kHeaderParentIdOff, GuidByteOrder::kBigEndian);
  h.parent_timestamp = load_be32(b + kHeaderParentTimeOff);
  std::memcpy(h.parent_name.data(), b + kHeaderParentNameOff, kHeaderParentNameSize);
  for (size_t i = 0; i < kLocatorCount; ++i) {
    const uint8_t* e = b + kHeaderLocatorsOff + i * kLocatorEntrySize;
    ParentLocator& l = h.locators[i];
    l.code = load_be32(e + kLocatorCodeOff);
    l.data_space = load_be32(e + kLocatorDataSpaceOff);
    l.data_length = load_be32(e + kLocatorDataLengthOff);
    l.data_offset = load_be64(e + kLocatorDataOffsetOff);
  }
  return h;
}

std::array<uint8_t, kHeaderSize> encode_header(const DynamicHeader& h) {
  std::array<uint8_t, kHeaderSize> b{};
  std::memcpy(b.data() + kHeaderCookieOff, kHeaderCookie, 8);
  store_be64(b.data() + kHeaderDataOffsetOff, h.data_offset);
  store_be64(b.data() + kHeaderTableOffsetOff, h.table_offset);
  store_be32(b.data() + kHeaderVersionOff, h.version);
  store_be32(b.data() + kHeaderMaxEntriesOff, h.max_table_entries);
  store_be32(b.data() + kHeaderBlockSizeOff, h.block_size);
  h.parent_unique_id.encode(b.data() + kHeaderParentIdOff, GuidByteOrder::kBigEndian);
  store_be32(b.data() + kHeaderParentTimeOff, h.parent_timestamp);
  std::memcpy(b.data() + kHeaderParentNameOff, h.parent_name.data(), kHeaderParentNameSize);
  for (size_t i = 0; i < kLocatorCount; ++i) {
    uint8_t* e = b.data() + kHeaderLocatorsOff + i * kLocatorEntrySize;
    const ParentLocator& l = h.locators[i];
    store_be32(e + kLocatorCodeOff, l.code);
    store_be32(e + kLocatorDataSpaceOff, l.data_space);
    store_be32(e + kLocatorDataLengthOff, l.data_length);
    store_be64(e + kLocatorDataOffsetOff, l.data_offset);
  }
  store_be32(b.data() + kHeaderChecksumOff, vhd_checksum(b.data(), b.size(), kHeaderChecksumOff));
  return b;
}

Geometry chs_geometry(uint64_t size) {
  // Spec appendix "CHS Calculation": the largest geometry is 65535/16/255;
  // bigger disks keep it (their size lives only in current_size).
  uint64_t total = size / kSectorSize;
  const uint64_t max_total = 65535ull * 16 * 255;
  if (total > max_total) total = max_total;
  uint64_t spt, heads, cyl_times_heads;
  if (total >= 65535ull * 16 * 63) {
    spt = 255;
    heads = 16;
    cyl_times_heads = total / spt;
  } else {
    spt = 17;
    cyl_times_heads = total / spt;
    heads = (cyl_times_heads + 1023) / 1024;
    if (heads < 4) heads = 4;
    if (cyl_times_heads >= heads * 1024 || heads > 16) {
      spt = 31;
      heads = 16;
      cyl_times_heads = total / spt;
    }
    if (cyl_times_heads >= heads * 1024) {
      spt = 63;
      heads = 16;
      cyl_times_heads = total / spt;
    }
  }
  Geometry g;
  g.cylinders = static_cast<uint16_t>(cyl_times_heads / heads);
  g.heads = static_cast<uint8_t>(heads);
  g.sectors_per_track = static_cast<uint8_t>(spt);
  return g;
}

std::string format_timestamp(uint32_t vhd_seconds) {
  std::time_t t = static_cast<std::time_t>(kVhdEpoch + static_cast<int64_t>(vhd_seconds));
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string format_code(const uint8_t* four) {
  std::string s;
  for (int i = 0; i < 4; ++i) {
    uint8_t c = four[i];
    s += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : (c == 0 ? ' ' : '?');
  }
  return s;
}

std::string format_code(uint32_t code) {
  uint8_t b[4];
  store_be32(b, code);
  return format_code(b);
}

}  // namespace vdisk::vhd
