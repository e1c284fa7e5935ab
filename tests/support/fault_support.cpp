#include "tests/support/fault_support.h"

#include <cerrno>

namespace vdisk::test {

class FaultyFile final : public File {
 public:
  FaultyFile(std::unique_ptr<File> f, FaultyEnv* env) : f_(std::move(f)), env_(env) {}
  const std::string& path() const override { return f_->path(); }
  uint64_t size() const override { return f_->size(); }
  void read_at(uint64_t off, void* buf, size_t len) const override {
    check(off, len);
    f_->read_at(off, buf, len);
  }
  size_t read_some(uint64_t off, void* buf, size_t len) const override {
    check(off, len);
    return f_->read_some(off, buf, len);
  }
  FileRange range_status(uint64_t off, uint64_t len) const override {
    return f_->range_status(off, len);
  }
  uint64_t allocated_on_host() const override { return f_->allocated_on_host(); }
  std::pair<uint64_t, uint64_t> identity() const override { return f_->identity(); }

 private:
  void check(uint64_t off, size_t len) const {
    if (!env_->armed_) return;
    ++env_->reads_;
    for (const Range& r : env_->faults_) {
      if (off < r.end && r.start < off + len) {
        const uint64_t at = std::max(off, r.start);
        if (env_->kind_ == ErrorKind::kIo) throw_errno(f_->path(), at, "read failed", EIO);
        throw Error(env_->kind_, f_->path(), at, "injected fault");
      }
    }
  }
  std::unique_ptr<File> f_;
  FaultyEnv* env_;
};

FaultyEnv::FaultyEnv(std::vector<Range> faults, ErrorKind kind, bool armed)
    : faults_(std::move(faults)), kind_(kind), armed_(armed) {}

std::unique_ptr<File> FaultyEnv::open_read(const std::string& path) {
  return std::make_unique<FaultyFile>(Env::posix().open_read(path), this);
}
std::unique_ptr<OutputFile> FaultyEnv::create_output(const std::string& p, bool overwrite) {
  return Env::posix().create_output(p, overwrite);
}
bool FaultyEnv::exists(const std::string& p) {
  return Env::posix().exists(p);
}
std::vector<DirEntryInfo> FaultyEnv::list_dir(const std::string& d) {
  return Env::posix().list_dir(d);
}
std::string FaultyEnv::real_path(const std::string& p) {
  return Env::posix().real_path(p);
}

BlockDevicePtr open_faulty(const std::string& path, const std::string& format, FaultyEnv& env) {
  OpenOptions opts;
  opts.env = &env;
  BlockDevicePtr dev = open_image(path, format, opts);
  env.arm();
  return dev;
}

}  // namespace vdisk::test
