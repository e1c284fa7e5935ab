// VDI consistency check (VirtualBox's VDICore.h, as qemu-img check does for
// VDI): the header's sizes agree, the block map lies inside the file, every
// allocated entry is below cBlocksAllocated and its block inside the file,
// no data block is used by two entries, and cBlocksAllocated counts the
// entries that use one.
#include "formats/vdi/vdi_check.h"

#include <algorithm>
#include <string>
#include <vector>

#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/file.h"
#include "formats/vdi/vdi_layout.h"

namespace vdisk::vdi {

void check_vdi(std::shared_ptr<const File> file, const OpenOptions&, CheckReport& r) {
  const std::string& path = file->path();
  const uint64_t fsize = file->size();
  uint8_t h[kHeaderReadSize] = {};
  const size_t got = file->read_some(0, h, sizeof h);
  if (got < kPreHeaderSize + kHeaderSize1 || load_le32(h + kOffSignature) != kSignature)
    throw Error(ErrorKind::kNotThisFormat, path, kOffSignature, "no VDI signature");
  if (load_le32(h + kOffVersion) != kVersion1_1)
    throw Error(ErrorKind::kUnsupported, path, kOffVersion,
                "only VDI header version 1.1 is checked");
  const uint32_t type = load_le32(h + kOffImageType);
  const uint64_t map_at = load_le32(h + kOffBlocksOffset);
  const uint64_t data_at = load_le32(h + kOffDataOffset);
  const uint64_t disk = load_le64(h + kOffDiskSize);
  const uint64_t block = load_le32(h + kOffBlockSize);
  const uint64_t extra = load_le32(h + kOffBlockExtra);
  const uint64_t blocks = load_le32(h + kOffBlocks);
  const uint64_t allocated = load_le32(h + kOffBlocksAllocated);

  if (type < 1 || type > 4)
    r.error(path, kOffImageType, "header image type", std::to_string(type) + " is not 1-4");
  if (block == 0 || (block & (block - 1)) || block < kSectorSize)
    throw Error(ErrorKind::kCorrupt, path, kOffBlockSize,
                "block size " + std::to_string(block) + " is not a power of two >= 512");
  if (disk > blocks * block) {
    r.error(path, kOffBlocks, "header block count",
            std::to_string(blocks) + " blocks of " + std::to_string(block) +
                " bytes do not cover the " + std::to_string(disk) + "-byte disk");
  }
  if (allocated > blocks) {
    r.error(path, kOffBlocksAllocated, "header allocated blocks",
            std::to_string(allocated) + " is more than the " + std::to_string(blocks) + " blocks");
  }
  if (map_at > fsize || blocks * 4 > fsize - map_at)
    throw Error(ErrorKind::kCorrupt, path, kOffBlocksOffset,
                "block map of " + std::to_string(blocks) + " entries at " + std::to_string(map_at) +
                    " is not inside the file");
  if (data_at >= map_at && data_at < map_at + blocks * 4) {
    r.error(path, kOffDataOffset, "header data offset",
            std::to_string(data_at) + " lies inside the block map");
  }

  std::vector<uint8_t> map(static_cast<size_t>(blocks * 4));
  file->read_at(map_at, map.data(), map.size());
  // Which entry first used each data block (bounded by the header's count,
  // itself bounded by the map that fits in the file).
  std::vector<uint32_t> owner(static_cast<size_t>(std::min(allocated, blocks)), kBlockFree);
  const uint64_t stride = block + extra;
  uint64_t used = 0;
  for (uint64_t i = 0; i < blocks; ++i) {
    const uint32_t e = load_le32(map.data() + 4 * i);
    if (e == kBlockFree || e == kBlockZero) continue;
    const uint64_t at = map_at + 4 * i;
    const std::string what = "block map entry " + std::to_string(i);
    ++used;
    if (e >= allocated) {
      r.error(path, at, what,
              "data block " + std::to_string(e) + " is not below the " + std::to_string(allocated) +
                  " allocated blocks");
      continue;
    }
    const uint64_t off = data_at + e * stride + extra;
    if (off > fsize || block > fsize - off) {
      r.error(path, at, what,
              "data block " + std::to_string(e) + " at " + std::to_string(off) +
                  " runs past the end of the " + std::to_string(fsize) + "-byte file");
    }
    if (owner[e] != kBlockFree) {
      r.error(
          path, at, what,
          "data block " + std::to_string(e) + " is also used by entry " + std::to_string(owner[e]));
      continue;
    }
    owner[e] = static_cast<uint32_t>(i);
  }
  if (used != allocated) {
    r.error(path, kOffBlocksAllocated, "header allocated blocks",
            std::to_string(allocated) + " but the block map uses " + std::to_string(used));
  }
  r.note(std::to_string(used) + " of " + std::to_string(blocks) + " blocks allocated");
}

}  // namespace vdisk::vdi
