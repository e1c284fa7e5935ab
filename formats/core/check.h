// `vdisk check`: a read-only consistency check of one image's container,
// as data. A format that has tables to cross-check (refcounts, BATs, grain
// tables) implements FormatDescriptor::check in its folder
// (<fmt>_check.cpp); the registry's check_image (formats/registry.h) runs it
// and, for every format, reads the content so that stored checksums are
// verified.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace vdisk {

class File;
struct OpenOptions;

// One inconsistency: where (a byte offset in `file`), which structure ("L2
// table", "BAT entry 17", "refcount block"), and what is wrong.
struct CheckFinding {
  enum class Kind : uint8_t {
    kError,  // the image is inconsistent: reading it may give wrong content
    kLeak,   // space allocated that nothing uses: harmless, wasted
  };
  Kind kind = Kind::kError;
  std::string file;
  uint64_t offset = 0;
  std::string structure;
  std::string what;
};

// What a check found. Findings beyond kMaxFindings are counted, not kept.
class CheckReport {
 public:
  static constexpr size_t kMaxFindings = 1000;

  void error(const std::string& file, uint64_t offset, std::string structure, std::string what);
  void leak(const std::string& file, uint64_t offset, std::string structure, std::string what,
            uint64_t bytes);
  // A line on what was checked ("1024 L2 entries, 3 refcount blocks").
  void note(std::string text) { notes_.push_back(std::move(text)); }

  const std::vector<CheckFinding>& findings() const { return findings_; }
  const std::vector<std::string>& notes() const { return notes_; }
  uint64_t errors() const { return errors_; }
  uint64_t leaks() const { return leaks_; }
  uint64_t leaked_bytes() const { return leaked_bytes_; }
  bool clean() const { return errors_ == 0 && leaks_ == 0; }

 private:
  void add(CheckFinding f);
  std::vector<CheckFinding> findings_;
  std::vector<std::string> notes_;
  uint64_t errors_ = 0;
  uint64_t leaks_ = 0;
  uint64_t leaked_bytes_ = 0;
};

// A byte range of a file that one structure occupies, for report_overlaps.
struct UsedRange {
  uint64_t start = 0, end = 0;  // [start, end) in the file
  uint64_t field = 0;           // offset of the field that points at it
  std::string what;             // "block 17", "the BAT"
};

// Reports every range of `used` that overlaps one before it (sorted by
// start; each is compared with the furthest-reaching earlier range, so a
// long range that spans several later ones is seen by each) as an error
// at the later range's field. Sorts `used`.
void report_overlaps(std::vector<UsedRange>& used, const std::string& file, CheckReport& report);

// A format's check of one layer (FormatDescriptor::check). Adds what it
// finds to `report`; throws Error (kNotThisFormat, kCorrupt, kUnsupported)
// only when the container cannot be read at all (no header, a table that
// cannot be located): `vdisk check` then exits 2. Reads only through `file`
// (and opts.environment() for sibling files); never writes. Memory is
// bounded by the file's size, never by a header's counts.
using CheckFunction = void (*)(std::shared_ptr<const File> file, const OpenOptions& opts,
                               CheckReport& report);

}  // namespace vdisk
