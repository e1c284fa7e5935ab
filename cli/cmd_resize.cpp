// vdisk resize IMAGE [+|-]SIZE [--shrink]: changes an image's virtual size in
// place. The only commands that open an image for writing are this one's
// kind (Env::open_update); the format's FormatDescriptor::resize writes in an
// order that survives a crash. Partitions and file systems inside are not
// touched.
#include <algorithm>
#include <cstdio>
#include <vector>

#include "cli/cli.h"
#include "cli/inplace.h"
#include "formats/core/error.h"
#include "formats/core/file.h"

namespace vdisk::cli {

namespace {

// The new size from "SIZE", "+SIZE" or "-SIZE" relative to `current`.
uint64_t target_size(const std::string& text, uint64_t current) {
  if (text.empty()) throw UsageError("the size (SIZE) is empty");
  const char sign = text[0];
  if (sign != '+' && sign != '-') return parse_size_arg(text, "SIZE");
  const uint64_t delta = parse_size_arg(text.substr(1), "SIZE");
  if (sign == '+') {
    if (delta > UINT64_MAX - current) throw UsageError("SIZE: " + text + " overflows");
    return current + delta;
  }
  if (delta > current)
    throw UsageError("SIZE: " + text + " is more than the image's " + std::to_string(current) +
                     " bytes");
  return current - delta;
}

// Bytes in [from, to) of `dev` that are not zero: {count, first offset}.
std::pair<uint64_t, uint64_t> nonzero_bytes(const BlockDevice& dev, uint64_t from, uint64_t to) {
  uint64_t count = 0, first = to;
  std::vector<uint8_t> buf(1 << 20);
  for (uint64_t at = from; at < to;) {
    const Extent e = dev.block_status(at, to - at);
    if (e.type == ExtentType::kData) {
      for (uint64_t p = at; p < at + e.length;) {
        if (cancel_flag().load()) throw Error(ErrorKind::kInterrupted, "", p, "interrupted");
        const size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), at + e.length - p));
        dev.read(p, buf.data(), n);
        for (size_t i = 0; i < n; ++i) {
          if (buf[i] == 0) continue;
          if (first == to) first = p + i;
          ++count;
        }
        p += n;
      }
    }
    at += e.length;
  }
  return {count, first};
}

}  // namespace

int cmd_resize(const std::vector<std::string>& args) {
  po::options_description desc("options");
  desc.add_options()("format,f", po::value<std::string>()->default_value(""),
                     "image format (default: probe the bytes)")(
      "shrink", "allow making the image smaller (only when the part cut off reads as zeros)")(
      "parent", po::value<std::string>()->default_value(""),
      "parent image of a differencing disk (for the --shrink check)")(
      "allow-outside-paths", "let extent and parent names point outside the image's folder");
  const std::vector<Positional> pos = {
      {"image", "IMAGE", "image", "the image, changed in place"},
      {"size", "SIZE", "size",
       "the new virtual size (64G, 1T, bytes), or +SIZE / -SIZE relative to the current one"}};
  po::variables_map vm;
  if (!parse_args("resize", "[-f FMT] [--shrink] IMAGE [+|-]SIZE", desc, pos, args, vm))
    return kExitOk;
  const std::string path = vm["image"].as<std::string>();
  OpenOptions opts = open_options_from(vm);
  Env& env = Env::posix();
  opts.env = &env;

  // Locked against a second updater from here on; the checks below read the
  // image as it is under that lock.
  InPlaceImage img = open_in_place(path, vm["format"].as<std::string>(), opts);
  const FormatDescriptor& format = *img.format;
  if (!format.resize) {
    throw Error(ErrorKind::kUnsupported, path, std::nullopt,
                "resizing " + format.name + " images is not supported (formats that resize: " +
                    formats_with([](const FormatDescriptor& f) { return f.resize != nullptr; }) +
                    ")");
  }
  // The whole chain: what the guest sees, for the shrink check.
  BlockDevicePtr chain = open_image(path, format.name, opts);
  const uint64_t old_size = chain->size();
  const uint64_t new_size = target_size(vm["size"].as<std::string>(), old_size);
  if (new_size == old_size) {
    std::printf("%s: already %s (%llu bytes); nothing changed\n", path.c_str(),
                human_size(old_size).c_str(), static_cast<unsigned long long>(old_size));
    return kExitOk;
  }
  if (new_size < old_size) {
    if (!vm.count("shrink")) {
      throw UsageError("the new size " + std::to_string(new_size) +
                       " is smaller than the image's " + std::to_string(old_size) +
                       " bytes: shrinking cuts off the end of the disk; pass --shrink to do so");
    }
    const auto [lost, first] = nonzero_bytes(*chain, new_size, old_size);
    if (lost) {
      throw Error(ErrorKind::kInvalidArgument, path, first,
                  "cannot shrink to " + std::to_string(new_size) + " bytes: the part cut off [" +
                      std::to_string(new_size) + ", " + std::to_string(old_size) + ") holds " +
                      std::to_string(lost) + " non-zero bytes, the first at guest offset " +
                      std::to_string(first) + " (move or delete that data first)");
    }
  }
  if (new_size > old_size && img.layer->parent_spec()) {
    throw Error(ErrorKind::kUnsupported, path, std::nullopt,
                "growing a differencing image would show its parent's bytes in the new part "
                "instead of zeros; grow the whole chain from its base, or convert first");
  }
  chain.reset();

  format.resize(
      ResizeRequest{.file = *img.file, .layer = *img.layer, .new_size = new_size, .opts = opts});
  img = InPlaceImage{};

  // Read it back as every other command will.
  const uint64_t now = open_image(path, format.name, opts)->size();
  if (now != new_size) {
    throw Error(ErrorKind::kCorrupt, path, std::nullopt,
                "after resizing, the image opens at " + std::to_string(now) + " bytes, not " +
                    std::to_string(new_size));
  }
  std::printf(
      "%s: resized from %s to %s (%llu bytes); partitions and file systems inside were "
      "not changed\n",
      path.c_str(), human_size(old_size).c_str(), human_size(new_size).c_str(),
      static_cast<unsigned long long>(new_size));
  return kExitOk;
}

}  // namespace vdisk::cli
