#include "formats/registry.h"

#include <algorithm>
#include <cctype>

#include "formats/core/error.h"
#include "formats/foreign.h"

namespace vdisk {

namespace {
std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}
}  // namespace

const FormatDescriptor* find_format(const std::string& name) {
  std::string n = lower(name);
  for (const FormatDescriptor* f : builtin_formats()) {
    if (f->name == n) return f;
    for (auto& a : f->aliases) {
      if (a == n) return f;
    }
  }
  return nullptr;
}

const FormatDescriptor& require_format(const std::string& name) {
  if (const FormatDescriptor* f = find_format(name)) return *f;
  std::string known;
  for (const FormatDescriptor* f : builtin_formats())
    known += (known.empty() ? "" : ", ") + f->name;
  throw Error(ErrorKind::kInvalidArgument, "", std::nullopt,
              "unknown format '" + name + "' (known: " + known + ")");
}

namespace {

// The bytes a probe sees: the head and the tail of the file.
struct FileProbe {
  std::vector<uint8_t> head, tail;
  ProbeInput input;
  explicit FileProbe(const File& file) {
    input.path = file.path();
    input.file_size = file.size();
    head.resize(static_cast<size_t>(std::min<uint64_t>(kProbeHeadBytes, input.file_size)));
    tail.resize(static_cast<size_t>(std::min<uint64_t>(kProbeTailBytes, input.file_size)));
    head.resize(file.read_some(0, head.data(), head.size()));
    tail.resize(file.read_some(input.file_size - tail.size(), tail.data(), tail.size()));
    input.head = head;
    input.tail = tail;
  }
};

ProbeResult score_formats(const ProbeInput& in) {
  ProbeResult result;
  for (const FormatDescriptor* f : builtin_formats()) {
    if (!f->probe || !f->open) continue;
    int score = f->probe(in);
    if (score <= 0) continue;
    result.scores.emplace_back(f, score);
    if (score > result.score) {
      result.score = score;
      result.best = f;
    }
  }
  return result;
}

}  // namespace

ProbeResult probe_file(const File& file) {
  FileProbe p(file);
  return score_formats(p.input);
}

OpenedLayer open_layer(const std::string& path, const std::string& format,
                       const OpenOptions& opts) {
  std::shared_ptr<const File> file = opts.environment().open_read(path);
  const auto id = file->identity();
  if (id != std::pair<uint64_t, uint64_t>{0, 0} &&
      std::find(opts.ancestors.begin(), opts.ancestors.end(), id) != opts.ancestors.end()) {
    throw Error(ErrorKind::kCorrupt, path, std::nullopt,
                "parent chain loops: this image is its own ancestor");
  }
  const FormatDescriptor* fmt = nullptr;
  if (!format.empty()) {
    fmt = &require_format(format);
  } else {
    if (file->size() == 0) {
      throw Error(ErrorKind::kInvalidArgument, path, std::nullopt,
                  "file is empty: not a disk image (use -f raw to treat it as a 0-byte raw disk)");
    }
    FileProbe probe(*file);
    ProbeResult pr = score_formats(probe.input);
    // A container vdisk does not read is refused by name rather than read
    // as raw bytes; a format whose own signature matched has won already.
    if (pr.score < kProbeSignature) {
      if (auto foreign = identify_foreign(probe.input)) {
        throw Error(ErrorKind::kUnsupported, path, std::nullopt,
                    foreign_message(*foreign, "pass -f raw to treat the file as a raw disk"));
      }
    }
    if (!pr.best) {
      throw Error(ErrorKind::kNotThisFormat, path, std::nullopt, "no format recognises this file");
    }
    fmt = pr.best;
    if (pr.score <= kProbeFallback) {
      std::string ext = path_extension(path);
      for (const FormatDescriptor* f : builtin_formats()) {
        if (f == fmt) continue;
        if (std::find(f->extensions.begin(), f->extensions.end(), ext) != f->extensions.end()) {
          opts.warn(path + ": extension ." + ext + " suggests " + f->name +
                    " but the contents carry no " + f->name + " signature; reading as " +
                    fmt->name + " (pass -f " + f->name + " to insist)");
          break;
        }
      }
    }
  }
  if (!fmt->open) {
    throw Error(ErrorKind::kUnsupported, path, std::nullopt,
                "format " + fmt->name + " cannot be read");
  }
  if (!opts.snapshot.empty() && !fmt->has_snapshots) {
    throw Error(
        ErrorKind::kInvalidArgument, path, std::nullopt,
        "--snapshot " + opts.snapshot + ": " + fmt->name + " images have no internal snapshots");
  }
  return {fmt->open(std::move(file), opts), id};
}

BlockDevicePtr open_image(const std::string& path, const std::string& format,
                          const OpenOptions& opts) {
  return attach_parents(open_layer(path, format, opts), path, opts, &open_layer);
}

std::unique_ptr<FileTree> open_file_tree(BlockDevicePtr dev, const std::string& label,
                                         const TreeOptions& opts) {
  const FileSystemDescriptor* best = nullptr;
  int best_score = 0;
  for (const FileSystemDescriptor* fs : builtin_filesystems()) {
    int s = 0;
    try {
      s = fs->probe(*dev);
    } catch (const Error&) {
      s = 0;
    }
    if (s > best_score) {
      best_score = s;
      best = fs;
    }
  }
  if (!best) return nullptr;
  if (best->open_with) return best->open_with(std::move(dev), label, opts);
  return best->open(std::move(dev), label);
}

std::string describe_contents(BlockDevicePtr dev) {
  try {
    if (std::unique_ptr<FileTree> tree = open_file_tree(dev, dev->label())) {
      const Json info = tree->info();
      const Json* fs = info.find("filesystem");
      return fs && fs->is_string() ? fs->as_string() : "a file system";
    }
  } catch (const Error& e) {
    return std::string("a damaged file system (") + e.what() + ")";
  }
  if (auto foreign = identify_foreign(*dev)) return foreign->article;
  return "";
}

}  // namespace vdisk
