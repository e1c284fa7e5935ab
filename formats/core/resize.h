// The common prologue of FormatDescriptor::resize implementations: their
// refusals read alike ("cannot resize: ..." naming the file), and the new
// size is checked against the format's unit and limits the same way.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "formats/core/error.h"
#include "formats/core/format.h"

namespace vdisk {

// Throws Error(kUnsupported) naming req.file, offset `at` and "cannot
// resize: <why>".
[[noreturn]] void refuse_resize(const ResizeRequest& req, std::optional<uint64_t> at,
                                const std::string& why);

// Refuses (refuse_resize) a req.new_size that is not a whole multiple of
// `unit` bytes, or below `min_size`, or above `max_size` (`max_why` names
// that limit: "the VHD specification's limit of 2040 GiB"). `format` names
// the format in the message ("VHD").
void check_resize_size(const ResizeRequest& req, const std::string& format, uint64_t unit,
                       uint64_t min_size = 0, uint64_t max_size = UINT64_MAX,
                       const std::string& max_why = "");

// req.layer as the format's device type `Device`; Error(kInvalidArgument)
// "not a <format>" when the caller opened it as another format.
template <class Device>
const Device& resize_layer(const ResizeRequest& req, const char* format) {
  const auto* dev = dynamic_cast<const Device*>(&req.layer);
  if (!dev)
    throw Error(ErrorKind::kInvalidArgument, req.file.path(), std::nullopt,
                std::string("not a ") + format);
  return *dev;
}

}  // namespace vdisk
