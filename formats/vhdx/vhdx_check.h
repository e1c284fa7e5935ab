// `vdisk check` for VHDX (FormatDescriptor::check; the contract is
// CheckFunction in formats/core/check.h).
#pragma once

#include "formats/core/format.h"

namespace vdisk::vhdx {

void check_vhdx(std::shared_ptr<const File> file, const OpenOptions& opts, CheckReport& report);

}  // namespace vdisk::vhdx
