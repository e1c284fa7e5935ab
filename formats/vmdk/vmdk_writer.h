#pragma once

#include <memory>

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

}  // namespace vdisk::vmdk
