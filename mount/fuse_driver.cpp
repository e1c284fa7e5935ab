// libfuse3 low-level operations over a FileTree, read-only, multithreaded.
#define FUSE_USE_VERSION 312
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <vector>

#include "formats/core/error.h"
#include "mount/mount.h"
#include "mount/mountinfo.h"

namespace vdisk::mount {

namespace {

// The image cannot change while mounted, so the kernel may cache names,
// attributes and pages for as long as it likes.
constexpr double kCacheTimeout = 86400.0;
// Largest read the kernel sends (max_read, and max_write, from which libfuse
// derives max_pages) and the read-ahead window asked for.
constexpr unsigned kMaxIo = 1u << 20;
// Read-ahead window: four requests of kMaxIo in flight keep both cores and
// the disk busy. With a window of one request, a sequential read of a 4 GiB
// VMDK took 1.5 s (image file cached) and 1.9 s (cold) here; with four, 1.0 s
// and 1.55 s. Larger windows measured no better.
constexpr unsigned kReadahead = 4 * kMaxIo;

struct Context {
  std::shared_ptr<const FileTree> tree;
  NodeId root = 0;
  bool syslog = false;
  std::mutex log_mutex;
};

Context& context(fuse_req_t req) {
  return *static_cast<Context*>(fuse_req_userdata(req));
}

// The one place where C++ errors become errnos: every operation runs its body
// through here, and nothing thrown reaches libfuse's C frames. A body replies
// only as its last step, so a throw never follows a reply.
template <typename Body>
void guarded(fuse_req_t req, Body&& body) noexcept {
  int err = EIO;
  try {
    body();
    return;
  } catch (const Error& e) {
    err = e.to_errno();
    if (e.kind() != ErrorKind::kNotFound) {
      // Damage inside the image is worth a line in the foreground (the
      // daemon's stderr is /dev/null).
      Context& c = context(req);
      if (c.syslog) {
        ::syslog(LOG_ERR, "%s", e.what());
      } else {
        std::lock_guard<std::mutex> lock(c.log_mutex);
        std::fprintf(stderr, "vdisk: %s\n", e.what());
      }
    }
  } catch (const std::bad_alloc&) {
    err = ENOMEM;
  } catch (...) {
    err = EIO;
  }
  fuse_reply_err(req, err);
}

fuse_ino_t to_ino(const Context& c, NodeId node) {
  if (node == c.root) return FUSE_ROOT_ID;
  // FUSE_ROOT_ID is 1: other nodes are shifted by 2 so none lands on it.
  if (node >= UINT64_MAX - 1) {
    throw Error(ErrorKind::kUnsupported, "", std::nullopt, "node id too large for FUSE");
  }
  return node + 2;
}

NodeId to_node(const Context& c, fuse_ino_t ino) {
  return ino == FUSE_ROOT_ID ? c.root : ino - 2;
}

mode_t type_bits(NodeType t) {
  switch (t) {
    case NodeType::kRegular:
      return S_IFREG;
    case NodeType::kDirectory:
      return S_IFDIR;
    case NodeType::kSymlink:
      return S_IFLNK;
    case NodeType::kCharDevice:
      return S_IFCHR;
    case NodeType::kBlockDevice:
      return S_IFBLK;
    case NodeType::kFifo:
      return S_IFIFO;
    case NodeType::kSocket:
      return S_IFSOCK;
  }
  return S_IFREG;
}

struct stat to_stat(const Context& c, const NodeStat& n) {
  struct stat st;
  std::memset(&st, 0, sizeof st);
  st.st_ino = to_ino(c, n.id);
  st.st_mode = type_bits(n.type) | (n.mode & 07777);
  st.st_nlink = n.nlink;
  st.st_uid = n.uid;
  st.st_gid = n.gid;
  st.st_size = static_cast<off_t>(n.size);
  // NodeStat::rdev is major << 32 | minor (what the ISO and ext trees and
  // `vdisk ls -l` use); the kernel wants its own dev_t encoding.
  st.st_rdev = makedev(static_cast<unsigned>(n.rdev >> 32), static_cast<unsigned>(n.rdev));
  st.st_blksize = n.type == NodeType::kRegular ? kMaxIo : 4096;
  st.st_blocks = static_cast<blkcnt_t>((n.size + 511) / 512);
  st.st_mtim = {n.mtime.seconds, static_cast<long>(n.mtime.nanoseconds)};
  st.st_atim = {n.atime.seconds, static_cast<long>(n.atime.nanoseconds)};
  st.st_ctim = {n.ctime.seconds, static_cast<long>(n.ctime.nanoseconds)};
  return st;
}

void op_init(void*, struct fuse_conn_info* conn) {
  conn->max_write = kMaxIo;  // libfuse sizes max_pages from this: 256 pages = 1 MiB reads
  conn->max_read = kMaxIo;   // must equal the max_read mount option
  conn->max_readahead = kReadahead;
  conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;  // attributes never change: keep the page cache
  if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
  if (conn->capable & FUSE_CAP_CACHE_SYMLINKS) conn->want |= FUSE_CAP_CACHE_SYMLINKS;
  if (conn->capable & FUSE_CAP_ASYNC_READ) conn->want |= FUSE_CAP_ASYNC_READ;
}

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  guarded(req, [&] {
    Context& c = context(req);
    struct fuse_entry_param e;
    std::memset(&e, 0, sizeof e);
    e.attr_timeout = kCacheTimeout;
    e.entry_timeout = kCacheTimeout;
    NodeId node;
    try {
      node = c.tree->lookup(to_node(c, parent), name);
    } catch (const Error& err) {
      if (err.kind() != ErrorKind::kNotFound) throw;
      fuse_reply_entry(req, &e);  // ino 0: a cached negative entry
      return;
    }
    e.attr = to_stat(c, c.tree->stat(node));
    e.ino = e.attr.st_ino;
    fuse_reply_entry(req, &e);
  });
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info*) {
  guarded(req, [&] {
    Context& c = context(req);
    struct stat st = to_stat(c, c.tree->stat(to_node(c, ino)));
    fuse_reply_attr(req, &st, kCacheTimeout);
  });
}

void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  guarded(req, [&] {
    Context& c = context(req);
    std::string target = c.tree->readlink(to_node(c, ino));
    fuse_reply_readlink(req, target.c_str());
  });
}

void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  guarded(req, [&] {
    if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
      fuse_reply_err(req, EROFS);
      return;
    }
    Context& c = context(req);
    NodeStat st = c.tree->stat(to_node(c, ino));
    if (st.type == NodeType::kDirectory) {
      fuse_reply_err(req, EISDIR);
      return;
    }
    fi->keep_cache = 1;
    fi->noflush = 1;
    fuse_reply_open(req, fi);
  });
}

void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info*) {
  guarded(req, [&] {
    Context& c = context(req);
    // One buffer per serving thread, grown to the largest request (bounded
    // by max_read), so reads allocate nothing in the steady state.
    thread_local std::vector<char> buf;
    if (buf.size() < size) buf.resize(size);
    size_t got = c.tree->read(to_node(c, ino), static_cast<uint64_t>(off), buf.data(), size);
    fuse_reply_buf(req, buf.data(), got);
  });
}

void op_release(fuse_req_t req, fuse_ino_t, struct fuse_file_info*) {
  fuse_reply_err(req, 0);
}

// A directory handle: the listing taken at opendir, so readdir offsets stay
// stable and the tree is listed once per open.
struct DirHandle {
  std::vector<std::pair<std::string, struct stat>> entries;
};

void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  guarded(req, [&] {
    Context& c = context(req);
    NodeId node = to_node(c, ino);
    auto h = std::make_unique<DirHandle>();
    struct stat self = to_stat(c, c.tree->stat(node));
    h->entries.emplace_back(".", self);
    h->entries.emplace_back("..", self);  // the kernel fills in the real parent
    for (const DirEntry& e : c.tree->list(node))
      h->entries.emplace_back(e.name, to_stat(c, e.stat));
    fi->fh = reinterpret_cast<uint64_t>(h.release());
    fi->keep_cache = 1;
    fi->cache_readdir = 1;
    if (fuse_reply_open(req, fi) != 0) delete reinterpret_cast<DirHandle*>(fi->fh);
  });
}

void op_readdir(fuse_req_t req, fuse_ino_t, size_t size, off_t off, struct fuse_file_info* fi) {
  guarded(req, [&] {
    const DirHandle& h = *reinterpret_cast<const DirHandle*>(fi->fh);
    std::vector<char> buf(size);
    size_t used = 0;
    for (size_t i = static_cast<size_t>(off); i < h.entries.size(); ++i) {
      size_t need =
          fuse_add_direntry(req, buf.data() + used, size - used, h.entries[i].first.c_str(),
                            &h.entries[i].second, static_cast<off_t>(i + 1));
      if (need > size - used) break;
      used += need;
    }
    fuse_reply_buf(req, buf.data(), used);
  });
}

void op_releasedir(fuse_req_t req, fuse_ino_t, struct fuse_file_info* fi) {
  delete reinterpret_cast<DirHandle*>(fi->fh);
  fuse_reply_err(req, 0);
}

void op_statfs(fuse_req_t req, fuse_ino_t) {
  struct statvfs s;
  std::memset(&s, 0, sizeof s);
  s.f_bsize = 4096;
  s.f_frsize = 4096;
  s.f_namemax = 255;
  s.f_flag = ST_RDONLY;
  fuse_reply_statfs(req, &s);
}

// Every operation that would change anything.
void erofs(fuse_req_t req) {
  fuse_reply_err(req, EROFS);
}
void op_setattr(fuse_req_t req, fuse_ino_t, struct stat*, int, struct fuse_file_info*) {
  erofs(req);
}
void op_mknod(fuse_req_t req, fuse_ino_t, const char*, mode_t, dev_t) {
  erofs(req);
}
void op_mkdir(fuse_req_t req, fuse_ino_t, const char*, mode_t) {
  erofs(req);
}
void op_unlink(fuse_req_t req, fuse_ino_t, const char*) {
  erofs(req);
}
void op_rmdir(fuse_req_t req, fuse_ino_t, const char*) {
  erofs(req);
}
void op_symlink(fuse_req_t req, const char*, fuse_ino_t, const char*) {
  erofs(req);
}
void op_rename(fuse_req_t req, fuse_ino_t, const char*, fuse_ino_t, const char*, unsigned) {
  erofs(req);
}
void op_link(fuse_req_t req, fuse_ino_t, fuse_ino_t, const char*) {
  erofs(req);
}
void op_write(fuse_req_t req, fuse_ino_t, const char*, size_t, off_t, struct fuse_file_info*) {
  erofs(req);
}
void op_create(fuse_req_t req, fuse_ino_t, const char*, mode_t, struct fuse_file_info*) {
  erofs(req);
}
void op_setxattr(fuse_req_t req, fuse_ino_t, const char*, const char*, size_t, int) {
  erofs(req);
}
void op_removexattr(fuse_req_t req, fuse_ino_t, const char*) {
  erofs(req);
}
void op_fallocate(fuse_req_t req, fuse_ino_t, int, off_t, off_t, struct fuse_file_info*) {
  erofs(req);
}

fuse_lowlevel_ops make_ops() {
  fuse_lowlevel_ops ops;
  std::memset(&ops, 0, sizeof ops);
  ops.init = op_init;
  ops.lookup = op_lookup;
  ops.getattr = op_getattr;
  ops.readlink = op_readlink;
  ops.open = op_open;
  ops.read = op_read;
  ops.release = op_release;
  ops.opendir = op_opendir;
  ops.readdir = op_readdir;
  ops.releasedir = op_releasedir;
  ops.statfs = op_statfs;
  ops.setattr = op_setattr;
  ops.mknod = op_mknod;
  ops.mkdir = op_mkdir;
  ops.unlink = op_unlink;
  ops.rmdir = op_rmdir;
  ops.symlink = op_symlink;
  ops.rename = op_rename;
  ops.link = op_link;
  ops.write = op_write;
  ops.create = op_create;
  ops.setxattr = op_setxattr;
  ops.removexattr = op_removexattr;
  ops.fallocate = op_fallocate;
  return ops;
}

// fuse_opt splits -o on commas: escape them (and backslashes) in values.
std::string escape_opt(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (ch == ',' || ch == '\\') out += '\\';
    out += ch;
  }
  return out;
}

// The kernel's read-ahead window for a FUSE mount is the bdi default (128
// KiB), so buffered reads arrive in 128 KiB requests whatever max_read says.
// Raising the window of our own mount's bdi (root only: sysfs) lets
// sequential reads arrive 1 MiB at a time, several in flight. Best effort:
// nothing depends on it.
void widen_readahead(const std::string& device) {
  if (device.empty() || device.find('/') != std::string::npos) return;
  std::ofstream out("/sys/class/bdi/" + device + "/read_ahead_kb");
  if (out) out << (kReadahead / 1024) << "\n";
}

class SessionGuard {
 public:
  explicit SessionGuard(fuse_session* se) : se_(se) {}
  ~SessionGuard() {
    if (signals_) fuse_remove_signal_handlers(se_);
    if (mounted_) fuse_session_unmount(se_);
    fuse_session_destroy(se_);
    if (marker_ >= 0) ::close(marker_);  // last: the daemon is done with the mount
  }
  bool signals_ = false;
  bool mounted_ = false;
  int marker_ = -1;

 private:
  fuse_session* se_;
};

}  // namespace

void serve(std::shared_ptr<const FileTree> view, const ServeOptions& opts,
           const std::function<void()>& on_ready) {
  Context ctx;
  ctx.tree = std::move(view);
  ctx.root = ctx.tree->root();
  ctx.syslog = opts.log_to_syslog;
  fuse_lowlevel_ops ops = make_ops();

  std::string mount_opts =
      "ro,default_permissions,subtype=vdisk,max_read=" + std::to_string(kMaxIo) +
      ",fsname=" + escape_opt(opts.fsname);
  if (opts.allow_other) mount_opts += ",allow_other";
  std::vector<std::string> arg_text = {"vdisk", "-o", mount_opts};
  std::vector<char*> argv;
  for (auto& a : arg_text) argv.push_back(a.data());
  struct fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  fuse_session* se = fuse_session_new(&args, &ops, sizeof ops, &ctx);
  fuse_opt_free_args(&args);
  if (!se) {
    throw Error(ErrorKind::kIo, opts.mountpoint, std::nullopt,
                "cannot start a FUSE session (see libfuse's message above)");
  }
  SessionGuard guard(se);
  if (opts.handle_signals) {
    // libfuse installs its handlers only over the default disposition; the
    // CLI's cancel handlers are replaced so a signal ends the loop instead
    // (and SIGPIPE is ignored); SIGQUIT, which libfuse leaves alone, ends
    // it too, like SIGTERM, so the mount is always taken down.
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT}) std::signal(sig, SIG_DFL);
    if (fuse_set_signal_handlers(se) != 0) {
      throw Error(ErrorKind::kIo, opts.mountpoint, std::nullopt, "cannot install signal handlers");
    }
    struct sigaction term;
    if (sigaction(SIGTERM, nullptr, &term) == 0) sigaction(SIGQUIT, &term, nullptr);
    guard.signals_ = true;
  }
  if (fuse_session_mount(se, opts.mountpoint.c_str()) != 0) {
    throw Error(ErrorKind::kIo, opts.mountpoint, std::nullopt,
                "cannot mount (see libfuse's message above; is /dev/fuse usable?)");
  }
  guard.mounted_ = true;
  if (auto m = find_mount(opts.mountpoint)) {
    widen_readahead(m->device);
    guard.marker_ = hold_daemon_marker(m->device);
  }
  on_ready();

  struct fuse_loop_config* cfg = fuse_loop_cfg_create();
  fuse_loop_cfg_set_clone_fd(cfg, 0);
  fuse_loop_cfg_set_max_threads(cfg, opts.max_threads);
  fuse_loop_cfg_set_idle_threads(cfg, opts.max_threads / 2);
  fuse_session_loop_mt(se, cfg);
  fuse_loop_cfg_destroy(cfg);
}

void serve_in_background(std::shared_ptr<const FileTree> view, const ServeOptions& opts) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno(opts.mountpoint, std::nullopt, "pipe", errno);
  std::fflush(stdout);
  std::fflush(stderr);
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    throw_errno(opts.mountpoint, std::nullopt, "fork", err);
  }
  if (pid == 0) {
    // The daemon. Status to the parent on the pipe: "O" when the mount is
    // live, or "E" and the error's text.
    ::close(fds[0]);
    ::setsid();
    bool told = false;
    int code = 0;
    ServeOptions daemon_opts = opts;
    daemon_opts.log_to_syslog = true;
    ::openlog("vdisk", LOG_PID, LOG_DAEMON);
    try {
      serve(std::move(view), daemon_opts, [&] {
        if (::chdir("/") != 0) {
          // Nothing depends on the cwd; keep going.
        }
        int null = ::open("/dev/null", O_RDWR);
        if (null >= 0) {
          ::dup2(null, 0);
          ::dup2(null, 1);
          ::dup2(null, 2);
          if (null > 2) ::close(null);
        }
        ssize_t n = ::write(fds[1], "O", 1);
        (void)n;
        ::close(fds[1]);
        told = true;
      });
    } catch (const std::exception& e) {
      if (!told) {
        std::string msg = std::string("E") + e.what();
        ssize_t n = ::write(fds[1], msg.data(), msg.size());
        (void)n;
      }
      code = 2;
    }
    std::fflush(nullptr);
    ::_exit(code);
  }
  ::close(fds[1]);
  std::string msg;
  char buf[512];
  for (;;) {
    ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n > 0) {
      msg.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;
  }
  ::close(fds[0]);
  if (msg == "O") return;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!msg.empty() && msg[0] == 'E') throw Error(ErrorKind::kIo, "", std::nullopt, msg.substr(1));
  throw Error(
      ErrorKind::kIo, opts.mountpoint, std::nullopt,
      "the mount process ended (status " + std::to_string(status) + ") before the mount was live");
}

}  // namespace vdisk::mount
