#include "cli/acquire_io.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "formats/core/error.h"
#include "formats/core/file.h"

namespace vdisk::cli {

namespace {

class SourceDevice final : public BlockDevice {
 public:
  SourceDevice(std::string path, int fd, uint64_t size, uint32_t sector, bool device, bool direct)
      : path_(std::move(path)),
        fd_(fd),
        size_(size),
        sector_(sector),
        device_(device),
        direct_(direct) {}
  ~SourceDevice() override { ::close(fd_); }

  uint64_t size() const override { return size_; }
  uint32_t sector_size() const override { return sector_; }
  std::string label() const override { return path_; }
  ImageInfo info() const override {
    ImageInfo i;
    i.path = path_;
    i.format = device_ ? "block device" : "raw";
    i.virtual_size = size_;
    i.details = Json::object();
    i.details.set("o_direct", Json(direct_));
    return i;
  }

 protected:
  void do_read(uint64_t offset, void* buf, size_t len) const override {
    auto* p = static_cast<uint8_t*>(buf);
    while (len > 0) {
      const ssize_t n = ::pread(fd_, p, len, static_cast<off_t>(offset));
      if (n < 0) {
        if (errno == EINTR) continue;
        throw_errno(path_, offset, "read", errno);
      }
      if (n == 0) {
        throw Error(ErrorKind::kIo, path_, offset, "read: the source ended early (it shrank?)");
      }
      p += n;
      offset += static_cast<uint64_t>(n);
      len -= static_cast<size_t>(n);
    }
  }
  Extent do_block_status(uint64_t, uint64_t len) const override {
    return Extent{len, ExtentType::kData, 0};
  }

 private:
  std::string path_;
  int fd_;
  uint64_t size_;
  uint32_t sector_;
  bool device_;
  bool direct_;
};

class RescueFile final : public RescueSink {
 public:
  RescueFile(std::string path, int fd, bool durable)
      : path_(std::move(path)), fd_(fd), durable_(durable) {}
  ~RescueFile() override { ::close(fd_); }

  void write_at(uint64_t offset, const void* buf, size_t len) override {
    auto* p = static_cast<const uint8_t*>(buf);
    while (len > 0) {
      // At most kWriteSlice per call: small page-cache folios (file.h).
      const ssize_t n = ::pwrite(fd_, p, std::min(len, kWriteSlice), static_cast<off_t>(offset));
      if (n < 0) {
        if (errno == EINTR) continue;
        throw_errno(path_, offset, "write", errno);
      }
      p += n;
      offset += static_cast<uint64_t>(n);
      len -= static_cast<size_t>(n);
    }
  }
  void sync() override {
    if (durable_ && ::fdatasync(fd_) != 0) throw_errno(path_, std::nullopt, "fdatasync", errno);
  }

 private:
  std::string path_;
  int fd_;
  bool durable_;
};

}  // namespace

BlockDevicePtr open_acquire_source(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) throw Error(ErrorKind::kNotFound, path, std::nullopt, "no such file");
    throw_errno(path, std::nullopt, "open", err);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw_errno(path, std::nullopt, "stat", err);
  }
  if (S_ISREG(st.st_mode)) {
    return std::make_shared<SourceDevice>(path, fd, static_cast<uint64_t>(st.st_size), 512, false,
                                          false);
  }
  if (!S_ISBLK(st.st_mode)) {
    ::close(fd);
    throw Error(ErrorKind::kInvalidArgument, path, std::nullopt,
                "not a block device or a regular file");
  }
  uint64_t size = 0;
  int sector = 512;
  if (::ioctl(fd, BLKGETSIZE64, &size) != 0 || ::ioctl(fd, BLKSSZGET, &sector) != 0 ||
      sector <= 0) {
    const int err = errno;
    ::close(fd);
    throw_errno(path, std::nullopt, "reading the device's size (BLKGETSIZE64, BLKSSZGET)", err);
  }
  // O_DIRECT where the device allows it (some, like loop devices over
  // files on tmpfs, refuse it): reads go to the disk, not to readahead.
  bool direct = false;
  const int dfd = ::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  if (dfd >= 0) {
    ::close(fd);
    fd = dfd;
    direct = true;
  }
  return std::make_shared<SourceDevice>(path, fd, size, static_cast<uint32_t>(sector), true,
                                        direct);
}

std::unique_ptr<RescueSink> open_rescue_file(const std::string& path, uint64_t size, bool create,
                                             bool durable) {
  const int flags = O_WRONLY | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT | O_EXCL : 0);
  const int fd = ::open(path.c_str(), flags, 0644);
  if (fd < 0) {
    const int err = errno;
    if (err == EEXIST)
      throw Error(ErrorKind::kInvalidArgument, path, std::nullopt, "the rescue file exists");
    throw_errno(path, std::nullopt, create ? "create" : "open", err);
  }
  auto file = std::make_unique<RescueFile>(path, fd, durable);
  struct stat st;
  if (::fstat(fd, &st) != 0) throw_errno(path, std::nullopt, "stat", errno);
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    throw Error(ErrorKind::kInvalidArgument, path, std::nullopt,
                "the rescue file is not a regular file or a block device");
  }
  // A regular file is as long as the source, holes where nothing was
  // rescued (ddrescue's outfile reads as zeros there too).
  if (S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) < size &&
      ::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    throw_errno(path, std::nullopt, "extend", errno);
  }
  return file;
}

}  // namespace vdisk::cli
