// Writing VHDX images laid out as Hyper-V lays them out: the 1 MiB header
// section (file identifier, two headers, two region tables), a 1 MiB empty log
// at 1 MiB, the metadata region at 2 MiB, the BAT at 3 MiB, then payload
// blocks, every region 1 MiB-aligned and every structure CRC-32C'd.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "formats/core/guid.h"
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

// The Parent Locator item (2.6.2.6) of a differencing disk, as Hyper-V
// writes it: the VHDX locator type, parent_linkage = the parent's
// `parent_data_write_guid` ("{...}"), absolute_win32_path = `absolute_path`
// and, when `name` (the parent as stored, relative to the child's folder)
// is not absolute, relative_path ".\name" (`\` separators; no volume_path,
// which names a Windows volume). Throws Error(kUnsupported) for a value past
// the 64 KiB a locator value holds.
std::vector<uint8_t> parent_locator_item(const Guid& parent_data_write_guid,
                                         const std::string& name, const std::string& absolute_path);

}  // namespace vdisk::vhdx
