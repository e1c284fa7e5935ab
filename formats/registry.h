// The registry: the explicit lists of built-in formats and file systems
// (formats/builtin.cpp), lookup by name, probing, and opening an image with
// its whole parent chain. Everything above formats/ (converters, mount, cli,
// tests) opens images through here; format folders never include it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "formats/core/block_device.h"
#include "formats/core/file_tree.h"
#include "formats/core/format.h"
#include "formats/core/parent.h"

namespace vdisk {

// The explicit list of built-in formats, in the order `vdisk formats` shows.
const std::vector<const FormatDescriptor*>& builtin_formats();
// The explicit list of built-in file systems.
const std::vector<const FileSystemDescriptor*>& builtin_filesystems();

// By name or alias, case-insensitive; null when unknown.
const FormatDescriptor* find_format(const std::string& name);
// Like find_format but throws Error(kInvalidArgument) listing the known names.
const FormatDescriptor& require_format(const std::string& name);

struct ProbeResult {
  const FormatDescriptor* best = nullptr;
  int score = 0;
  std::vector<std::pair<const FormatDescriptor*, int>> scores;  // every non-zero score
};
// Scores every readable format against the head and tail of `file`.
ProbeResult probe_file(const File& file);

// Opens `path` as `format` (empty: probe) with its parents attached
// (attach_parents in formats/core/parent.h). Warns through opts.warn when
// the bytes probe as raw but the extension names another format.
BlockDevicePtr open_image(const std::string& path, const std::string& format,
                          const OpenOptions& opts);

// Opens one layer of `path` as `format` (empty: probe): the format's own
// device, parents not attached. Refuses a file among opts.ancestors.
OpenedLayer open_layer(const std::string& path, const std::string& format, const OpenOptions& opts);

// Opens the file tree of the best-probing file system on `dev`, or returns
// null when none recognises it.
std::unique_ptr<FileTree> open_file_tree(BlockDevicePtr dev, const std::string& label,
                                         const TreeOptions& opts = {});

// What `dev` (a partition) holds, for listings: the file system vdisk reads
// there as its tree's info() names it ("ext4", "FAT32", "ntfs"; with
// " (damaged: WHY)" when it probes but does not open), else a container the
// registry recognises ("a LUKS2 encrypted volume"), else "". Never throws
// Error: a read that fails is described as damage.
std::string describe_contents(BlockDevicePtr dev);

}  // namespace vdisk
