#include "formats/core/parent.h"

#include <algorithm>
#include <cstring>

#include "formats/core/error.h"

namespace vdisk {

namespace {

// A path to try, and every candidate that led to it.
struct ParentPath {
  std::string path;
  std::string sources;
  bool searched = false;  // found by the folder search, not named by the child
};

OpenOptions parent_options(const OpenOptions& opts) {
  OpenOptions p = opts;
  p.depth = opts.depth + 1;
  p.parent_path.clear();  // --parent names the user's image's parent only
  return p;
}

std::vector<ParentPath> candidate_paths(const std::string& child_path, const ParentSpec& spec,
                                        const OpenOptions& opts, std::vector<std::string>& tried) {
  std::vector<ParentPath> paths;
  auto add = [&](const std::string& path, const std::string& source, bool searched) {
    auto it = std::find_if(paths.begin(), paths.end(),
                           [&](const ParentPath& p) { return p.path == path; });
    if (it == paths.end())
      paths.push_back({path, source, searched});
    else if (!searched)
      it->sources += ", " + source;
  };
  for (const ParentCandidate& c : spec.candidates) {
    if (c.name.empty()) {
      tried.push_back(c.source + ": " + c.refusal);
      continue;
    }
    try {
      add(resolve_sibling(opts, child_path, c.name, "parent"), c.source, false);
    } catch (const Error& e) {
      tried.push_back(c.source + ": " + e.message());
    }
  }
  if (!spec.search_extensions.empty()) {
    const std::string dir = path_dirname(child_path);
    std::vector<DirEntryInfo> entries = opts.environment().list_dir(dir);
    std::sort(entries.begin(), entries.end(),
              [](const DirEntryInfo& a, const DirEntryInfo& b) { return a.name < b.name; });
    for (const DirEntryInfo& e : entries) {
      if (e.is_directory || e.name == path_basename(child_path)) continue;
      const std::string ext = path_extension(e.name);
      if (std::find(spec.search_extensions.begin(), spec.search_extensions.end(), ext) ==
          spec.search_extensions.end())
        continue;
      try {
        add(resolve_sibling(opts, child_path, e.name, "parent candidate"), "the search of " + dir,
            true);
      } catch (const Error& err) {
        tried.push_back("the search of " + dir + ": " + err.message());
      }
    }
  }
  return paths;
}

}  // namespace

LocatedParent locate_parent(const std::string& child_path, const ParentSpec& spec,
                            const OpenOptions& opts, const LayerOpener& open_layer) {
  const OpenOptions popts = parent_options(opts);

  if (!opts.parent_path.empty()) {
    OpenedLayer p = open_layer(opts.parent_path, "", popts);
    ParentCheck c = spec.check ? spec.check(*p.device) : ParentCheck{};
    if (c.verdict == ParentVerdict::kMismatch && spec.mismatch_is_warning) {
      opts.warn(child_path + ": the parent given with --parent, " + opts.parent_path + ", " +
                c.why + "; the parent may have changed since this image was made");
    } else if (c.verdict == ParentVerdict::kMismatch) {
      throw Error(ErrorKind::kMismatch, child_path, spec.offset,
                  "the parent given with --parent, " + opts.parent_path + ", " + c.why);
    }
    if (c.verdict == ParentVerdict::kUnverifiable) {
      opts.warn(child_path + ": the parent given with --parent, " + opts.parent_path + ", " +
                c.why + ": its identity cannot be checked");
    }
    if (!c.warning.empty())
      opts.warn(child_path + ": parent " + opts.parent_path + " " + c.warning);
    return {std::move(p), opts.parent_path};
  }

  std::vector<std::string> tried;
  Env& env = opts.environment();
  for (const ParentPath& pp : candidate_paths(child_path, spec, opts, tried)) {
    const std::string what = pp.path + " (from " + pp.sources + ")";
    if (!env.exists(pp.path)) {
      tried.push_back(what + ": missing");
      continue;
    }
    OpenedLayer p;
    try {
      p = open_layer(pp.path, spec.format, popts);
    } catch (const Error& e) {
      // A file the child names that is damaged is reported as such; files
      // met by the folder search, and files of another format, are passed.
      if (!pp.searched && e.kind() != ErrorKind::kNotThisFormat) throw;
      tried.push_back(what + ": " + e.message());
      continue;
    }
    ParentCheck c = spec.check ? spec.check(*p.device) : ParentCheck{};
    if (c.verdict == ParentVerdict::kMismatch && spec.mismatch_is_warning && !pp.searched) {
      opts.warn(child_path + ": parent " + pp.path + " " + c.why +
                "; the parent may have changed since this image was made");
    } else if (c.verdict != ParentVerdict::kMatch) {
      tried.push_back(what + ": " + c.why);
      continue;
    }
    if (!c.warning.empty()) opts.warn(child_path + ": parent " + pp.path + " " + c.warning);
    return {std::move(p), pp.path};
  }
  std::string msg = "parent of this " + spec.child + " not found; tried: ";
  if (tried.empty()) msg += "nothing (the image names no parent file)";
  for (size_t i = 0; i < tried.size(); ++i) msg += (i ? "; " : "") + tried[i];
  msg += " (pass --parent PATH to name it)";
  throw Error(ErrorKind::kNotFound, child_path, spec.offset, msg);
}

BlockDevicePtr attach_parents(OpenedLayer layer, const std::string& path, const OpenOptions& opts,
                              const LayerOpener& open_layer) {
  std::shared_ptr<const ParentSpec> spec = layer.device->parent_spec();
  if (!spec) {
    if (!opts.parent_path.empty()) {
      opts.warn(path + ": not a differencing image; --parent " + opts.parent_path + " is ignored");
    }
    return std::move(layer.device);
  }
  if (opts.depth >= 64) {
    throw Error(ErrorKind::kCorrupt, path, std::nullopt, "parent chain is deeper than 64 images");
  }
  OpenOptions child = opts;
  if (layer.identity != std::pair<uint64_t, uint64_t>{0, 0})
    child.ancestors.push_back(layer.identity);
  BlockDevicePtr parent;
  std::string parent_path;
  try {
    LocatedParent found = locate_parent(path, *spec, child, open_layer);
    parent_path = found.path;
    parent = attach_parents(std::move(found.layer), found.path, parent_options(child), open_layer);
  } catch (const Error& e) {
    if (!opts.missing_parents || e.kind() != ErrorKind::kNotFound) throw;
    opts.missing_parents->push_back(e.what());
    parent = make_missing_parent(layer.device->size(), e);
  }
  return std::make_shared<LayeredDevice>(std::move(layer.device), std::move(parent), parent_path);
}

LayeredDevice::LayeredDevice(BlockDevicePtr layer, BlockDevicePtr parent, std::string parent_path)
    : layer_(std::move(layer)), parent_(std::move(parent)), parent_path_(std::move(parent_path)) {}

ImageInfo LayeredDevice::info() const {
  ImageInfo info = layer_->info();
  info.set_parent(parent_->info(), parent_path_);
  return info;
}

std::vector<const BlockDevice*> LayeredDevice::layers() const {
  std::vector<const BlockDevice*> out{layer_.get()};
  for (const BlockDevice* l : parent_->layers()) out.push_back(l);
  return out;
}

void LayeredDevice::read_parent(uint64_t offset, uint8_t* buf, size_t len) const {
  const uint64_t psize = parent_->size();
  size_t from_parent = 0;
  if (offset < psize) {
    from_parent = static_cast<size_t>(std::min<uint64_t>(len, psize - offset));
    parent_->read(offset, buf, from_parent);
  }
  if (from_parent < len) std::memset(buf + from_parent, 0, len - from_parent);
}

void LayeredDevice::do_read(uint64_t offset, void* buf, size_t len) const {
  auto* out = static_cast<uint8_t*>(buf);
  // Runs of the child's status: one child read for what it holds, one parent
  // read for what it does not.
  while (len > 0) {
    Extent e = layer_->block_status(offset, len);
    uint64_t run = e.length;
    const bool own = e.type != ExtentType::kUnallocated;
    while (run < len) {
      Extent next = layer_->block_status(offset + run, len - run);
      if ((next.type != ExtentType::kUnallocated) != own) break;
      run += next.length;
    }
    const size_t n = static_cast<size_t>(run);
    if (own)
      layer_->read(offset, out, n);
    else
      read_parent(offset, out, n);
    offset += n;
    out += n;
    len -= n;
  }
}

Extent LayeredDevice::do_block_status(uint64_t offset, uint64_t len) const {
  Extent e = layer_->block_status(offset, len);
  if (e.type != ExtentType::kUnallocated) return Extent{e.length, e.type, 0};
  const uint64_t psize = parent_->size();
  if (offset >= psize) return Extent{e.length, ExtentType::kUnallocated, 0};
  Extent pe = parent_->block_status(offset, std::min(e.length, psize - offset));
  return Extent{pe.length, pe.type, pe.depth + 1};
}

namespace {

class MissingParentDevice final : public BlockDevice {
 public:
  MissingParentDevice(uint64_t size, const Error& why) : size_(size), why_(why) {}
  uint64_t size() const override { return size_; }
  ImageInfo info() const override {
    ImageInfo info;
    info.path = "(missing parent)";
    info.format = "missing";
    info.virtual_size = size_;
    info.details.set("missing", true);
    info.details.set("error", why_.what());
    return info;
  }
  std::string label() const override { return "(missing parent)"; }

 protected:
  void do_read(uint64_t, void*, size_t) const override { throw why_; }
  Extent do_block_status(uint64_t, uint64_t) const override { throw why_; }

 private:
  uint64_t size_;
  Error why_;
};

}  // namespace

BlockDevicePtr make_missing_parent(uint64_t size, const Error& why) {
  return std::make_shared<MissingParentDevice>(size, why);
}

}  // namespace vdisk
