// `vdisk check` for VHD, against the specification (FormatDescriptor::check;
// the contract is CheckFunction in formats/core/check.h).
#pragma once

#include "formats/core/format.h"

namespace vdisk::vhd {

void check_vhd(std::shared_ptr<const File> file, const OpenOptions& opts, CheckReport& report);

}  // namespace vdisk::vhd
