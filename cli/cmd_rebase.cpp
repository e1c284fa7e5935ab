// vdisk rebase -b NEW_PARENT [-F FMT] [-u] CHILD: makes CHILD name another
// parent. Safe mode (the default) keeps the guest content: every unit the
// child does not store and whose content differs between the old chain and
// the new parent is copied into the child first; the child over the new
// parent is then compared with the old chain, and only when they are equal
// is the header that names the new parent written. -u writes the header
// only (for a parent that was moved or renamed, content the same).
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

#include "cli/cli.h"
#include "cli/inplace.h"
#include "formats/core/error.h"
#include "formats/core/file.h"
#include "formats/core/parent.h"

namespace vdisk::cli {

namespace {

// Reads [offset, offset + len) of `dev`, zeros past its end.
void read_padded(const BlockDevice& dev, uint64_t offset, uint8_t* buf, size_t len) {
  std::memset(buf, 0, len);
  if (offset >= dev.size()) return;
  dev.read(offset, buf, static_cast<size_t>(std::min<uint64_t>(len, dev.size() - offset)));
}

}  // namespace

int cmd_rebase(const std::vector<std::string>& args) {
  po::options_description desc("options");
  desc.add_options()("backing,b",
                     po::value<std::string>()->default_value("")->value_name("NEW_PARENT"),
                     "the new parent, as the child will store it: relative to the child's folder "
                     "(\"\" makes the child stand alone)")(
      "backing-format,F", po::value<std::string>()->default_value(""),
      "format of the new parent (default: probe it)")(
      "unsafe,u",
      "write the new name only, copying nothing (the new parent must read the same as "
      "the old one)")("format,f", po::value<std::string>()->default_value(""),
                      "format of the child (default: probe)")(
      "allow-outside-paths", "let parent names point outside the child's folder");
  const std::vector<Positional> pos = {{"child", "CHILD", "child image", "the image to rebase"}};
  po::variables_map vm;
  if (!parse_args("rebase", "-b NEW_PARENT [-F FMT] [-u] [-f FMT] CHILD", desc, pos, args, vm))
    return kExitOk;
  // -b is required; "" is a value (no parent), so it is checked here.
  if (vm["backing"].defaulted())
    throw UsageError("missing -b: vdisk rebase -b NEW_PARENT CHILD (-b '' for no parent)");
  const std::string path = vm["child"].as<std::string>();
  const std::string name = vm["backing"].as<std::string>();
  OpenOptions opts = open_options_from(vm);

  InPlaceImage img = open_in_place(path, vm["format"].as<std::string>(), opts);
  if (!img.format->update) {
    throw Error(ErrorKind::kUnsupported, path, std::nullopt,
                "rebasing " + img.format->name + " images is not supported (formats that rebase: " +
                    formats_with([](const FormatDescriptor& f) {
                      return f.update != nullptr && f.name != "raw";
                    }) +
                    ")");
  }
  // The new parent as the child will find it: relative to the child's folder.
  const std::string parent_path = name.empty() ? "" : path_join(path_dirname(path), name);
  // The child is the one file written: no file of the new parent's chain
  // may be it (a descendant of the child named as its parent would make the
  // chain loop once the header is written, -u or not).
  GuardedEnv guard(opts.environment());
  guard.claim_output("CHILD (rebased in place)", path, GuardedEnv::Maker::kCommand);
  BlockDevicePtr new_parent;
  std::string parent_format = vm["backing-format"].as<std::string>();
  if (!name.empty()) {
    const auto parent_id = opts.environment().identity_of(parent_path);
    if (parent_id && parent_id == opts.environment().identity_of(path))
      throw Error(ErrorKind::kInvalidArgument, path, std::nullopt,
                  "cannot be its own parent (-b " + name + ")");
    OpenOptions popts = opts;
    popts.parent_path.clear();
    popts.env = &guard;
    new_parent = open_image(parent_path, parent_format, popts);
    if (parent_format.empty()) parent_format = new_parent->info().format;
  }
  // The new parent's own layer, whose identity the child records.
  const BlockDevice* parent_layer = new_parent ? new_parent->layers().front() : nullptr;
  if (new_parent && new_parent->size() != img.layer->size()) {
    throw Error(ErrorKind::kUnsupported, path, std::nullopt,
                "the new parent " + name + " has " + std::to_string(new_parent->size()) +
                    " bytes, the child " + std::to_string(img.layer->size()) +
                    ": a child is rebased onto a parent of its own size");
  }
  std::unique_ptr<ImageUpdater> updater = img.format->update(*img.file, *img.layer);

  if (vm.count("unsafe")) {
    updater->set_parent(name, parent_format, parent_layer);
    std::printf("%s: now names %s as its parent (unsafe: nothing copied or compared)\n",
                path.c_str(), name.empty() ? "no image" : name.c_str());
    return kExitOk;
  }

  // What the guest sees now.
  BlockDevicePtr old_chain = open_image(path, img.format->name, opts);
  const uint64_t size = old_chain->size();
  const std::string before = guest_sha256(*old_chain);
  const uint64_t unit = updater->granularity();
  std::vector<uint8_t> have(unit), want(unit);
  uint64_t copied = 0;
  // Several unallocated extents can fall in one unit (subclusters, sector
  // bitmaps): each unit is looked at once; `done` ends the last one.
  uint64_t done = 0;
  for (uint64_t at = 0; at < size;) {
    const Extent e = img.layer->block_status(at, size - at);
    if (e.type == ExtentType::kUnallocated) {
      for (uint64_t u = std::max(done, at / unit * unit); u < at + e.length; u += unit) {
        done = u + unit;
        if (cancel_flag().load()) throw Error(ErrorKind::kInterrupted, path, u, "interrupted");
        read_padded(*old_chain, u, want.data(), unit);
        if (new_parent) {
          read_padded(*new_parent, u, have.data(), unit);
        } else {
          std::fill(have.begin(), have.end(), 0);
        }
        if (have == want) continue;
        updater->write(u, want.data(), unit);
        copied += unit;
      }
    }
    at += e.length;
  }
  updater->flush();

  old_chain.reset();

  // The child as it now is, over the new parent, must read as before.
  BlockDevicePtr child = img.format->open(Env::posix().open_read(path), opts);
  BlockDevicePtr rebased =
      new_parent ? std::make_shared<LayeredDevice>(child, new_parent, parent_path) : child;
  const std::string after = guest_sha256(*rebased);
  if (after != before) {
    throw Error(ErrorKind::kMismatch, path, std::nullopt,
                "over the new parent the child would read differently (SHA-256 " + after +
                    ", before " + before + "); its parent was not changed");
  }
  updater->set_parent(name, parent_format, parent_layer);
  std::printf(
      "%s: now over %s; %llu bytes copied into the child; guest content (SHA-256 %s) checked "
      "before the header was written\n",
      path.c_str(), name.empty() ? "no parent" : name.c_str(),
      static_cast<unsigned long long>(copied), after.c_str());
  return kExitOk;
}

}  // namespace vdisk::cli
