// `vdisk check` for qcow2: refcounts against the references of the header,
// L1/L2 tables, refcount structures and snapshots (FormatDescriptor::check;
// the contract is CheckFunction in formats/core/check.h).
#pragma once

#include "formats/core/format.h"

namespace vdisk::qcow2 {

void check_qcow2(std::shared_ptr<const File> file, const OpenOptions& opts, CheckReport& report);

}  // namespace vdisk::qcow2
