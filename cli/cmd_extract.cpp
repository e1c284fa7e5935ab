// vdisk extract IMAGE [PATH] -C DIR: copy a file or directory of the file
// system inside an image to the host, keeping modes, times and symbolic links.
//
// Safety: names from the image are untrusted. Every file is created relative
// to an open directory descriptor (openat/mkdirat/symlinkat), names that are
// empty, ".", ".." or contain '/' are refused, files are created with
// O_EXCL|O_NOFOLLOW and directories reopened with O_NOFOLLOW, so nothing —
// not even a symlink extracted a moment earlier — can lead outside DIR.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>
#include <vector>

#include "cli/cli.h"
#include "cli/tree_open.h"
#include "formats/core/block_device.h"
#include "formats/core/error.h"

namespace vdisk::cli {

namespace {

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Bytes of file data extract may write per byte of the image it reads, before
// it stops: file systems here do not compress (NTFS's LZNT1 rarely passes 4:1
// and zeros are written as holes), so more means files that share or overlap
// their extents — legitimately hard links, in a crafted image a thousandfold
// blow-up (a 1.2 MB ISO extracted to 1 GB). --allow-overlap lifts it.
constexpr uint64_t kWriteRatio = 16;
constexpr uint64_t kWriteSlack = 64ull << 20;

struct Extractor {
  Extractor(const OpenedTree& tree, std::string d) : t(tree), dest(std::move(d)) {}
  const OpenedTree& t;
  std::string dest;      // for messages
  bool streams = false;  // --streams: named data streams too, as "file:stream"
  uint64_t files = 0, dirs = 0, links = 0, skipped = 0, stream_files = 0;
  uint64_t left_out = 0;  // entries the tree could not give (bad names, shared directories)
  uint64_t written = 0;   // bytes of file data written so far
  uint64_t write_limit = UINT64_MAX;  // see kWriteRatio
  std::set<NodeId> on_path;
  std::set<NodeId> seen_dirs;  // every directory extracted, anywhere in the tree
  std::vector<uint8_t> buf = std::vector<uint8_t>(1 << 20);

  [[noreturn]] void fail(const std::string& host_path, const std::string& what, int err) {
    throw_errno(host_path, std::nullopt, what, err);
  }

  void check_name(const std::string& name, const std::string& where) {
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
        name.find('\0') != std::string::npos) {
      throw Error(ErrorKind::kCorrupt, t.image, std::nullopt,
                  "refusing to extract an entry named '" + name + "' in " + where +
                      " (it would leave " + dest + ")");
    }
  }

  static timespec to_ts(const Timestamp& s) {
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(s.seconds);
    ts.tv_nsec = static_cast<long>(s.nanoseconds);
    return ts;
  }

  // Permission bits kept: set-user/group-ID are dropped (an image must not
  // hand out privileges); the sticky bit is kept.
  static mode_t keep_mode(uint32_t m) { return static_cast<mode_t>(m & 01777); }

  void extract(int parent_fd, const std::string& name, const NodeStat& st,
               const std::string& host_path) {
    check_name(name, host_path);
    timespec times[2] = {to_ts(st.atime), to_ts(st.mtime)};
    switch (st.type) {
      case NodeType::kDirectory: {
        if (::mkdirat(parent_fd, name.c_str(), 0700) != 0 && errno != EEXIST)
          fail(host_path, "cannot create directory", errno);
        int fd = ::openat(parent_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
          fail(host_path, "cannot open directory (a non-directory of that name exists?)", errno);
        Fd dir(fd);
        extract_children(fd, st.id, host_path);
        if (::fchmod(fd, keep_mode(st.mode)) != 0) fail(host_path, "cannot set mode", errno);
        if (::futimens(fd, times) != 0) fail(host_path, "cannot set times", errno);
        ++dirs;
        break;
      }
      case NodeType::kRegular: {
        write_file(parent_fd, name, st.id, st, host_path, times);
        ++files;
        if (streams) {
          // Named streams (NTFS alternate data streams) as "file:stream".
          for (const DirEntry& e : t.tree->streams(st.id)) {
            std::string sname = name + ":" + e.name;
            check_name(sname, host_path);
            write_file(parent_fd, sname, e.stat.id, e.stat, host_path + ":" + e.name, times);
            ++stream_files;
          }
        }
        break;
      }
      case NodeType::kSymlink: {
        std::string target = t.tree->readlink(st.id);
        if (::symlinkat(target.c_str(), parent_fd, name.c_str()) != 0)
          fail(host_path, "cannot create symlink", errno);
        ::utimensat(parent_fd, name.c_str(), times, AT_SYMLINK_NOFOLLOW);
        ++links;
        break;
      }
      case NodeType::kFifo: {
        if (::mkfifoat(parent_fd, name.c_str(), keep_mode(st.mode)) != 0)
          fail(host_path, "cannot create fifo", errno);
        ::utimensat(parent_fd, name.c_str(), times, AT_SYMLINK_NOFOLLOW);
        ++files;
        break;
      }
      default: {
        mode_t type = st.type == NodeType::kCharDevice    ? S_IFCHR
                      : st.type == NodeType::kBlockDevice ? S_IFBLK
                                                          : 0;
        dev_t dev = makedev(static_cast<unsigned>(st.rdev >> 32),
                            static_cast<unsigned>(st.rdev & 0xFFFFFFFF));
        if (type == 0 || ::mknodat(parent_fd, name.c_str(), type | keep_mode(st.mode), dev) != 0) {
          std::fprintf(stderr, "vdisk: warning: %s: device or socket not created (%s)\n",
                       host_path.c_str(), type == 0 ? "socket" : std::strerror(errno));
          ++skipped;
        } else {
          ++files;
        }
        break;
      }
    }
  }

  // Creates `name` under parent_fd with the bytes of node `id`. Holes the
  // tree reports (FileTree::file_extent) and zero runs stay holes: a sparse
  // file in the image stays sparse here.
  void write_file(int parent_fd, const std::string& name, NodeId id, const NodeStat& st,
                  const std::string& host_path, const timespec* times) {
    int fd = ::openat(parent_fd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                      0600);
    if (fd < 0) fail(host_path, "cannot create file", errno);
    Fd out(fd);
    uint64_t off = 0;
    bool short_read = false;
    while (off < st.size && !short_read) {
      if (cancel_flag().load()) throw Error(ErrorKind::kInterrupted, host_path, off, "interrupted");
      Extent ext = t.tree->file_extent(id, off);
      if (ext.length == 0) break;
      uint64_t ext_end = off + std::min<uint64_t>(ext.length, st.size - off);
      if (ext.type != ExtentType::kData) {
        off = ext_end;
        continue;
      }
      while (off < ext_end) {
        size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), ext_end - off));
        size_t n = t.tree->read(id, off, buf.data(), want);
        if (n == 0) {
          short_read = true;
          break;
        }
        if (!is_zero(buf.data(), n)) {
          if (n > write_limit - written) {
            throw Error(ErrorKind::kCorrupt, t.image, std::nullopt,
                        host_path + ": extracting would write more than " +
                            std::to_string(write_limit) + " bytes from a " +
                            std::to_string(t.device->size()) +
                            "-byte image: files share or overlap their data (pass "
                            "--allow-overlap if that is expected, e.g. hard links)");
          }
          written += n;
          size_t done = 0;
          while (done < n) {
            ssize_t w = ::pwrite(fd, buf.data() + done, n - done, static_cast<off_t>(off + done));
            if (w < 0) {
              if (errno == EINTR) continue;
              fail(host_path, "write failed", errno);
            }
            done += static_cast<size_t>(w);
          }
        }
        off += n;
      }
    }
    if (off != st.size) {
      throw Error(ErrorKind::kCorrupt, t.image, std::nullopt,
                  host_path + ": file ends after " + std::to_string(off) + " of " +
                      std::to_string(st.size) + " bytes");
    }
    if (::ftruncate(fd, static_cast<off_t>(st.size)) != 0)
      fail(host_path, "cannot set size", errno);
    if (::fchmod(fd, keep_mode(st.mode)) != 0) fail(host_path, "cannot set mode", errno);
    if (::futimens(fd, times) != 0) fail(host_path, "cannot set times", errno);
  }

  void extract_children(int dir_fd, NodeId dir, const std::string& host_dir) {
    if (!on_path.insert(dir).second) {
      throw Error(ErrorKind::kCorrupt, t.image, std::nullopt, "directory loop at " + host_dir);
    }
    seen_dirs.insert(dir);
    std::vector<DirEntry> entries = t.tree->list(dir);
    left_out += report_skipped(t, dir, host_dir);
    for (const DirEntry& e : entries) {
      if (e.stat.type == NodeType::kDirectory && seen_dirs.count(e.stat.id)) {
        // A directory reached from two places: a shared subtree doubles the
        // work with every level.
        std::fprintf(stderr,
                     "vdisk: warning: %s: skipped %s/%s: a directory already extracted (corrupt "
                     "file system: one directory reached from two places)\n",
                     t.image.c_str(), host_dir.c_str(), e.name.c_str());
        ++left_out;
        continue;
      }
      extract(dir_fd, e.name, e.stat, host_dir + "/" + e.name);
    }
    on_path.erase(dir);
  }
};

}  // namespace

int cmd_extract(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_open_options(desc);
  add_tree_options(desc);
  desc.add_options()("directory,C", po::value<std::string>()->required(),
                     "destination directory (created if missing)")("quiet,q", "print no summary")(
      "streams", "also extract named data streams (NTFS alternate data streams) as FILE:STREAM")(
      "allow-overlap",
      "write more file data than 16 times the image size (files that share their data, such as "
      "hard links; without it that stops extraction, as a crafted image could fill the disk)");
  const std::vector<Positional> pos = {
      {"image", "IMAGE", "image", "the image (IMAGE@pN: its partition N; IMAGE@pN:PATH)"},
      {"path", "PATH", "path", "file or directory inside the image (default: all)", false, "/"},
  };
  po::variables_map vm;
  if (!parse_args("extract",
                  "[--partition N] [--streams] [--allow-overlap] IMAGE[@pN[:PATH]] [PATH] -C DIR",
                  desc, pos, args, vm))
    return kExitOk;
  OpenedTree t = open_tree_from_args(vm, "image");
  std::string path = command_path(t, vm, "path", "/");
  std::string dest = vm["directory"].as<std::string>();
  NodeId node = tree_path(t, path);
  NodeStat st = t.tree->stat(node);

  if (::mkdir(dest.c_str(), 0755) != 0 && errno != EEXIST)
    throw_errno(dest, std::nullopt, "cannot create directory", errno);
  int fd = ::open(dest.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_errno(dest, std::nullopt, "cannot open destination directory", errno);
  Fd root(fd);
  Extractor x(t, dest);
  x.streams = vm.count("streams") != 0;
  if (!vm.count("allow-overlap")) {
    uint64_t size = t.device->size();
    x.write_limit = size > (UINT64_MAX - kWriteSlack) / kWriteRatio
                        ? UINT64_MAX
                        : size * kWriteRatio + kWriteSlack;
  }
  if (st.type == NodeType::kDirectory) {
    x.extract_children(fd, node, dest);
  } else {
    std::string name =
        path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
    x.extract(fd, name, st, dest + "/" + name);
  }
  if (!vm.count("quiet")) {
    std::string extra;
    if (x.stream_files) extra += ", " + count_of(x.stream_files, "stream", "streams");
    if (x.skipped + x.left_out)
      extra += " (" + std::to_string(x.skipped + x.left_out) + " skipped)";
    std::fprintf(stderr, "vdisk: extracted %s, %s, %s into %s%s\n",
                 count_of(x.files, "file", "files").c_str(),
                 count_of(x.dirs, "directory", "directories").c_str(),
                 count_of(x.links, "symlink", "symlinks").c_str(), dest.c_str(), extra.c_str());
  }
  // Finished, but entries of the image are missing from DIR.
  return x.left_out ? kExitDataLost : kExitOk;
}

}  // namespace vdisk::cli
