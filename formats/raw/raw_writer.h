#pragma once

#include <memory>

#include "formats/core/writer.h"

namespace vdisk::raw {

// Writes a raw image: data ranges are written, everything else stays a hole,
// and the file gets exactly the requested size. Accepts "-" (standard output),
// where holes become written zeros.
std::unique_ptr<ImageWriter> create_raw(const CreateRequest& req);

}  // namespace vdisk::raw
