// `vdisk check` for VDI (FormatDescriptor::check; the contract is
// CheckFunction in formats/core/check.h).
#pragma once

#include "formats/core/format.h"

namespace vdisk::vdi {

void check_vdi(std::shared_ptr<const File> file, const OpenOptions& opts, CheckReport& report);

}  // namespace vdisk::vdi
