// Writing VirtualBox VDI images (header 1.1 as VirtualBox writes it).
#pragma once

#include <memory>
#include <vector>

#include "formats/core/options.h"
#include "formats/core/writer.h"

namespace vdisk::vdi {

// The -o options: subformat=dynamic|static, and qemu-img's static=on|off as a
// synonym (a conflicting pair is refused).
const std::vector<OptionSpec>& create_options();

// Dynamic images allocate 1 MiB blocks in guest order for the blocks holding a
// non-zero byte (all-zero blocks stay free, 0xffffffff); static images
// allocate every block, block i at data block i. Virtual sizes not a multiple
// of 512 are refused unless req.allow_resize (then rounded up, see notes()).
std::unique_ptr<ImageWriter> create_vdi(const CreateRequest& req);

}  // namespace vdisk::vdi
