// Writing VHD images: fixed and dynamic disks of exactly the requested size.
#pragma once

#include <memory>
#include <vector>

#include "formats/core/options.h"
#include "formats/core/writer.h"

namespace vdisk::vhd {

// The `-o` options: subformat (dynamic|fixed), block_size, target
// (generic|azure) and creator (the 4-character creator application).
std::vector<OptionSpec> vhd_create_options();

// Creates a VHD writer. The virtual size is kept exactly (current_size holds
// it; the CHS geometry field is computed per the spec's appendix and is never
// used to change the size). Refuses, naming the size it would need, a size
// that is not a whole number of sectors unless req.allow_resize;
// target=azure pads to a whole MiB and reports it through notes().
std::unique_ptr<ImageWriter> create_vhd(const CreateRequest& req);

}  // namespace vdisk::vhd
