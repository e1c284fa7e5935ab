// vdisk mkiso [-V LABEL] [--boot IMG [--no-emul-boot] [--boot-load-size N]
//   [--boot-info-table]] [--efi-boot IMG] [--hybrid [--hybrid-mbr FILE]]
//   [--no-joliet] [--no-rock-ridge] DIR -o OUT.iso
// Scans DIR (never following symlinks inside it) into an iso9660::MkisoNode
// tree and hands it to the ISO writer.
#include <dirent.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <vector>

#include "cli/cli.h"
#include "formats/core/error.h"
#include "formats/core/file.h"
#include "formats/iso9660/iso_writer.h"

namespace vdisk::cli {

namespace {

using iso9660::MkisoNode;

NodeType type_of(mode_t m) {
  if (S_ISDIR(m)) return NodeType::kDirectory;
  if (S_ISLNK(m)) return NodeType::kSymlink;
  if (S_ISCHR(m)) return NodeType::kCharDevice;
  if (S_ISBLK(m)) return NodeType::kBlockDevice;
  if (S_ISFIFO(m)) return NodeType::kFifo;
  if (S_ISSOCK(m)) return NodeType::kSocket;
  return NodeType::kRegular;
}

MkisoNode scan(const std::string& path, const struct stat& st, const std::string& name, int depth) {
  MkisoNode n;
  n.name = name;
  n.type = type_of(st.st_mode);
  n.mode = st.st_mode & 07777;
  n.uid = st.st_uid;
  n.gid = st.st_gid;
  n.mtime = st.st_mtime;
  n.atime = st.st_atime;
  n.ctime = st.st_ctime;
  if (n.type == NodeType::kRegular) {
    n.size = static_cast<uint64_t>(st.st_size);
    n.source_path = path;
  } else if (n.type == NodeType::kCharDevice || n.type == NodeType::kBlockDevice) {
    n.rdev = (static_cast<uint64_t>(major(st.st_rdev)) << 32) | minor(st.st_rdev);
  } else if (n.type == NodeType::kSymlink) {
    std::vector<char> buf(static_cast<size_t>(st.st_size > 0 ? st.st_size : 255) + 1);
    ssize_t len = ::readlink(path.c_str(), buf.data(), buf.size());
    if (len < 0) throw_errno(path, std::nullopt, "cannot read symlink", errno);
    n.link_target.assign(buf.data(), static_cast<size_t>(len));
  } else if (n.type == NodeType::kDirectory) {
    if (depth > 1000)
      throw Error(ErrorKind::kUnsupported, path, std::nullopt,
                  "directories nested deeper than 1000");
    DIR* d = ::opendir(path.c_str());
    if (!d) throw_errno(path, std::nullopt, "cannot open directory", errno);
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
      std::string nm = e->d_name;
      if (nm != "." && nm != "..") names.push_back(nm);
    }
    ::closedir(d);
    for (const std::string& nm : names) {
      std::string child = path + "/" + nm;
      struct stat cst;
      if (::lstat(child.c_str(), &cst) != 0) throw_errno(child, std::nullopt, "cannot stat", errno);
      n.children.push_back(scan(child, cst, nm, depth + 1));
    }
  }
  return n;
}

// A boot image named as a host path inside DIR ("DIR/boot/x.img") becomes
// the path inside the tree; anything else is taken as a path inside DIR.
std::string tree_relative(const std::string& dir, const std::string& image) {
  if (image.empty()) return image;
  std::string out = image;
  char* real_dir = ::realpath(dir.c_str(), nullptr);
  char* real_img = ::realpath(image.c_str(), nullptr);
  if (real_dir && real_img) {
    std::string d = real_dir, b = real_img;
    if (b.size() > d.size() + 1 && b.compare(0, d.size(), d) == 0 && b[d.size()] == '/')
      out = b.substr(d.size() + 1);
  }
  std::free(real_dir);
  std::free(real_img);
  return out;
}

}  // namespace

int cmd_mkiso(const std::vector<std::string>& args) {
  po::options_description desc("options");
  desc.add_options()("volid,V", po::value<std::string>()->default_value("CDROM"), "volume label")(
      "boot", po::value<std::string>()->default_value(""),
      "El Torito BIOS boot image: a file inside DIR (path relative to DIR, or a host path into "
      "DIR); no emulation, except that an image of exactly 1.2/1.44/2.88 MB is a floppy")(
      "no-emul-boot", "no emulation even for a floppy-sized --boot image")(
      "boot-load-size", po::value<uint16_t>(),
      "512-byte sectors the BIOS loads of the --boot image (isolinux and GRUB want 4; default: "
      "the whole image)")("boot-info-table",
                          "patch bytes 8-63 of the --boot image in the output with the boot "
                          "information table isolinux and GRUB need")(
      "efi-boot", po::value<std::string>()->default_value(""),
      "El Torito EFI boot image (a FAT image with EFI/BOOT/BOOTX64.EFI): a file inside DIR")(
      "hybrid",
      "make the image bootable from a USB stick too: an isohybrid MBR (partition 1: the image, "
      "partition 2: the --efi-boot image) and a GPT")(
      "hybrid-mbr", po::value<std::string>(),
      "MBR boot code for --hybrid (e.g. /usr/lib/ISOLINUX/isohdpfx.bin), patched to load the "
      "--boot image; implies --hybrid")("no-joliet", "leave out the Joliet tree")(
      "no-rock-ridge", "leave out Rock Ridge")("output,o", po::value<std::string>()->required(),
                                               "the ISO to write")("force",
                                                                   "replace OUT if it exists");
  const std::vector<Positional> pos = {{"dir", "DIR", "source directory", "source directory"}};
  po::variables_map vm;
  if (!parse_args("mkiso",
                  "[-V LABEL] [--boot IMG [--no-emul-boot] [--boot-load-size N] "
                  "[--boot-info-table]] [--efi-boot IMG] [--hybrid [--hybrid-mbr FILE]] "
                  "[--no-joliet] [--no-rock-ridge] DIR -o OUT.iso",
                  desc, pos, args, vm)) {
    return kExitOk;
  }
  std::string dir = vm["dir"].as<std::string>();
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) throw_errno(dir, std::nullopt, "cannot stat", errno);
  if (!S_ISDIR(st.st_mode)) throw UsageError(dir + " is not a directory");

  iso9660::MkisoOptions opts;
  opts.volume_id = vm["volid"].as<std::string>();
  opts.joliet = vm.count("no-joliet") == 0;
  opts.rock_ridge = vm.count("no-rock-ridge") == 0;
  opts.boot_image = tree_relative(dir, vm["boot"].as<std::string>());
  opts.efi_image = tree_relative(dir, vm["efi-boot"].as<std::string>());
  opts.boot_no_emulation = vm.count("no-emul-boot") != 0;
  opts.boot_info_table = vm.count("boot-info-table") != 0;
  if (vm.count("boot-load-size")) {
    uint16_t n = vm["boot-load-size"].as<uint16_t>();
    if (n == 0) throw UsageError("--boot-load-size must be 1 to 65535 sectors");
    opts.boot_load_size = n;
  }
  if ((opts.boot_no_emulation || opts.boot_info_table || opts.boot_load_size) &&
      opts.boot_image.empty()) {
    throw UsageError("--no-emul-boot, --boot-load-size and --boot-info-table apply to --boot IMG");
  }
  // The ISO may not be one of the files it is made from (an old ISO inside
  // DIR replaced with --force): every input is read through `guard`.
  GuardedEnv guard(Env::posix());
  guard.claim_output("the ISO", vm["output"].as<std::string>(), GuardedEnv::Maker::kEnv);
  opts.hybrid = vm.count("hybrid") != 0 || vm.count("hybrid-mbr") != 0;
  if (vm.count("hybrid-mbr")) {
    const std::string& mbr = vm["hybrid-mbr"].as<std::string>();
    std::unique_ptr<File> f = guard.open_read(mbr);
    if (f->size() < 432 || f->size() > 512) {
      throw Error(ErrorKind::kInvalidArgument, mbr, std::nullopt,
                  "an MBR boot code file is 432 to 512 bytes (isohdpfx.bin is 432), not " +
                      std::to_string(f->size()));
    }
    opts.hybrid_mbr.resize(432);
    f->read_at(0, opts.hybrid_mbr.data(), 432);
  }
  opts.overwrite = vm.count("force") != 0;
  opts.now = static_cast<int64_t>(std::time(nullptr));
  // reproducible-builds.org: SOURCE_DATE_EPOCH is decimal seconds since 1970.
  if (const char* sde = std::getenv("SOURCE_DATE_EPOCH"); sde && *sde) {
    char* end = nullptr;
    errno = 0;
    long long v = std::strtoll(sde, &end, 10);
    if (errno != 0 || *end != '\0' || v < 0) {
      throw UsageError(std::string("SOURCE_DATE_EPOCH must be a number of seconds, not '") + sde +
                       "'");
    }
    opts.source_date_epoch = v;
  }
  opts.env = &guard;

  std::string out = vm["output"].as<std::string>();
  if (!opts.overwrite && Env::posix().exists(out)) {
    throw Error(ErrorKind::kInvalidArgument, out, std::nullopt,
                "already exists (pass --force to replace it)");
  }
  MkisoNode root = scan(dir, st, "", 0);
  iso9660::MkisoResult r = iso9660::write_iso(root, opts, out);
  std::string summary = human_size(r.image_bytes) + ", " + count_of(r.files, "file", "files") +
                        ", " + count_of(r.directories, "directory", "directories");
  if (r.relocated_directories) {
    summary += ", " + count_of(r.relocated_directories, "deep directory", "deep directories") +
               " relocated";
  }
  if (r.multi_extent_files)
    summary += ", " + count_of(r.multi_extent_files, "multi-extent file", "multi-extent files");
  std::fprintf(stderr, "vdisk: wrote %s: %s\n", out.c_str(), summary.c_str());
  return kExitOk;
}

}  // namespace vdisk::cli
