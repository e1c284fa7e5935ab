// What `vdisk info` shows about an image, and its JSON form. One definition
// for the CLI, the mount's info.json and the reports.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "formats/core/json.h"

namespace vdisk {

class BlockDevice;

// The fields of one layer. `details` is a JSON object of format-specific
// fields (grain size, CID, geometry, creator, …) in display order.
//
// allocated_bytes, the one definition used by `info`, `map` (the kData
// extents of depth 0), the reports, convert's summary and the mount's
// info.json: guest bytes that block status reports as kData for this layer
// alone, at the format's granularity (a 64 KiB grain that holds 512 bytes of
// data counts 64 KiB; a zero-flagged or unallocated block counts nothing; a
// preallocated block counts whole), less the holes of the host file inside
// stored data where the reader sees them (raw, fixed VHD, VHDX payload blocks
// report those as zero). `qemu-img map` counts the same bytes as "data": true
// at depth 0, except inside VHDX payload blocks, where it ignores host holes.
// A layer of a chain counts only what it stores itself. Filled by
// full_info(); a device's own info() leaves it 0.
struct ImageInfo {
  std::string path;
  std::string format;
  std::string subformat;
  uint64_t virtual_size = 0;
  uint64_t actual_size = 0;           // bytes the image's files occupy on the host
  uint64_t allocated_bytes = 0;       // see above
  std::optional<std::string> parent;  // the parent's path, when there is one
  Json details = Json::object();
  // Parent chain, nearest first, each as the info of that layer alone.
  std::vector<ImageInfo> chain;
  // The guest disk's partition table (partition::PartitionTable::to_json
  // with each partition's contents), null when there is none. Filled by the
  // caller, above formats/ (cli info, the mount's info.json).
  Json partition_table;

  // Records `parent` (the info of the parent device, its own chain included)
  // as this layer's parent named `parent_path` (empty: parent.path), its
  // chain flattened after it, nearest first.
  void set_parent(ImageInfo parent, const std::string& parent_path = "");
};

// The info of `dev` with allocated_bytes filled for every layer (see
// ImageInfo) from block status. A layer whose status cannot be read (a
// missing parent under OpenOptions::missing_parents) gets
// details.allocated_bytes_unknown with the reason instead.
ImageInfo full_info(const BlockDevice& dev);

// allocated_bytes (above) of `dev`'s own layer: layers().front().
uint64_t allocated_bytes(const BlockDevice& dev);

// {"filename", "format", "subformat", "virtual_size", "actual_size",
//  "allocated_bytes", "parent", "details", ["chain": [...]],
//  ["partition_table": {...}]}.
Json info_to_json(const ImageInfo& info);

}  // namespace vdisk
