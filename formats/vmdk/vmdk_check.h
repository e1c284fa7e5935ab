// `vdisk check` for VMDK: hosted sparse extents' grain directories and
// tables (FormatDescriptor::check; the contract is CheckFunction in
// formats/core/check.h).
#pragma once

#include "formats/core/format.h"

namespace vdisk::vmdk {

void check_vmdk(std::shared_ptr<const File> file, const OpenOptions& opts, CheckReport& report);

}  // namespace vdisk::vmdk
