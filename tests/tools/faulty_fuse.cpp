// vdisk_faulty_fuse: a test-only FUSE file system serving one file,
// disk.raw, whose reads fail with EIO or are slow in chosen ranges, for the
// acquire tests (tests/test_acquire.cpp): a failing disk without special
// hardware. Never part of the product.
//
//   vdisk_faulty_fuse mount IMAGE MOUNTPOINT [START:END:FAILS[:DELAY_MS]]...
//
// Each range [START, END) (bytes) fails its first FAILS reads with EIO,
// counted per 512-byte sector: a read fails when it touches a sector of the
// range that has failures left, and every such sector it touches spends one
// (as a flaky sector of a real disk). FAILS -1: always fails. DELAY_MS:
// every read touching the range first sleeps that long (a slow area), also
// once it reads. The file is opened with direct_io so each read of the
// program reaches here (no page cache, no readahead into bad areas). The
// process daemonizes like `vdisk mount` (its command line holds the word
// "mount" and MOUNTPOINT, which tests/support/mount_support finds) and
// serves until unmounted.
#define FUSE_USE_VERSION 312
#include <fcntl.h>
#include <fuse3/fuse.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Fault {
  uint64_t start, end;
  int fails;  // -1: always
  int delay_ms;
};

struct State {
  int fd = -1;
  uint64_t size = 0;
  std::vector<Fault> faults;
  std::mutex mu;
  std::map<uint64_t, int> left;  // sector -> failures left (first touch: the range's FAILS)
};

State g;
const char kName[] = "disk.raw";

int fs_getattr(const char* path, struct stat* st, fuse_file_info*) {
  std::memset(st, 0, sizeof *st);
  if (std::strcmp(path, "/") == 0) {
    st->st_mode = S_IFDIR | 0555;
    st->st_nlink = 2;
    return 0;
  }
  if (std::strcmp(path + 1, kName) != 0) return -ENOENT;
  st->st_mode = S_IFREG | 0444;
  st->st_nlink = 1;
  st->st_size = static_cast<off_t>(g.size);
  return 0;
}

int fs_readdir(const char* path, void* buf, fuse_fill_dir_t fill, off_t, fuse_file_info*,
               fuse_readdir_flags) {
  if (std::strcmp(path, "/") != 0) return -ENOENT;
  fill(buf, ".", nullptr, 0, FUSE_FILL_DIR_PLUS);
  fill(buf, "..", nullptr, 0, FUSE_FILL_DIR_PLUS);
  fill(buf, kName, nullptr, 0, FUSE_FILL_DIR_PLUS);
  return 0;
}

int fs_open(const char* path, fuse_file_info* fi) {
  if (std::strcmp(path + 1, kName) != 0) return -ENOENT;
  if ((fi->flags & O_ACCMODE) != O_RDONLY) return -EROFS;
  fi->direct_io = 1;
  return 0;
}

int fs_read(const char*, char* buf, size_t len, off_t off, fuse_file_info*) {
  const uint64_t start = static_cast<uint64_t>(off);
  if (start >= g.size) return 0;
  if (len > g.size - start) len = static_cast<size_t>(g.size - start);
  const uint64_t end = start + len;
  int delay = 0;
  bool fail = false;
  {
    std::lock_guard<std::mutex> lock(g.mu);
    for (const Fault& f : g.faults) {
      if (f.end <= start || f.start >= end) continue;
      if (f.delay_ms > delay) delay = f.delay_ms;
      const uint64_t lo = std::max(f.start, start) / 512;
      const uint64_t hi = (std::min(f.end, end) + 511) / 512;
      for (uint64_t s = lo; s < hi; ++s) {
        auto it = g.left.try_emplace(s, f.fails).first;
        if (it->second < 0) {
          fail = true;
        } else if (it->second > 0) {
          --it->second;
          fail = true;
        }
      }
    }
  }
  if (delay > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay));
  if (fail) return -EIO;
  size_t done = 0;
  while (done < len) {
    const ssize_t n = ::pread(g.fd, buf + done, len - done, static_cast<off_t>(start + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? -errno : static_cast<int>(done);
    done += static_cast<size_t>(n);
  }
  return static_cast<int>(done);
}

bool parse_fault(const char* text, Fault& f) {
  unsigned long long a = 0, b = 0;
  int fails = 0, delay = 0;
  const int n = std::sscanf(text, "%llu:%llu:%d:%d", &a, &b, &fails, &delay);
  if (n < 3 || b <= a || fails < -1 || delay < 0) return false;
  f = Fault{a, b, fails, n == 4 ? delay : 0};
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4 || std::strcmp(argv[1], "mount") != 0) {
    std::fprintf(
        stderr,
        "usage: vdisk_faulty_fuse mount IMAGE MOUNTPOINT [START:END:FAILS[:DELAY_MS]]...\n");
    return 2;
  }
  g.fd = ::open(argv[2], O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (g.fd < 0 || ::fstat(g.fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    std::fprintf(stderr, "vdisk_faulty_fuse: %s: not a readable regular file\n", argv[2]);
    return 2;
  }
  g.size = static_cast<uint64_t>(st.st_size);
  for (int i = 4; i < argc; ++i) {
    Fault f;
    if (!parse_fault(argv[i], f)) {
      std::fprintf(stderr, "vdisk_faulty_fuse: '%s' is not START:END:FAILS[:DELAY_MS]\n", argv[i]);
      return 2;
    }
    g.faults.push_back(f);
  }
  fuse_operations ops{};
  ops.getattr = fs_getattr;
  ops.readdir = fs_readdir;
  ops.open = fs_open;
  ops.read = fs_read;
  // fuse_main daemonizes once mounted; -o ro, single-threaded is enough.
  std::string prog = "vdisk_faulty_fuse";
  std::vector<char*> fargs = {prog.data(), argv[3], const_cast<char*>("-s"),
                              const_cast<char*>("-o"), const_cast<char*>("ro,fsname=faulty")};
  return fuse_main(static_cast<int>(fargs.size()), fargs.data(), &ops, nullptr);
}
