#include "formats/core/resize.h"

namespace vdisk {

void refuse_resize(const ResizeRequest& req, std::optional<uint64_t> at, const std::string& why) {
  throw Error(ErrorKind::kUnsupported, req.file.path(), at, "cannot resize: " + why);
}

void check_resize_size(const ResizeRequest& req, const std::string& format, uint64_t unit,
                       uint64_t min_size, uint64_t max_size, const std::string& max_why) {
  const uint64_t n = req.new_size;
  if (unit > 1 && n % unit) {
    refuse_resize(req, std::nullopt,
                  format + " sizes are whole multiples of " + std::to_string(unit) + " bytes; " +
                      std::to_string(n) + " is not");
  }
  if (n < min_size) {
    refuse_resize(req, std::nullopt,
                  "a " + format + " disk holds at least " + std::to_string(min_size) + " bytes");
  }
  if (n > max_size) {
    refuse_resize(
        req, std::nullopt,
        format + " disks hold at most " + std::to_string(max_size) + " bytes (" + max_why + ")");
  }
}

}  // namespace vdisk
