#include "cli/inplace.h"

#include <algorithm>
#include <vector>

#include "cli/cli.h"
#include "converters/hasher.h"
#include "formats/registry.h"

namespace vdisk::cli {

InPlaceImage open_in_place(const std::string& path, const std::string& format,
                           const OpenOptions& opts) {
  InPlaceImage img;
  img.file = opts.environment().open_update(path);
  if (format.empty()) {
    const ProbeResult probed = probe_file(*img.file);
    if (!probed.best)
      throw Error(ErrorKind::kNotThisFormat, path, std::nullopt, "not a disk image vdisk knows");
    img.format = probed.best;
  } else {
    img.format = &require_format(format);
  }
  if (!img.format->open)
    throw Error(ErrorKind::kUnsupported, path, std::nullopt, img.format->name + " is not readable");
  img.layer = img.format->open(img.file, opts);
  return img;
}

std::string guest_sha256(const BlockDevice& dev) {
  Hasher h(HashAlgo::kSha256);
  std::vector<uint8_t> buf(1 << 20);
  for (uint64_t at = 0; at < dev.size();) {
    const Extent e = dev.block_status(at, dev.size() - at);
    if (e.type != ExtentType::kData) {
      h.update_zeros(e.length);
    } else {
      for (uint64_t p = at; p < at + e.length;) {
        if (cancel_flag().load())
          throw Error(ErrorKind::kInterrupted, dev.label(), p, "interrupted");
        const size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), at + e.length - p));
        dev.read(p, buf.data(), n);
        h.update(buf.data(), n);
        p += n;
      }
    }
    at += e.length;
  }
  return h.finish_hex();
}

std::string formats_with(bool (*hook)(const FormatDescriptor&)) {
  std::string names;
  for (const FormatDescriptor* f : builtin_formats())
    if (hook(*f)) names += (names.empty() ? "" : ", ") + f->name;
  return names;
}

}  // namespace vdisk::cli
