// vdisk commit CHILD: writes what the child stores into its parent, then
// checks that the parent (with its own parents) reads exactly as the child
// chain did. The child is left as it is: over the changed parent it still
// reads the same (qemu-img commit -d).
#include <algorithm>
#include <cstdio>
#include <vector>

#include "cli/cli.h"
#include "cli/inplace.h"
#include "formats/core/error.h"
#include "formats/core/file.h"
#include "formats/core/parent.h"

namespace vdisk::cli {

int cmd_commit(const std::vector<std::string>& args) {
  po::options_description desc("options");
  desc.add_options()("format,f", po::value<std::string>()->default_value(""),
                     "format of the child (default: probe)")(
      "parent", po::value<std::string>()->default_value(""),
      "the parent to write into (overrides the search)")(
      "allow-outside-paths", "let parent names point outside the child's folder");
  const std::vector<Positional> pos = {
      {"child", "CHILD", "child image", "the differencing image whose data goes into its parent"}};
  po::variables_map vm;
  if (!parse_args("commit", "[-f FMT] [--parent PARENT] CHILD", desc, pos, args, vm))
    return kExitOk;
  const std::string path = vm["child"].as<std::string>();
  OpenOptions opts = open_options_from(vm);

  BlockDevicePtr chain = open_image(path, vm["format"].as<std::string>(), opts);
  const auto* layered = dynamic_cast<const LayeredDevice*>(chain.get());
  if (!layered)
    throw Error(ErrorKind::kInvalidArgument, path, std::nullopt, "has no parent to commit into");
  const std::string parent_path = layered->parent()->label();
  const BlockDevice& child = layered->layer();

  // The parent is the one file written: it must not also be a file of the
  // child's own layer (a qcow2 external data file, a VMDK extent), which
  // the copy reads while the parent is written.
  {
    GuardedEnv guard(opts.environment());
    OpenOptions lopts = opts;
    lopts.env = &guard;
    open_layer(path, vm["format"].as<std::string>(), lopts);
    guard.claim_output("PARENT (committed into in place)", parent_path,
                       GuardedEnv::Maker::kCommand);
  }
  OpenOptions popts = opts;
  popts.parent_path.clear();
  InPlaceImage parent = open_in_place(parent_path, "", popts);
  if (!parent.format->update) {
    throw Error(ErrorKind::kUnsupported, parent_path, std::nullopt,
                "committing into " + parent.format->name +
                    " images is not supported (formats written in place: " +
                    formats_with([](const FormatDescriptor& f) { return f.update != nullptr; }) +
                    ")");
  }
  if (parent.layer->size() < chain->size()) {
    throw Error(ErrorKind::kUnsupported, path, std::nullopt,
                "the child (" + std::to_string(chain->size()) +
                    " bytes) is bigger than its parent " + parent_path + " (" +
                    std::to_string(parent.layer->size()) + " bytes): resize the parent first");
  }
  std::unique_ptr<ImageUpdater> updater = parent.format->update(*parent.file, *parent.layer);
  const uint64_t size = chain->size();
  const std::string before = guest_sha256(*chain);
  const uint64_t unit = updater->granularity();
  std::vector<uint8_t> buf(std::max<uint64_t>(unit, 1 << 20) / unit * unit);
  uint64_t written = 0;
  // Units are written whole; several extents of the child can fall in one
  // unit (a VHDX block whose sector bitmap alternates), so each unit is
  // written once: `done` is the end of the last unit written.
  uint64_t done = 0;
  for (uint64_t at = 0; at < size;) {
    const Extent e = child.block_status(at, size - at);
    if (e.type != ExtentType::kUnallocated) {
      const uint64_t end = std::min<uint64_t>(size, (at + e.length + unit - 1) / unit * unit);
      for (uint64_t u = std::max(done, at / unit * unit); u < end;) {
        if (cancel_flag().load()) throw Error(ErrorKind::kInterrupted, path, u, "interrupted");
        const uint64_t n = std::min<uint64_t>(buf.size(), (end - u + unit - 1) / unit * unit);
        std::fill(buf.begin(), buf.end(), 0);
        chain->read(u, buf.data(), static_cast<size_t>(std::min<uint64_t>(n, size - u)));
        updater->write(u, buf.data(), static_cast<size_t>(n));
        written += std::min<uint64_t>(n, size - u);
        u += n;
        done = u;
      }
    }
    at += e.length;
  }
  updater->flush();
  parent = InPlaceImage{};

  chain.reset();

  // The parent chain must now read as the child chain did: its first
  // chain->size() bytes hashed (a bigger parent keeps its tail).
  BlockDevicePtr committed = open_image(parent_path, "", popts);
  auto head = std::make_shared<SliceDevice>(committed, 0, size, parent_path);
  const std::string after = guest_sha256(*head);
  if (after != before) {
    throw Error(ErrorKind::kMismatch, parent_path, std::nullopt,
                "after the commit the parent does not read as the child did (SHA-256 " + after +
                    ", the child chain's " + before + ")");
  }
  std::printf("%s: %llu bytes committed into %s; the parent reads as the child did (SHA-256 %s)\n",
              path.c_str(), static_cast<unsigned long long>(written), parent_path.c_str(),
              after.c_str());
  return kExitOk;
}

}  // namespace vdisk::cli
