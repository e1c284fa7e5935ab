// Writing VHDX images laid out as Hyper-V lays them out: the 1 MiB header
// section (file identifier, two headers, two region tables), a 1 MiB empty log
// at 1 MiB, the metadata region at 2 MiB, the BAT at 3 MiB, then payload
// blocks, every region 1 MiB-aligned and every structure CRC-32C'd.
#pragma once

#include <memory>
#include <vector>

#include "formats/core/options.h"
#include "formats/core/writer.h"

namespace vdisk::vhdx {

// The -o options: subformat=dynamic|fixed, block_size (1 MiB-256 MiB, power
// of two, default 32 MiB), logical_sector_size=512|4096 (default: the
// source's), preallocation=off|full.
std::vector<OptionSpec> create_options();

// Refuses a virtual size that is not a multiple of the logical sector size
// unless req.allow_resize (then rounds up and says so in notes()).
std::unique_ptr<ImageWriter> create_vhdx(const CreateRequest& req);

}  // namespace vdisk::vhdx
