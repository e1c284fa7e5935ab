// The registry of formats. Each format folder provides one FormatDescriptor;
// formats/builtin_formats.cpp lists them explicitly. Probing scores the head
// (first 64 KiB) and the tail (last 64 KiB) of a file, so footer-only formats
// (fixed VHD) and late signatures (ISO 9660 at 0x8001) are found.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "formats/core/block_device.h"
#include "formats/core/error.h"
#include "formats/core/file.h"
#include "formats/core/options.h"
#include "formats/core/writer.h"

namespace vdisk {

inline constexpr size_t kProbeHeadBytes = 64 * 1024;
inline constexpr size_t kProbeTailBytes = 64 * 1024;

// Probe scores: a format's own signature (magic at a fixed place, checksummed
// footer) scores kProbeSignature; content that other containers may wrap (ISO
// 9660 inside a fixed VHD) scores kProbeContent; raw always kProbeFallback.
inline constexpr int kProbeSignature = 100;
inline constexpr int kProbeContent = 50;
inline constexpr int kProbeFallback = 1;

struct ProbeInput {
  std::string path;
  uint64_t file_size = 0;
  std::span<const uint8_t> head;  // bytes [0, min(size, 64 KiB))
  std::span<const uint8_t> tail;  // the last min(size, 64 KiB) bytes
};

struct OpenOptions {
  Env* env = nullptr;  // null: Env::posix()
  // Extent and parent names may resolve outside the referencing file's folder
  // (absolute paths, "..", symlinks out). Off by default: an image must not
  // make vdisk read arbitrary files.
  bool allow_outside_paths = false;
  // An explicit parent image for differencing disks (overrides the search).
  std::string parent_path;
  WarningSink warn = default_warning;
  // `vdisk info` sets this: a differencing image whose parent cannot be found
  // still opens, with a placeholder parent (make_missing_parent) whose reads
  // fail with the original "not found" error, so info can show the image's own
  // fields and its parent locators; each such error is appended here. Never
  // set for commands that read content.
  std::vector<std::string>* missing_parents = nullptr;
  // Chain bookkeeping (set by open_image when opening parents).
  int depth = 0;
  std::vector<std::pair<uint64_t, uint64_t>> ancestors;  // File::identity() of children

  Env& environment() const;
};

struct FormatDescriptor {
  std::string name;                  // "vmdk"
  std::vector<std::string> aliases;  // "vpc" for vhd
  std::string description;
  std::vector<std::string> extensions;  // without dots, lower case
  std::vector<std::string> subformats;  // names accepted by -o subformat=
  // Never throws; 0 means "not this format".
  int (*probe)(const ProbeInput& in) = nullptr;
  // Opens and validates everything before allocating; null when not readable.
  BlockDevicePtr (*open)(std::shared_ptr<const File> file, const OpenOptions& opts) = nullptr;
  // Creates a writer; null when not writable.
  std::unique_ptr<ImageWriter> (*create)(const CreateRequest& req) = nullptr;
  std::vector<OptionSpec> create_options;
  bool can_stream = false;  // create() accepts "-" (standard output)
};

// The explicit list of built-in formats (formats/builtin_formats.cpp).
const std::vector<const FormatDescriptor*>& builtin_formats();

// By name or alias, case-insensitive; null when unknown.
const FormatDescriptor* find_format(const std::string& name);
// Like find_format but throws Error(kInvalidArgument) listing the known names.
const FormatDescriptor& require_format(const std::string& name);

struct ProbeResult {
  const FormatDescriptor* best = nullptr;
  int score = 0;
  std::vector<std::pair<const FormatDescriptor*, int>> scores;  // every non-zero score
};
ProbeResult probe_file(const File& file);

// Opens `path` as `format` (empty: probe). Warns through opts.warn when the
// bytes probe as raw but the extension names another format. Detects parent
// cycles and chains deeper than 64.
BlockDevicePtr open_image(const std::string& path, const std::string& format,
                          const OpenOptions& opts);

// The stand-in parent used under OpenOptions::missing_parents: `size`
// bytes whose read() and block_status() throw `why` again, and whose info()
// says the parent is missing and why.
BlockDevicePtr make_missing_parent(uint64_t size, const Error& why);

// Formats call this around their parent search: returns open_fn()'s result,
// or, when it throws kNotFound and opts.missing_parents is set, a
// make_missing_parent placeholder (the error is appended there).
template <typename OpenFn>
BlockDevicePtr open_parent_or_placeholder(const OpenOptions& opts, uint64_t size, OpenFn&& open_fn);

// Resolves a file name found inside `referencing_file` (a VMDK extent, a
// parent hint) relative to that file's folder. Unless opts.allow_outside_paths,
// refuses absolute names, ".." components and symlinks that lead outside the
// folder, with an Error(kInvalidArgument) naming `what` and the reason.
std::string resolve_sibling(const OpenOptions& opts, const std::string& referencing_file,
                            const std::string& name, const std::string& what);

// For parent locators written on Windows ("C:\\VMs\\base.vhd", ".\\base.vhd"):
// the path with backslashes turned into '/', a drive prefix removed, and the
// base name alone, for trying in the child's folder.
std::string windows_path_to_posix(const std::string& path);

template <typename OpenFn>
BlockDevicePtr open_parent_or_placeholder(const OpenOptions& opts, uint64_t size,
                                          OpenFn&& open_fn) {
  try {
    return open_fn();
  } catch (const Error& e) {
    if (!opts.missing_parents || e.kind() != ErrorKind::kNotFound) throw;
    opts.missing_parents->push_back(e.what());
    return make_missing_parent(size, e);
  }
}

}  // namespace vdisk
