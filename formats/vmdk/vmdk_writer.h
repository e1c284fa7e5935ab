#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "formats/core/file.h"
#include "formats/core/options.h"
#include "formats/core/writer.h"

namespace vdisk::vmdk {

// The -o options of the VMDK writer (subformat, adapter_type, hwversion, …).
std::vector<OptionSpec> create_options();

// Writes a VMDK of the requested subformat. All-zero grains stay
// unallocated. streamOptimized compresses grains on every core and may be
// written to "-" (standard output); the other subformats refuse "-".
// Multi-file subformats commit their extent files first and the descriptor
// last, so the descriptor never names a missing file.
std::unique_ptr<ImageWriter> create_vmdk(const CreateRequest& req);

// The pieces of a twoGbMaxExtent* disk: VMware keeps each under 2 GB, 2047
// MiB (a whole number of grains for every grain size we allow), numbered
// -f001 / -s001 up to 999.
inline constexpr uint64_t kTwoGbExtentSectors = 4192256;
inline constexpr uint64_t kMaxExtents = 999;

// The name of piece `number` (1-based) of a twoGbMaxExtent* disk whose
// descriptor is `base`.vmdk: "<base>-s001.vmdk" (sparse) or
// "<base>-f001.vmdk" (flat).
std::string piece_name(const std::string& base, bool sparse, uint64_t number);

// Writes into `out` (without committing it) an empty hosted sparse extent of
// `capacity_sectors` with grains of `grain_bytes` and no embedded
// descriptor, laid out as the pieces of a twoGbMaxExtentSparse disk this
// writer makes (vdisk resize adding pieces).
void write_empty_sparse_extent(OutputFile& out, uint64_t capacity_sectors, uint64_t grain_bytes);

}  // namespace vdisk::vmdk
