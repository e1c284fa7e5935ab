#include "formats/core/check.h"

#include <algorithm>

namespace vdisk {

void CheckReport::add(CheckFinding f) {
  if (findings_.size() < kMaxFindings) findings_.push_back(std::move(f));
}

void CheckReport::error(const std::string& file, uint64_t offset, std::string structure,
                        std::string what) {
  ++errors_;
  add({CheckFinding::Kind::kError, file, offset, std::move(structure), std::move(what)});
}

void CheckReport::leak(const std::string& file, uint64_t offset, std::string structure,
                       std::string what, uint64_t bytes) {
  ++leaks_;
  leaked_bytes_ += bytes;
  add({CheckFinding::Kind::kLeak, file, offset, std::move(structure), std::move(what)});
}

void report_overlaps(std::vector<UsedRange>& used, const std::string& file, CheckReport& report) {
  std::sort(used.begin(), used.end(),
            [](const UsedRange& a, const UsedRange& b) { return a.start < b.start; });
  size_t reach = 0;
  for (size_t i = 1; i < used.size(); ++i) {
    const UsedRange& k = used[reach];
    if (used[i].start < k.end) {
      report.error(file, used[i].field, used[i].what,
                   "bytes " + std::to_string(used[i].start) + "-" + std::to_string(used[i].end) +
                       " overlap " + k.what + " (bytes " + std::to_string(k.start) + "-" +
                       std::to_string(k.end) + ")");
    }
    if (used[i].end > k.end) reach = i;
  }
}

}  // namespace vdisk
