// The commands that change an image in place (resize, rebase, commit) open
// it here, and only here: the file read-write and locked (Env::open_update),
// its format's descriptor, and its own layer read through the locked file.
#pragma once

#include <memory>
#include <string>

#include "formats/core/block_device.h"
#include "formats/core/file.h"
#include "formats/core/format.h"

namespace vdisk::cli {

struct InPlaceImage {
  const FormatDescriptor* format = nullptr;
  std::shared_ptr<UpdateFile> file;
  BlockDevicePtr layer;  // the image's own layer, parents not attached
};

// Opens `path` as `format` (empty: probe) for changing it in place.
InPlaceImage open_in_place(const std::string& path, const std::string& format,
                           const OpenOptions& opts);

// SHA-256 of the guest content of `dev` (zero and unallocated ranges hashed
// without reading them). rebase and commit hash the chain before writing and
// the result after: a device opened before the write must not be read after
// it (its tables and file size are those of before).
std::string guest_sha256(const BlockDevice& dev);

// The names of the formats whose descriptor has `hook` set, for refusals
// ("formats that resize: raw, qcow2").
std::string formats_with(bool (*hook)(const FormatDescriptor&));

}  // namespace vdisk::cli
