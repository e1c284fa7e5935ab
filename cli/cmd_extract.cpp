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

struct Extractor {
  Extractor(const OpenedTree& tree, std::string d) : t(tree), dest(std::move(d)) {}
  const OpenedTree& t;
  std::string dest;  // for messages
  uint64_t files = 0, dirs = 0, links = 0, skipped = 0;
  std::set<NodeId> on_path;
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
        int fd = ::openat(parent_fd, name.c_str(),
                          O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) fail(host_path, "cannot create file", errno);
        Fd out(fd);
        uint64_t off = 0;
        while (off < st.size) {
          if (cancel_flag().load())
            throw Error(ErrorKind::kInterrupted, host_path, off, "interrupted");
          size_t n = t.tree->read(st.id, off, buf.data(), buf.size());
          if (n == 0) break;
          // Zero runs stay holes: a sparse file in the image stays sparse here.
          if (!is_zero(buf.data(), n)) {
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
        if (off != st.size) {
          throw Error(ErrorKind::kCorrupt, t.image, std::nullopt,
                      host_path + ": file ends after " + std::to_string(off) + " of " +
                          std::to_string(st.size) + " bytes");
        }
        if (::ftruncate(fd, static_cast<off_t>(st.size)) != 0)
          fail(host_path, "cannot set size", errno);
        if (::fchmod(fd, keep_mode(st.mode)) != 0) fail(host_path, "cannot set mode", errno);
        if (::futimens(fd, times) != 0) fail(host_path, "cannot set times", errno);
        ++files;
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

  void extract_children(int dir_fd, NodeId dir, const std::string& host_dir) {
    if (!on_path.insert(dir).second) {
      throw Error(ErrorKind::kCorrupt, t.image, std::nullopt, "directory loop at " + host_dir);
    }
    for (const DirEntry& e : t.tree->list(dir)) {
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
                     "destination directory (created if missing)")("quiet,q", "print no summary");
  const std::vector<Positional> pos = {
      {"image", "IMAGE", "image", "the image (IMAGE@pN: its partition N; IMAGE@pN:PATH)"},
      {"path", "PATH", "path", "file or directory inside the image (default: all)", false, "/"},
  };
  po::variables_map vm;
  if (!parse_args("extract", "[--partition N] IMAGE[@pN[:PATH]] [PATH] -C DIR", desc, pos, args,
                  vm))
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
  if (st.type == NodeType::kDirectory) {
    x.extract_children(fd, node, dest);
  } else {
    std::string name =
        path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
    x.extract(fd, name, st, dest + "/" + name);
  }
  if (!vm.count("quiet")) {
    std::fprintf(stderr, "vdisk: extracted %s, %s, %s into %s%s\n",
                 count_of(x.files, "file", "files").c_str(),
                 count_of(x.dirs, "directory", "directories").c_str(),
                 count_of(x.links, "symlink", "symlinks").c_str(), dest.c_str(),
                 x.skipped ? (" (" + std::to_string(x.skipped) + " skipped)").c_str() : "");
  }
  return kExitOk;
}

}  // namespace vdisk::cli
