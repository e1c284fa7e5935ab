#include "formats/core/registry.h"

#include <algorithm>
#include <cctype>

#include "formats/core/error.h"

namespace vdisk {

Env& OpenOptions::environment() const {
  return env ? *env : Env::posix();
}

void default_warning(const std::string& message) {
  std::fprintf(stderr, "vdisk: warning: %s\n", message.c_str());
}

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

ProbeResult probe_file(const File& file) {
  ProbeInput in;
  in.path = file.path();
  in.file_size = file.size();
  std::vector<uint8_t> head(static_cast<size_t>(std::min<uint64_t>(kProbeHeadBytes, in.file_size)));
  std::vector<uint8_t> tail(static_cast<size_t>(std::min<uint64_t>(kProbeTailBytes, in.file_size)));
  head.resize(file.read_some(0, head.data(), head.size()));
  tail.resize(file.read_some(in.file_size - tail.size(), tail.data(), tail.size()));
  in.head = head;
  in.tail = tail;
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

BlockDevicePtr open_image(const std::string& path, const std::string& format,
                          const OpenOptions& opts) {
  if (opts.depth > 64) {
    throw Error(ErrorKind::kCorrupt, path, std::nullopt, "parent chain is deeper than 64 images");
  }
  std::shared_ptr<const File> file = opts.environment().open_read(path);
  auto id = file->identity();
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
    ProbeResult pr = probe_file(*file);
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
  OpenOptions child = opts;
  if (id != std::pair<uint64_t, uint64_t>{0, 0}) child.ancestors.push_back(id);
  return fmt->open(std::move(file), child);
}

namespace {

class MissingParentDevice final : public BlockDevice {
 public:
  MissingParentDevice(uint64_t size, const Error& why) : size_(size), why_(why) {}
  uint64_t size() const override { return size_; }
  void read(uint64_t, void*, size_t) const override { throw why_; }
  Extent block_status(uint64_t, uint64_t) const override { throw why_; }
  ImageInfo info() const override {
    ImageInfo info;
    info.path = "(missing parent)";
    info.format = "missing";
    info.virtual_size = size_;
    info.details.set("missing", true);
    info.details.set("error", why_.what());
    return info;
  }

 private:
  uint64_t size_;
  Error why_;
};

}  // namespace

BlockDevicePtr make_missing_parent(uint64_t size, const Error& why) {
  return std::make_shared<MissingParentDevice>(size, why);
}

std::string windows_path_to_posix(const std::string& path) {
  std::string p = path;
  std::replace(p.begin(), p.end(), '\\', '/');
  if (p.size() >= 2 && std::isalpha(static_cast<unsigned char>(p[0])) && p[1] == ':')
    p = p.substr(2);
  return p;
}

std::string resolve_sibling(const OpenOptions& opts, const std::string& referencing_file,
                            const std::string& name, const std::string& what) {
  std::string dir = path_dirname(referencing_file);
  if (name.empty()) {
    throw Error(ErrorKind::kCorrupt, referencing_file, std::nullopt, what + " name is empty");
  }
  std::string candidate = path_join(dir, name);
  if (opts.allow_outside_paths) return candidate;

  const std::string hint = " (pass --allow-outside-paths to allow it)";
  if (name[0] == '/') {
    throw Error(ErrorKind::kInvalidArgument, referencing_file, std::nullopt,
                what + " '" + name +
                    "' is an absolute path; refusing to read outside the image's folder" + hint);
  }
  size_t start = 0;
  while (start <= name.size()) {
    size_t slash = name.find('/', start);
    std::string comp =
        name.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (comp == "..") {
      throw Error(ErrorKind::kInvalidArgument, referencing_file, std::nullopt,
                  what + " '" + name + "' climbs out of the image's folder with '..'" + hint);
    }
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  Env& env = opts.environment();
  if (env.exists(candidate)) {
    std::string real_dir = env.real_path(dir);
    std::string real = env.real_path(candidate);
    if (real.compare(0, real_dir.size() + 1, real_dir + "/") != 0 && real != real_dir) {
      throw Error(
          ErrorKind::kInvalidArgument, referencing_file, std::nullopt,
          what + " '" + name + "' is a symlink to " + real + ", outside the image's folder" + hint);
    }
  }
  return candidate;
}

}  // namespace vdisk
