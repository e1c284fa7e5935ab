#include "formats/core/file.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <limits>
#include <map>
#include <mutex>

#include "formats/core/error.h"
#include "formats/core/hex.h"

namespace vdisk {

std::string path_dirname(const std::string& path) {
  auto pos = path.find_last_of('/');
  if (pos == std::string::npos) return ".";
  if (pos == 0) return "/";
  return path.substr(0, pos);
}

std::string path_basename(const std::string& path) {
  auto pos = path.find_last_of('/');
  return pos == std::string::npos ? path : path.substr(pos + 1);
}

std::string path_join(const std::string& dir, const std::string& name) {
  if (name.empty()) return dir;
  if (name[0] == '/' || dir.empty() || dir == ".") return name;
  if (dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

std::string path_extension(const std::string& path) {
  std::string base = path_basename(path);
  auto pos = base.find_last_of('.');
  if (pos == std::string::npos || pos == 0) return "";
  std::string ext = base.substr(pos + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext;
}

namespace {

// File::identity() from stat(2): device and inode, or for a block device the
// device itself (two nodes, say /dev/sda and a copy made with mknod, name
// one disk).
std::pair<uint64_t, uint64_t> identity_of_stat(const struct stat& st) {
  if (S_ISBLK(st.st_mode)) return {~0ull, static_cast<uint64_t>(st.st_rdev)};
  return {static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
}

// pread until `len` bytes or the end of the file; returns the count. EINTR
// retried; another failure throws Error(kIo) naming `path` and the offset.
size_t pread_some(int fd, const std::string& path, uint64_t offset, void* buf, size_t len) {
  auto* p = static_cast<uint8_t*>(buf);
  size_t done = 0;
  while (done < len) {
    if (offset + done > static_cast<uint64_t>(LLONG_MAX)) break;
    ssize_t n = ::pread(fd, p + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno(path, offset + done, "read failed", errno);
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

// pwrite all `len` bytes in calls of at most kWriteSlice (EINTR retried; a
// failure throws as above).
void pwrite_all(int fd, const std::string& path, uint64_t offset, const void* buf, size_t len) {
  const auto* p = static_cast<const uint8_t*>(buf);
  for (size_t done = 0; done < len;) {
    ssize_t n = ::pwrite(fd, p + done, std::min(len - done, kWriteSlice),
                         static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno(path, offset + done, "write failed", errno);
    }
    done += static_cast<size_t>(n);
  }
}

class PosixFile final : public File {
 public:
  PosixFile(std::string path, int fd, const struct stat& st)
      : path_(std::move(path)),
        fd_(fd),
        size_(static_cast<uint64_t>(st.st_size)),
        blocks_(static_cast<uint64_t>(st.st_blocks) * 512),
        identity_(identity_of_stat(st)),
        mtime_(static_cast<int64_t>(st.st_mtime)) {}
  ~PosixFile() override { ::close(fd_); }
  std::optional<int64_t> modified_unix() const override { return mtime_; }

  const std::string& path() const override { return path_; }
  uint64_t size() const override { return size_; }
  uint64_t allocated_on_host() const override { return blocks_; }
  std::pair<uint64_t, uint64_t> identity() const override { return identity_; }

  void read_at(uint64_t offset, void* buf, size_t len) const override {
    size_t got = read_some(offset, buf, len);
    if (got != len && offset + got < size_) {
      // The bytes were there when the file was opened: it shrank under us.
      // An I/O failure of the source, not a format that points past its end.
      throw Error(ErrorKind::kIo, path_, offset + got,
                  "file shrank while being read: no bytes at offset " +
                      std::to_string(offset + got) + " of a file that was " +
                      std::to_string(size_) + " bytes");
    }
    if (got != len) {
      throw Error(ErrorKind::kCorrupt, path_, offset + got,
                  "unexpected end of file: needed " + std::to_string(len) + " bytes at offset " +
                      std::to_string(offset) + ", file is " + std::to_string(size_) + " bytes");
    }
  }

  size_t read_some(uint64_t offset, void* buf, size_t len) const override {
    return pread_some(fd_, path_, offset, buf, len);
  }

  FileRange range_status(uint64_t offset, uint64_t len) const override {
    if (offset >= size_) return FileRange{len, true};
    uint64_t end = std::min<uint64_t>(size_, offset + len);
    off_t data = ::lseek(fd_, static_cast<off_t>(offset), SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) {
        // Only a hole remains -- or the file shrank since it was opened, and
        // reporting its vanished tail as a hole would hash zeros as if real.
        struct stat st;
        if (::fstat(fd_, &st) == 0 && static_cast<uint64_t>(st.st_size) < size_) {
          throw Error(ErrorKind::kIo, path_,
                      std::max<uint64_t>(offset, static_cast<uint64_t>(st.st_size)),
                      "file shrank from " + std::to_string(size_) + " to " +
                          std::to_string(st.st_size) + " bytes while being read");
        }
        return FileRange{end - offset, true};
      }
      return FileRange{end - offset, false};  // no SEEK_DATA support: treat as data
    }
    if (static_cast<uint64_t>(data) > offset) {
      return FileRange{std::min<uint64_t>(static_cast<uint64_t>(data), end) - offset, true};
    }
    off_t hole = ::lseek(fd_, static_cast<off_t>(offset), SEEK_HOLE);
    if (hole < 0 || static_cast<uint64_t>(hole) <= offset) return FileRange{end - offset, false};
    return FileRange{std::min<uint64_t>(static_cast<uint64_t>(hole), end) - offset, false};
  }

 private:
  std::string path_;
  int fd_;
  uint64_t size_;
  uint64_t blocks_;
  std::pair<uint64_t, uint64_t> identity_;
  int64_t mtime_ = 0;
};

// What is at a path an output is about to take.
struct ExistingTarget {
  bool exists = false;
  mode_t type = 0;  // S_IFMT bits
  uint64_t dev = 0, ino = 0;
};

ExistingTarget inspect_target(const std::string& path) {
  ExistingTarget t;
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) throw_errno(path, std::nullopt, "cannot stat the destination", errno);
    return t;
  }
  t.exists = true;
  t.type = st.st_mode & S_IFMT;
  t.dev = st.st_dev;
  t.ino = st.st_ino;
  return t;
}

const char* file_type_name(mode_t type) {
  switch (type) {
    case S_IFREG:
      return "a regular file";
    case S_IFDIR:
      return "a directory";
    case S_IFLNK:
      return "a symbolic link";
    case S_IFCHR:
      return "a character device";
    case S_IFBLK:
      return "a block device";
    case S_IFIFO:
      return "a FIFO";
    case S_IFSOCK:
      return "a socket";
  }
  return "not a regular file";
}

// Refuses what an output must never replace: anything but a regular file
// (a symlink is not followed and not replaced; a device node, FIFO or
// socket is not turned into a file), and an existing file without overwrite.
void check_replaceable(const std::string& path, const ExistingTarget& t, bool overwrite) {
  if (!t.exists) return;
  if (t.type != S_IFREG) {
    throw Error(ErrorKind::kInvalidArgument, path, std::nullopt,
                std::string("is ") + file_type_name(t.type) +
                    "; vdisk writes an image only to a regular file it creates"
                    " (or, for -O raw, onto a block device; '-' is standard output)");
  }
  if (!overwrite) {
    throw Error(ErrorKind::kInvalidArgument, path, std::nullopt,
                "file exists (pass --force to replace it)");
  }
}

std::string random_suffix() {
  uint8_t b[8];
  size_t got = 0;
  while (got < sizeof b) {
    ssize_t n = ::getrandom(b + got, sizeof b - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("", std::nullopt, "cannot get random bytes from getrandom(2)", errno);
    }
    got += static_cast<size_t>(n);
  }
  return hex_bytes(b, sizeof b);
}

// The hidden temporaries alive now, for remove_partial_outputs().
std::mutex& partials_mu() {
  static std::mutex mu;
  return mu;
}
std::vector<std::string>& partials() {
  static std::vector<std::string> list;
  return list;
}
void add_partial(const std::string& tmp) {
  std::lock_guard<std::mutex> lock(partials_mu());
  partials().push_back(tmp);
}
void drop_partial(const std::string& tmp) {
  std::lock_guard<std::mutex> lock(partials_mu());
  auto& list = partials();
  list.erase(std::remove(list.begin(), list.end(), tmp), list.end());
}

// A regular file that appears under its final name only on commit(). The
// bytes go to an unnamed O_TMPFILE where the file system allows it (a killed
// vdisk then leaves nothing at all), else to a hidden sibling created with
// O_EXCL|O_NOFOLLOW under an unpredictable name, so neither a symlink planted
// under a guessable name nor a second vdisk (another PID namespace on a
// shared volume) can make two writers share one file. After the final name
// is taken, the file under it is checked to be the one written.
class PosixOutputFile final : public OutputFile {
 public:
  PosixOutputFile(std::string path, bool overwrite, Durability durability)
      : path_(std::move(path)),
        overwrite_(overwrite),
        flushed_(durability == Durability::kFlushed) {
    check_replaceable(path_, inspect_target(path_), overwrite_);
    const std::string dir = path_dirname(path_);
    fd_ = ::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
    if (fd_ >= 0) return;
    if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL && errno != ENOENT) {
      throw_errno(path_, std::nullopt, "cannot create output in " + dir, errno);
    }
    for (int attempt = 0; fd_ < 0; ++attempt) {
      tmp_ = path_join(dir, "." + path_basename(path_) + ".vdisk-" + random_suffix());
      fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
      if (fd_ < 0 && (errno != EEXIST || attempt >= 8)) {
        int err = errno;
        tmp_.clear();
        throw_errno(path_, std::nullopt, "cannot create output in " + dir, err);
      }
    }
    add_partial(tmp_);
  }
  ~PosixOutputFile() override { discard(); }

  const std::string& path() const override { return path_; }

  void write_at(uint64_t offset, const void* buf, size_t len) override {
    pwrite_all(fd_, path_, offset, buf, len);
    // Start the writeback of what is dirty every 64 MiB, so the fsync of
    // commit() does not wait for the whole image to reach the disk. (Not when
    // unsafe: the call blocks while the device queue is full.)
    unflushed_ += len;
    if (flushed_ && unflushed_ >= kFlushEvery) {
      unflushed_ = 0;
      ::sync_file_range(fd_, 0, 0, SYNC_FILE_RANGE_WRITE);
    }
  }

  void set_size(uint64_t size) override {
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) {
      throw_errno(path_, size, "cannot set file size", errno);
    }
  }

  // A file system that cannot hold a file this long (EFBIG) says so now,
  // not after the whole copy.
  void reserve(uint64_t size) override {
    if (size > static_cast<uint64_t>(std::numeric_limits<off_t>::max()) ||
        ::ftruncate(fd_, static_cast<off_t>(size)) != 0) {
      int err = size > static_cast<uint64_t>(std::numeric_limits<off_t>::max()) ? EFBIG : errno;
      throw_errno(path_, std::nullopt,
                  "the file system cannot hold a " + std::to_string(size) + "-byte file", err);
    }
  }

  void commit() override {
    if (fd_ < 0 || committed_) throw_invalid(path_, "output already closed");
    if (flushed_ && ::fsync(fd_) != 0) throw_errno(path_, std::nullopt, "fsync failed", errno);
    try {
      // Whatever appeared under the name while we wrote is checked again:
      // a device node or a symlink planted there is never replaced.
      check_replaceable(path_, inspect_target(path_), overwrite_);
      keep_replaced_permissions();
      take_final_name();
      // The file under the final name must be the one written.
      struct stat mine, there;
      if (::fstat(fd_, &mine) != 0 || ::lstat(path_.c_str(), &there) != 0 ||
          mine.st_dev != there.st_dev || mine.st_ino != there.st_ino) {
        throw Error(ErrorKind::kIo, path_, std::nullopt,
                    "the file under this name is not the one vdisk wrote (replaced while it "
                    "was being renamed into place)");
      }
    } catch (...) {
      discard();
      throw;
    }
    committed_ = true;
    int err = ::close(fd_) != 0 ? errno : 0;
    fd_ = -1;
    if (err) throw_errno(path_, std::nullopt, "close failed", err);
    // Make the new name durable too.
    if (!flushed_) return;
    int dfd = ::open(path_dirname(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }

  void discard() override {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
    if (!committed_ && !tmp_.empty()) ::unlink(tmp_.c_str());
    set_tmp("");
    committed_ = true;
  }

 private:
  // A file replaced under --force (or a descriptor rewritten by resize)
  // keeps its permission bits: a 0600 image must not come back 0644.
  // Set-user/group-ID and sticky bits are never carried over.
  void keep_replaced_permissions() {
    struct stat st;
    if (!overwrite_ || ::lstat(path_.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return;
    if (::fchmod(fd_, st.st_mode & 0777) != 0)
      throw_errno(path_, std::nullopt, "cannot set the permissions of the output", errno);
  }

  void take_final_name() {
    if (tmp_.empty()) {
      // O_TMPFILE: give the unnamed file a name. Without overwrite, linkat
      // itself refuses an existing name; with it, link under a hidden
      // random name and rename over the old file.
      const std::string proc = "/proc/self/fd/" + std::to_string(fd_);
      std::string target = path_;
      if (overwrite_)
        target = path_join(path_dirname(path_),
                           "." + path_basename(path_) + ".vdisk-" + random_suffix());
      if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, target.c_str(), AT_SYMLINK_FOLLOW) != 0) {
        int err = errno;
        if (err == EEXIST && !overwrite_) {
          throw Error(ErrorKind::kInvalidArgument, path_, std::nullopt,
                      "destination appeared while writing; not replaced");
        }
        throw_errno(path_, std::nullopt, "cannot give the output its name", err);
      }
      if (!overwrite_) return;
      set_tmp(target);
    }
    unsigned flags = overwrite_ ? 0 : RENAME_NOREPLACE;
    if (::renameat2(AT_FDCWD, tmp_.c_str(), AT_FDCWD, path_.c_str(), flags) != 0) {
      int err = errno;
      if (err == EEXIST) {
        throw Error(ErrorKind::kInvalidArgument, path_, std::nullopt,
                    "destination appeared while writing; not replaced");
      }
      throw_errno(path_, std::nullopt, "cannot rename into place", err);
    }
    set_tmp("");
  }

  void set_tmp(const std::string& tmp) {
    if (!tmp_.empty()) drop_partial(tmp_);
    tmp_ = tmp;
    if (!tmp_.empty()) add_partial(tmp_);
  }

  std::string path_;
  std::string tmp_;  // the hidden sibling; empty for O_TMPFILE
  bool overwrite_;
  bool flushed_;  // Durability::kFlushed
  int fd_ = -1;
  bool committed_ = false;
  static constexpr uint64_t kFlushEvery = 64ull << 20;
  uint64_t unflushed_ = 0;
};

// A raw image restored onto a block device (`vdisk convert -O raw disk.vmdk
// /dev/sdX --force`): written in place, no temporary and no rename. The
// device is opened O_EXCL, which Linux refuses while it is mounted or held
// (EBUSY). Ranges the writer never writes (holes) must read as zeros, unlike
// a new file's: they are zeroed (BLKZEROOUT, else written) as the writer
// moves past them, and to the end on set_size(). A device smaller than the
// image is refused before anything is written.
class BlockDeviceOutputFile final : public OutputFile {
 public:
  explicit BlockDeviceOutputFile(std::string path) : path_(std::move(path)) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_EXCL | O_CLOEXEC);
    if (fd_ < 0) {
      int err = errno;
      if (err == EBUSY) {
        throw Error(ErrorKind::kInvalidArgument, path_, std::nullopt,
                    "block device is in use (mounted, or held by another program); not written");
      }
      throw_errno(path_, std::nullopt, "cannot open the block device for writing", err);
    }
    uint64_t size = 0;
    if (::ioctl(fd_, BLKGETSIZE64, &size) != 0) {
      off_t end = ::lseek(fd_, 0, SEEK_END);
      size = end > 0 ? static_cast<uint64_t>(end) : 0;
    }
    size_ = size;
  }
  ~BlockDeviceOutputFile() override { discard(); }

  const std::string& path() const override { return path_; }

  void write_at(uint64_t offset, const void* buf, size_t len) override {
    check_fits(offset + len);
    zero_to(offset);
    pwrite_all(fd_, path_, offset, buf, len);
    cursor_ = std::max(cursor_, offset + len);
  }

  void set_size(uint64_t size) override {
    check_fits(size);
    zero_to(size);
  }

  void reserve(uint64_t size) override { check_fits(size); }

  void commit() override {
    if (fd_ < 0) throw_invalid(path_, "output already closed");
    if (::fsync(fd_) != 0) throw_errno(path_, std::nullopt, "fsync failed", errno);
    int err = ::close(fd_) != 0 ? errno : 0;
    fd_ = -1;
    if (err) throw_errno(path_, std::nullopt, "close failed", err);
  }

  // What was written stays written: a device cannot be un-written.
  void discard() override {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  void check_fits(uint64_t end) const {
    if (end > size_) {
      throw Error(ErrorKind::kInvalidArgument, path_, std::nullopt,
                  "the image needs " + std::to_string(end) + " bytes but the block device holds " +
                      std::to_string(size_));
    }
  }
  void zero_to(uint64_t end) {
    while (cursor_ < end) {
      uint64_t range[2] = {cursor_, end - cursor_};
      if (::ioctl(fd_, BLKZEROOUT, range) == 0) {
        cursor_ = end;
        break;
      }
      static const uint8_t zeros[1 << 16] = {};
      size_t n = static_cast<size_t>(std::min<uint64_t>(sizeof zeros, end - cursor_));
      ssize_t w = ::pwrite(fd_, zeros, n, static_cast<off_t>(cursor_));
      if (w < 0) {
        if (errno == EINTR) continue;
        throw_errno(path_, cursor_, "write failed", errno);
      }
      cursor_ += static_cast<uint64_t>(w);
    }
  }

  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
  uint64_t cursor_ = 0;  // everything below is written or zeroed
};

// Standard output: append-only; gaps are written as zeros.
class StdoutOutputFile final : public OutputFile {
 public:
  StdoutOutputFile() : path_("-") {}
  const std::string& path() const override { return path_; }
  bool is_stream() const override { return true; }

  void write_at(uint64_t offset, const void* buf, size_t len) override {
    if (offset < pos_) {
      throw Error(
          ErrorKind::kInvalidArgument, "<stdout>", offset,
          "cannot seek back on a stream (already wrote " + std::to_string(pos_) + " bytes)");
    }
    pad_to(offset);
    write_all(buf, len);
  }

  void set_size(uint64_t size) override {
    if (size < pos_)
      throw Error(ErrorKind::kInvalidArgument, "<stdout>", size, "cannot shrink a stream");
    pad_to(size);
  }

  void commit() override {}
  void discard() override {}

 private:
  void pad_to(uint64_t offset) {
    static const uint8_t zeros[65536] = {};
    while (pos_ < offset)
      write_all(zeros, static_cast<size_t>(std::min<uint64_t>(sizeof zeros, offset - pos_)));
  }
  void write_all(const void* buf, size_t len) {
    const auto* p = static_cast<const uint8_t*>(buf);
    size_t done = 0;
    while (done < len) {
      ssize_t n = ::write(1, p + done, len - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw_errno("<stdout>", pos_ + done, "write failed", errno);
      }
      done += static_cast<size_t>(n);
    }
    pos_ += len;
  }
  std::string path_;
  uint64_t pos_ = 0;
};

// A regular file opened O_RDWR for an in-place change (Env::open_update).
class PosixUpdateFile final : public UpdateFile {
 public:
  PosixUpdateFile(std::string path, int fd, uint64_t size, Durability durability)
      : path_(std::move(path)), fd_(fd), size_(size), durability_(durability) {}
  ~PosixUpdateFile() override { ::close(fd_); }

  const std::string& path() const override { return path_; }
  uint64_t size() const override { return size_; }

  void read_at(uint64_t offset, void* buf, size_t len) const override {
    if (read_some(offset, buf, len) != len) {
      throw Error(ErrorKind::kCorrupt, path_, offset,
                  "unexpected end of file: needed " + std::to_string(len) + " bytes at offset " +
                      std::to_string(offset) + ", file is " + std::to_string(size_) + " bytes");
    }
  }
  size_t read_some(uint64_t offset, void* buf, size_t len) const override {
    return pread_some(fd_, path_, offset, buf, len);
  }
  void write_at(uint64_t offset, const void* buf, size_t len) override {
    pwrite_all(fd_, path_, offset, buf, len);
    size_ = std::max<uint64_t>(size_, offset + len);
  }
  void set_size(uint64_t size) override {
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0)
      throw_errno(path_, size, "cannot set the file's length", errno);
    size_ = size;
  }
  void sync() override {
    if (durability_ == Durability::kUnsafe) return;
    if (::fdatasync(fd_) != 0) throw_errno(path_, std::nullopt, "fdatasync failed", errno);
  }

 private:
  std::string path_;
  int fd_;
  uint64_t size_;
  Durability durability_;
};

class PosixEnv final : public Env {
 public:
  explicit PosixEnv(Durability durability) : durability_(durability) {}

  std::unique_ptr<File> open_read(const std::string& path) override {
    // O_NONBLOCK: opening a FIFO (named as an image, an extent or a parent)
    // must not wait forever for a writer; it is refused below.
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
      int err = errno;
      if (err == ENOENT) throw Error(ErrorKind::kNotFound, path, std::nullopt, "no such file");
      throw_errno(path, std::nullopt, "cannot open", err);
    }
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      throw_errno(path, std::nullopt, "cannot stat", err);
    }
    if (S_ISDIR(st.st_mode)) {
      ::close(fd);
      throw Error(ErrorKind::kInvalidArgument, path, std::nullopt,
                  "is a directory, not a disk image");
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
      ::close(fd);
      throw Error(ErrorKind::kInvalidArgument, path, std::nullopt,
                  std::string("is ") + file_type_name(st.st_mode & S_IFMT) +
                      ", not a disk image: vdisk reads regular files and block devices "
                      "(a stream on standard input: '-' with --size)");
    }
    // Reads of a regular file or a device never wait for a writer; back to
    // blocking mode so a slow device is waited for, not reported as EAGAIN.
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    if (S_ISBLK(st.st_mode)) {
      // Block devices report size 0 in st_size; ask the device.
      off_t end = ::lseek(fd, 0, SEEK_END);
      if (end > 0) st.st_size = end;
    }
    return std::make_unique<PosixFile>(path, fd, st);
  }

  std::unique_ptr<OutputFile> create_output(const std::string& path, bool overwrite) override {
    if (path == "-") return std::make_unique<StdoutOutputFile>();
    if (path.empty()) throw_invalid(path, "the output path is empty");
    ExistingTarget t = inspect_target(path);
    if (t.exists && t.type == S_IFBLK) {
      if (!overwrite) {
        throw Error(ErrorKind::kInvalidArgument, path, std::nullopt,
                    "is a block device: writing onto it replaces what it holds "
                    "(pass --force to do so)");
      }
      return std::make_unique<BlockDeviceOutputFile>(path);
    }
    return std::make_unique<PosixOutputFile>(path, overwrite, durability_);
  }

  bool exists(const std::string& path) override {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
  }

  std::unique_ptr<UpdateFile> open_update(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
      int err = errno;
      if (err == ENOENT) throw Error(ErrorKind::kNotFound, path, std::nullopt, "no such file");
      if (err == ELOOP)
        throw Error(ErrorKind::kInvalidArgument, path, std::nullopt,
                    "is a symbolic link: name the image itself to change it in place");
      throw_errno(path, std::nullopt, "cannot open for writing", err);
    }
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      const int err = errno;
      const bool stat_ok = ::fstat(fd, &st) == 0;
      ::close(fd);
      if (!stat_ok) throw_errno(path, std::nullopt, "cannot stat", err);
      throw Error(ErrorKind::kInvalidArgument, path, std::nullopt,
                  std::string("is ") + file_type_name(st.st_mode & S_IFMT) +
                      ": only a regular image file is changed in place");
    }
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    // Two updaters of one image would interleave their tables.
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      ::close(fd);
      if (err == EWOULDBLOCK)
        throw Error(ErrorKind::kInvalidArgument, path, std::nullopt,
                    "is being changed by another process (locked)");
      throw_errno(path, std::nullopt, "cannot lock", err);
    }
    return std::make_unique<PosixUpdateFile>(path, fd, static_cast<uint64_t>(st.st_size),
                                             durability_);
  }

  void remove_file(const std::string& path) override {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) throw_errno(path, std::nullopt, "cannot stat", errno);
    if (!S_ISREG(st.st_mode))
      throw Error(ErrorKind::kInvalidArgument, path, std::nullopt,
                  std::string("is ") + file_type_name(st.st_mode & S_IFMT) +
                      ": only a regular file is removed");
    if (::unlink(path.c_str()) != 0) throw_errno(path, std::nullopt, "cannot remove", errno);
    // The removal is durable like a commit's rename.
    if (durability_ == Durability::kUnsafe) return;
    int dfd = ::open(path_dirname(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }

  std::vector<DirEntryInfo> list_dir(const std::string& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (!d) throw_errno(dir, std::nullopt, "cannot list directory", errno);
    std::vector<DirEntryInfo> out;
    while (struct dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      struct stat st;
      bool is_dir = ::stat(path_join(dir, name).c_str(), &st) == 0 && S_ISDIR(st.st_mode);
      out.push_back({name, is_dir});
    }
    ::closedir(d);
    std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.name < b.name; });
    return out;
  }

  std::optional<std::pair<uint64_t, uint64_t>> identity_of(const std::string& path) override {
    struct stat st;
    if (path.empty() || ::stat(path.c_str(), &st) != 0) return std::nullopt;
    return identity_of_stat(st);
  }

  std::string real_path(const std::string& path) override {
    char* r = ::realpath(path.c_str(), nullptr);
    if (!r) throw_errno(path, std::nullopt, "cannot resolve path", errno);
    std::string out = r;
    std::free(r);
    return out;
  }

 private:
  Durability durability_;
};

class MemoryFile final : public File {
 public:
  MemoryFile(std::string path, std::shared_ptr<const std::vector<uint8_t>> bytes)
      : path_(std::move(path)), bytes_(std::move(bytes)) {}
  const std::string& path() const override { return path_; }
  uint64_t size() const override { return bytes_->size(); }
  void read_at(uint64_t offset, void* buf, size_t len) const override {
    if (read_some(offset, buf, len) != len) {
      throw Error(ErrorKind::kCorrupt, path_, offset,
                  "unexpected end of file: needed " + std::to_string(len) + " bytes, file is " +
                      std::to_string(bytes_->size()) + " bytes");
    }
  }
  size_t read_some(uint64_t offset, void* buf, size_t len) const override {
    if (offset >= bytes_->size()) return 0;
    size_t n = static_cast<size_t>(std::min<uint64_t>(len, bytes_->size() - offset));
    // A caller may ask for 0 bytes with a null buffer: memcpy with a null
    // pointer is undefined even for no bytes (UBSan stops there).
    if (n > 0) std::memcpy(buf, bytes_->data() + offset, n);
    return n;
  }
  std::pair<uint64_t, uint64_t> identity() const override {
    return {1, reinterpret_cast<uintptr_t>(bytes_.get())};
  }

 private:
  std::string path_;
  std::shared_ptr<const std::vector<uint8_t>> bytes_;
};

}  // namespace

std::unique_ptr<File> make_memory_file(std::string path, std::vector<uint8_t> bytes) {
  return std::make_unique<MemoryFile>(
      std::move(path), std::make_shared<const std::vector<uint8_t>>(std::move(bytes)));
}

std::unique_ptr<UpdateFile> Env::open_update(const std::string& path) {
  throw Error(ErrorKind::kUnsupported, path, std::nullopt,
              "this environment does not change files in place");
}

void Env::remove_file(const std::string& path) {
  throw Error(ErrorKind::kUnsupported, path, std::nullopt,
              "this environment does not remove files");
}

int64_t Env::now_unix() {
  return static_cast<int64_t>(std::time(nullptr));
}

void Env::random_bytes(void* buf, size_t len) {
  auto* p = static_cast<uint8_t*>(buf);
  while (len > 0) {
    ssize_t n = ::getrandom(p, len, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("", std::nullopt, "cannot get random bytes from getrandom(2)", errno);
    }
    p += n;
    len -= static_cast<size_t>(n);
  }
}

uint32_t Env::random_u32() {
  uint8_t b[4];
  random_bytes(b, sizeof b);
  return uint32_t{b[0]} | uint32_t{b[1]} << 8 | uint32_t{b[2]} << 16 | uint32_t{b[3]} << 24;
}

Env& Env::posix(Durability durability) {
  static PosixEnv flushed(Durability::kFlushed);
  static PosixEnv unsafe(Durability::kUnsafe);
  return durability == Durability::kUnsafe ? unsafe : flushed;
}

struct MemEnv::State {
  std::mutex mu;
  std::map<std::string, std::shared_ptr<std::vector<uint8_t>>> files;
  int64_t clock = kDefaultClock;
  uint64_t random_state = 0;
};

namespace {
class MemOutputFile final : public OutputFile {
 public:
  MemOutputFile(std::string path, bool overwrite, std::shared_ptr<MemEnv::State> state)
      : path_(std::move(path)), overwrite_(overwrite), state_(std::move(state)) {}
  const std::string& path() const override { return path_; }
  void write_at(uint64_t offset, const void* buf, size_t len) override {
    if (bytes_.size() < offset + len) bytes_.resize(offset + len);
    std::memcpy(bytes_.data() + offset, buf, len);
  }
  void set_size(uint64_t size) override { bytes_.resize(size); }
  void commit() override;
  void discard() override { done_ = true; }

 private:
  std::string path_;
  bool overwrite_;
  std::shared_ptr<MemEnv::State> state_;
  std::vector<uint8_t> bytes_;
  bool done_ = false;
};

// MemEnv's standard output: append-only like StdoutOutputFile (a gap is
// filled with zeros, seeking back fails); commit() stores the bytes under "-".
class MemStreamOutputFile final : public OutputFile {
 public:
  explicit MemStreamOutputFile(std::shared_ptr<MemEnv::State> state)
      : path_("-"), state_(std::move(state)) {}
  const std::string& path() const override { return path_; }
  bool is_stream() const override { return true; }
  void write_at(uint64_t offset, const void* buf, size_t len) override {
    if (offset < bytes_.size()) {
      throw Error(ErrorKind::kInvalidArgument, "<stdout>", offset,
                  "cannot seek back on a stream (already wrote " + std::to_string(bytes_.size()) +
                      " bytes)");
    }
    bytes_.resize(offset);
    const auto* p = static_cast<const uint8_t*>(buf);
    bytes_.insert(bytes_.end(), p, p + len);
  }
  void set_size(uint64_t size) override {
    if (size < bytes_.size())
      throw Error(ErrorKind::kInvalidArgument, "<stdout>", size, "cannot shrink a stream");
    bytes_.resize(size);
  }
  void commit() override;
  void discard() override {}

 private:
  std::string path_;
  std::shared_ptr<MemEnv::State> state_;
  std::vector<uint8_t> bytes_;
};
}  // namespace

MemEnv::MemEnv() : state_(std::make_shared<State>()) {}
MemEnv::~MemEnv() = default;

void MemEnv::add_file(const std::string& path, std::vector<uint8_t> bytes) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->files[path] = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
}

const std::vector<uint8_t>* MemEnv::contents(const std::string& path) const {
  std::lock_guard<std::mutex> lock(state_->mu);
  auto it = state_->files.find(path);
  return it == state_->files.end() ? nullptr : it->second.get();
}

std::unique_ptr<File> MemEnv::open_read(const std::string& path) {
  std::lock_guard<std::mutex> lock(state_->mu);
  auto it = state_->files.find(path);
  if (it == state_->files.end())
    throw Error(ErrorKind::kNotFound, path, std::nullopt, "no such file");
  return std::make_unique<MemoryFile>(path, it->second);
}

std::unique_ptr<OutputFile> MemEnv::create_output(const std::string& path, bool overwrite) {
  if (path == "-") return std::make_unique<MemStreamOutputFile>(state_);
  return std::make_unique<MemOutputFile>(path, overwrite, state_);
}

void MemStreamOutputFile::commit() {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->files[path_] = std::make_shared<std::vector<uint8_t>>(std::move(bytes_));
}

void MemOutputFile::commit() {
  if (done_) return;
  std::lock_guard<std::mutex> lock(state_->mu);
  if (!overwrite_ && state_->files.count(path_)) {
    throw Error(ErrorKind::kInvalidArgument, path_, std::nullopt, "destination exists");
  }
  state_->files[path_] = std::make_shared<std::vector<uint8_t>>(std::move(bytes_));
  done_ = true;
}

namespace {
// MemEnv's in-place file: the stored vector itself (MemoryFile readers of the
// same path share it and see the change).
class MemUpdateFile final : public UpdateFile {
 public:
  MemUpdateFile(std::string path, std::shared_ptr<std::vector<uint8_t>> bytes)
      : path_(std::move(path)), bytes_(std::move(bytes)) {}
  const std::string& path() const override { return path_; }
  uint64_t size() const override { return bytes_->size(); }
  void read_at(uint64_t offset, void* buf, size_t len) const override {
    if (read_some(offset, buf, len) != len)
      throw Error(ErrorKind::kCorrupt, path_, offset, "unexpected end of file");
  }
  size_t read_some(uint64_t offset, void* buf, size_t len) const override {
    if (offset >= bytes_->size()) return 0;
    size_t n = static_cast<size_t>(std::min<uint64_t>(len, bytes_->size() - offset));
    // A caller may ask for 0 bytes with a null buffer: memcpy with a null
    // pointer is undefined even for no bytes (UBSan stops there).
    if (n > 0) std::memcpy(buf, bytes_->data() + offset, n);
    return n;
  }
  void write_at(uint64_t offset, const void* buf, size_t len) override {
    if (bytes_->size() < offset + len) bytes_->resize(offset + len);
    std::memcpy(bytes_->data() + offset, buf, len);
  }
  void set_size(uint64_t size) override { bytes_->resize(size); }
  void sync() override {}

 private:
  std::string path_;
  std::shared_ptr<std::vector<uint8_t>> bytes_;
};
}  // namespace

std::unique_ptr<UpdateFile> MemEnv::open_update(const std::string& path) {
  std::lock_guard<std::mutex> lock(state_->mu);
  auto it = state_->files.find(path);
  if (it == state_->files.end())
    throw Error(ErrorKind::kNotFound, path, std::nullopt, "no such file");
  return std::make_unique<MemUpdateFile>(path, it->second);
}

void MemEnv::remove_file(const std::string& path) {
  std::lock_guard<std::mutex> lock(state_->mu);
  if (state_->files.erase(path) == 0)
    throw Error(ErrorKind::kNotFound, path, std::nullopt, "no such file");
}

bool MemEnv::exists(const std::string& path) {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->files.count(path) != 0;
}

std::vector<DirEntryInfo> MemEnv::list_dir(const std::string& dir) {
  std::lock_guard<std::mutex> lock(state_->mu);
  std::vector<DirEntryInfo> out;
  for (auto& [name, bytes] : state_->files) {
    if (path_dirname(name) == dir) out.push_back({path_basename(name), false});
  }
  return out;
}

std::string MemEnv::real_path(const std::string& path) {
  // Memory files have no links: a path is its own canonical form.
  return path;
}

std::optional<std::pair<uint64_t, uint64_t>> MemEnv::identity_of(const std::string& path) {
  std::lock_guard<std::mutex> lock(state_->mu);
  auto it = state_->files.find(path);
  if (it == state_->files.end()) return std::nullopt;
  // As MemoryFile::identity().
  return std::pair<uint64_t, uint64_t>{1, reinterpret_cast<uintptr_t>(it->second.get())};
}

void MemEnv::set_clock(int64_t unix_seconds) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->clock = unix_seconds;
}

void MemEnv::seed_random(uint64_t seed) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->random_state = seed;
}

int64_t MemEnv::now_unix() {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->clock;
}

void MemEnv::random_bytes(void* buf, size_t len) {
  // splitmix64 (Steele, Lea, Flood: "Fast splittable pseudorandom number
  // generators", 2014): fully defined by its seed, the same on every host.
  std::lock_guard<std::mutex> lock(state_->mu);
  auto* p = static_cast<uint8_t*>(buf);
  for (size_t i = 0; i < len; i += 8) {
    uint64_t z = (state_->random_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    for (size_t k = 0; k < 8 && i + k < len; ++k) p[i + k] = static_cast<uint8_t>(z >> (8 * k));
  }
}

}  // namespace vdisk

namespace vdisk {

namespace {

// What makes two paths one file: the identity of what exists there, else the
// resolved folder and the name (an output not made yet).
struct FileKey {
  std::optional<std::pair<uint64_t, uint64_t>> id;
  std::string name;
  bool same(const FileKey& o) const {
    if (id || o.id) return id && o.id && *id == *o.id;
    return name == o.name;
  }
};

FileKey key_of(Env& env, const std::string& path) {
  FileKey k;
  k.id = env.identity_of(path);
  if (k.id) return k;
  try {
    k.name = path_join(env.real_path(path_dirname(path)), path_basename(path));
  } catch (const Error&) {
    k.name = path;  // the folder is missing: creating the file will fail anyway
  }
  return k;
}

}  // namespace

struct GuardedEnv::State {
  struct Input {
    std::string path;
    std::pair<uint64_t, uint64_t> id;
  };
  struct Output {
    std::string role;
    std::string path;
    Maker maker;
    FileKey key;
  };
  std::mutex mu;
  std::vector<Input> inputs;
  std::vector<Output> outputs;
};

GuardedEnv::GuardedEnv(Env& base) : base_(base), state_(std::make_unique<State>()) {}
GuardedEnv::~GuardedEnv() = default;

namespace {

[[noreturn]] void refuse_read_output(const std::string& role, const std::string& out,
                                     const std::string& in) {
  throw Error(ErrorKind::kInvalidArgument, out, std::nullopt,
              role + " would overwrite " + in +
                  ", which is the source or a file it reads; refusing (even with --force)");
}

}  // namespace

void GuardedEnv::claim_output(const std::string& role, const std::string& path, Maker maker) {
  if (path == "-") return;
  FileKey key = key_of(base_, path);
  std::lock_guard<std::mutex> lock(state_->mu);
  for (const auto& in : state_->inputs) {
    if (key.id && *key.id == in.id) refuse_read_output(role, path, in.path);
  }
  for (const auto& out : state_->outputs) {
    if (key.same(out.key)) {
      throw Error(
          ErrorKind::kInvalidArgument, path, std::nullopt,
          role + " and " + out.role + " (" + out.path + ") are one file; refusing to write either");
    }
  }
  state_->outputs.push_back({role, path, maker, std::move(key)});
}

void GuardedEnv::add_input(const std::string& path) {
  auto id = base_.identity_of(path);
  if (!id) return;
  std::lock_guard<std::mutex> lock(state_->mu);
  for (const auto& out : state_->outputs) {
    if (out.key.id && *out.key.id == *id) refuse_read_output(out.role, out.path, path);
  }
  state_->inputs.push_back({path, *id});
}

std::unique_ptr<File> GuardedEnv::open_read(const std::string& path) {
  std::unique_ptr<File> f = base_.open_read(path);
  const auto id = f->identity();
  if (id == std::pair<uint64_t, uint64_t>{0, 0}) return f;
  std::lock_guard<std::mutex> lock(state_->mu);
  for (const auto& out : state_->outputs) {
    if (out.key.id && *out.key.id == id) refuse_read_output(out.role, out.path, path);
  }
  state_->inputs.push_back({path, id});
  return f;
}

std::unique_ptr<OutputFile> GuardedEnv::create_output(const std::string& path, bool overwrite) {
  if (path != "-") {
    FileKey key = key_of(base_, path);
    bool claimed = false;
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      for (const auto& in : state_->inputs) {
        if (key.id && *key.id == in.id) refuse_read_output("the output file", path, in.path);
      }
      for (const auto& out : state_->outputs) {
        if (!key.same(out.key)) continue;
        if (out.maker == Maker::kCommand) {
          throw Error(ErrorKind::kInvalidArgument, path, std::nullopt,
                      "an output file of the image is " + out.role +
                          (out.path == path ? "" : " (" + out.path + ")") +
                          "; refusing to write either");
        }
        claimed = true;
      }
    }
    if (!claimed) claim_output("the output file", path, Maker::kEnv);
  }
  return base_.create_output(path, overwrite);
}

bool GuardedEnv::exists(const std::string& path) {
  return base_.exists(path);
}
std::vector<DirEntryInfo> GuardedEnv::list_dir(const std::string& dir) {
  return base_.list_dir(dir);
}
std::string GuardedEnv::real_path(const std::string& path) {
  return base_.real_path(path);
}
std::optional<std::pair<uint64_t, uint64_t>> GuardedEnv::identity_of(const std::string& path) {
  return base_.identity_of(path);
}
int64_t GuardedEnv::now_unix() {
  return base_.now_unix();
}
void GuardedEnv::random_bytes(void* buf, size_t len) {
  base_.random_bytes(buf, len);
}

void remove_partial_outputs() {
  std::lock_guard<std::mutex> lock(partials_mu());
  for (const std::string& tmp : partials()) ::unlink(tmp.c_str());
  partials().clear();
}

}  // namespace vdisk
