// `vdisk mount` and its options. Device wrappers (a ddrescue mapfile, …) go
// between opening the image and building the view; each adds its options to
// `desc` and its step in open_mount_device().
#include <malloc.h>
#include <sys/stat.h>

#include <cstdio>

#include "cli/cli.h"
#include "formats/core/error.h"
#include "mount/mount.h"

namespace vdisk::cli {

namespace {

// -o values: comma-separated, may repeat. Unknown ones are usage errors.
struct MountFlags {
  bool allow_other = false;
};

MountFlags parse_mount_flags(const po::variables_map& vm) {
  MountFlags f;
  if (!vm.count("options")) return f;
  for (const std::string& group : vm["options"].as<std::vector<std::string>>()) {
    size_t start = 0;
    while (start <= group.size()) {
      size_t comma = group.find(',', start);
      std::string opt =
          group.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      start = comma == std::string::npos ? group.size() + 1 : comma + 1;
      if (opt.empty()) continue;
      if (opt == "allow_other") {
        f.allow_other = true;
      } else if (opt == "ro") {
        // Always read-only; accepted for habit's sake.
      } else {
        throw UsageError("unknown mount option '" + opt + "' (known: allow_other, ro)");
      }
    }
  }
  return f;
}

// A rescued image seen through its ddrescue mapfile (or an image that lists
// its own unread sectors, an E01's error2): unrescued areas read as zeros
// (default) or fail with EIO, as the analyst chooses. The value is checked
// before the image is opened; whether there is anything to apply it to,
// after (open_mount_device).
ddrescue::BadAreaMode bad_area_mode_from(const po::variables_map& vm) {
  try {
    return ddrescue::parse_bad_area_mode(vm["bad-areas"].as<std::string>());
  } catch (const Error& e) {
    throw UsageError(e.message());
  }
}

BlockDevicePtr open_mount_device(const po::variables_map& vm, ddrescue::BadAreaMode mode) {
  BlockDevicePtr dev = open_from_args(vm, "image");
  if (auto rescued = rescued_from(vm, dev, vm["image"].as<std::string>(), mode)) return rescued;
  if (!vm["bad-areas"].defaulted()) {
    throw UsageError("--bad-areas needs --mapfile (or an image that lists its unread sectors)");
  }
  return dev;
}

Timestamp file_mtime(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return Timestamp{};
  return Timestamp{st.st_mtim.tv_sec, static_cast<uint32_t>(st.st_mtim.tv_nsec)};
}

}  // namespace

int cmd_mount(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_open_options(desc);
  add_mapfile_option(desc);
  desc.add_options()("bad-areas", po::value<std::string>()->default_value("zeros"),
                     "with --mapfile: what reads of unrescued areas return, zeros or eio")(
      "mode", po::value<std::string>()->default_value("auto"),
      "auto (a file tree when vdisk reads the image's file system, else block), block "
      "(disk.raw, p1, p2, ..., info.json) or tree")(
      "options,o", po::value<std::vector<std::string>>()->composing(),
      "mount options: allow_other (let other users in; needs user_allow_other in /etc/fuse.conf "
      "unless root)")("foreground", "stay in the foreground until unmounted (Ctrl-C unmounts)");
  const std::vector<Positional> pos = {
      {"image", "IMAGE", "image", "the image"},
      {"mountpoint", "MOUNTPOINT", "mount point", "an existing empty directory"},
  };
  po::variables_map vm;
  if (!parse_args("mount",
                  "[-f FMT] [--mode auto|block|tree] [-o allow_other] [--mapfile MAP [--bad-areas "
                  "zeros|eio]] "
                  "IMAGE MOUNTPOINT [--foreground]",
                  desc, pos, args, vm)) {
    return kExitOk;
  }
  mount::Mode mode;
  try {
    mode = mount::parse_mode(vm["mode"].as<std::string>());
  } catch (const Error& e) {
    throw UsageError(e.message());
  }
  MountFlags flags = parse_mount_flags(vm);
  const ddrescue::BadAreaMode bad_areas = bad_area_mode_from(vm);
  const std::string image = vm["image"].as<std::string>();
  // The cheap checks first: a bad mount point fails before the image is read.
  const std::string mountpoint = mount::check_mountpoint(vm["mountpoint"].as<std::string>());

  // libfuse serves each request on a thread of its pool, and glibc gives
  // each thread its own malloc arena that keeps what was freed in it: the
  // decoded units of a compressed image, spread over ~10 arenas, kept a
  // .img.gz mount at 221 MiB after 20 000 random reads of a 1 GiB disk.
  // Two arenas (one per core here) kept it at 147 MiB at the same rate.
  mallopt(M_ARENA_MAX, 2);
  BlockDevicePtr dev = open_mount_device(vm, bad_areas);
  mount::ViewRequest req;
  req.disk = dev;
  req.image = image;
  req.mode = mode;
  req.mtime = file_mtime(image);
  req.warn = [](const std::string& w) { std::fprintf(stderr, "vdisk: warning: %s\n", w.c_str()); };
  std::shared_ptr<const FileTree> view = mount::make_view(req);
  // Ctrl-C while the image was being read: stop before anything is mounted.
  if (cancel_flag().load())
    throw Error(ErrorKind::kInterrupted, image, std::nullopt, "interrupted");

  mount::ServeOptions sopts;
  sopts.mountpoint = mountpoint;
  sopts.fsname = Env::posix().real_path(image);
  sopts.allow_other = flags.allow_other;
  if (vm.count("foreground")) {
    mount::serve(view, sopts, [] {});
  } else {
    mount::serve_in_background(view, sopts);
  }
  return kExitOk;
}

}  // namespace vdisk::cli
