// Fault injection for the read-error tests (LevelDB-style Env wrapper): files
// opened through a FaultyEnv fail reads that touch given byte ranges.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "formats/core/error.h"
#include "formats/core/file.h"
#include "formats/registry.h"

namespace vdisk::test {

// A byte range [start, end).
struct Range {
  uint64_t start = 0, end = 0;
  bool operator==(const Range&) const = default;
};
inline std::ostream& operator<<(std::ostream& os, const Range& r) {
  return os << "[" << r.start << ", " << r.end << ")";
}

// An Env over the POSIX one whose files fail every read (read_at, read_some)
// that overlaps one of `faults` (file offsets): with EIO (Error kIo, as
// PosixFile reports it) by default, or with Error(`kind`). The error names
// the first faulty byte the read touches. Reads are counted while armed.
class FaultyEnv final : public Env {
 public:
  explicit FaultyEnv(std::vector<Range> faults, ErrorKind kind = ErrorKind::kIo, bool armed = true);
  // Faults apply (and reads count) only while armed: disarmed at
  // construction, an image can be opened (its metadata read) first.
  void arm() { armed_ = true; }
  uint64_t reads() const { return reads_.load(); }

  std::unique_ptr<File> open_read(const std::string& path) override;
  std::unique_ptr<OutputFile> create_output(const std::string& p, bool overwrite) override;
  bool exists(const std::string& p) override;
  std::vector<DirEntryInfo> list_dir(const std::string& d) override;
  std::string real_path(const std::string& p) override;

 private:
  friend class FaultyFile;
  std::vector<Range> faults_;
  ErrorKind kind_;
  std::atomic<bool> armed_;
  std::atomic<uint64_t> reads_{0};
};

// A power cut after `budget` writes (-1: none): later writes, length
// changes, commits and removals are lost.
struct Crash {
  int budget = -1;
  int steps = 0;  // asked for so far, landed or not
  bool step() {
    ++steps;
    return budget < 0 || steps <= budget;
  }
};

// An UpdateFile whose writes and length changes count against `crash`;
// sync() does nothing (every write lands in order until the cut).
class CrashingFile final : public UpdateFile {
 public:
  CrashingFile(UpdateFile& inner, Crash& crash) : inner_(inner), crash_(crash) {}
  const std::string& path() const override { return inner_.path(); }
  uint64_t size() const override { return inner_.size(); }
  void read_at(uint64_t o, void* b, size_t n) const override { inner_.read_at(o, b, n); }
  size_t read_some(uint64_t o, void* b, size_t n) const override {
    return inner_.read_some(o, b, n);
  }
  void write_at(uint64_t o, const void* b, size_t n) override {
    if (crash_.step()) inner_.write_at(o, b, n);
  }
  void set_size(uint64_t s) override {
    if (crash_.step()) inner_.set_size(s);
  }
  void sync() override {}

 private:
  UpdateFile& inner_;
  Crash& crash_;
};

// Opens `path` as `format` through `env`, then arms it.
BlockDevicePtr open_faulty(const std::string& path, const std::string& format, FaultyEnv& env);

}  // namespace vdisk::test
