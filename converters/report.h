// The report of a whole-source read (`convert`/`hash --hash-file REPORT.json`,
// read back by `verify --hash-file`): one type, written and parsed by the same
// code, so the writer and the reader cannot drift apart.
//
// The JSON object, keys in this order (users and tests rely on the names):
//   vdisk_version   string   the vdisk that wrote it
//   command         string   "convert", "hash"
//   start_time      string   UTC, ISO 8601 ("2026-11-21T00:38:17Z")
//   end_time        string   same
//   source          object   {path, format, [subformat], virtual_size,
//                             allocated_bytes (as `info` counts it:
//                             formats/core/image_info.h)}
//   destination     object   convert only: {path, format, [options] (the -o
//                             text), virtual_size, allocated_bytes (as `info`
//                             counts it, read back from the output; bytes
//                             handed to the writer as data when the output
//                             cannot be read back), files [paths], [hashes]
//                             (of the content the output holds)}
//   size_changed    object   when the output's size differs: {old, new}
//   virtual_size    number   of the source
//   hash_scope      string   what "hashes" covers, in words
//   hashes          object   {"md5": hex, "sha1": hex, "sha256": hex}, the
//                             algorithms asked for; the source as stored.
//                             Absent when read_errors is not empty (those
//                             bytes are unknown, so no such hash exists).
//   hashes_zero_filled        same shape: the source with its unrescued areas
//                             and read errors counted as zeros (present when
//                             there are any)
//   hashes_zero_filled_scope  string, with hashes_zero_filled
//   mapfile         object   with --mapfile: {path, bad_area_count, bad_bytes,
//                             bad_areas: [{start, length, end, status,
//                             status_name}]}
//   on_read_error   "continue", with --on-read-error continue, and then:
//   read_errors     array    [{offset, length}], sorted, merged
//   read_error_count, read_error_bytes   numbers
//   seconds         number   duration of the copy (6 significant digits)
// Sizes and offsets are bytes. A reader ignores keys it does not know.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "converters/convert.h"
#include "converters/hasher.h"
#include "formats/core/json.h"
#include "views/ddrescue/ddrescue_map.h"

namespace vdisk {

namespace ddrescue {
class RescuedDevice;
}

struct ReportSource {
  std::string path;
  std::string format;
  std::string subformat;  // empty: not written
  uint64_t virtual_size = 0;
  uint64_t allocated_bytes = 0;
  bool operator==(const ReportSource&) const = default;
};

struct ReportDestination {
  std::string path;
  std::string format;
  std::string options;  // the -o text as given; empty: not written
  uint64_t virtual_size = 0;
  uint64_t allocated_bytes = 0;
  std::vector<std::string> files;
  std::vector<HashValue> hashes;  // empty: not written
  bool operator==(const ReportDestination&) const = default;
};

struct ReportSizeChange {
  uint64_t old_size = 0;  // "old"
  uint64_t new_size = 0;  // "new"
  bool operator==(const ReportSizeChange&) const = default;
};

// The unrescued areas of the --mapfile the source was read through.
struct ReportMapfile {
  std::string path;
  std::vector<ddrescue::BadArea> bad_areas;
  bool operator==(const ReportMapfile& o) const;
};

// What --on-read-error continue found.
struct ReportReadErrors {
  std::vector<ByteRange> ranges;
  uint64_t bytes = 0;
  bool operator==(const ReportReadErrors& o) const;
};

struct Report {
  std::string vdisk_version = VDISK_VERSION;
  std::string command;
  std::string start_time;
  std::string end_time;
  ReportSource source;
  std::optional<ReportDestination> destination;
  std::optional<ReportSizeChange> size_changed;
  uint64_t virtual_size = 0;
  std::string hash_scope;
  std::vector<HashValue> hashes;
  std::vector<HashValue> hashes_zero_filled;
  std::string hashes_zero_filled_scope;
  std::optional<ReportMapfile> mapfile;
  std::optional<ReportReadErrors> read_errors;  // present: on_read_error continue
  double seconds = 0;

  // The JSON object above.
  Json to_json() const;
  // Parses what to_json writes. Throws Error(kInvalidArgument, `path`) naming
  // the key that is missing or of the wrong type, or the digest that is not
  // one ("not a vdisk report: ...").
  static Report parse(const std::string& text, const std::string& path);

  bool operator==(const Report&) const;
};

// The report of a copy of `source` (hash, or convert before its destination
// is filled in): hashes, scopes, mapfile and read errors from `r` and
// `rescued` (may be null), end_time now.
Report report_of_copy(const std::string& command, const std::string& start_time,
                      const ReportSource& source, const CopyResult& r,
                      const ddrescue::RescuedDevice* rescued, OnReadError policy);

// Pieces of the report that other outputs (hash --output json) share:
// {"md5": "...", "sha256": "..."}.
Json hashes_json(const std::vector<HashValue>& hashes);
// The "mapfile" object.
Json mapfile_json(const ReportMapfile& m);
// [{"offset", "length"}...].
Json read_errors_json(const std::vector<ByteRange>& ranges);
// What hashes_zero_filled covers, for labels: "unrescued areas as zeros",
// "read errors as zeros" or both.
std::string zero_filled_scope(const CopyResult& r);

// "2026-11-21T00:38:17Z": the current time, UTC, ISO 8601.
std::string utc_now_iso8601();

}  // namespace vdisk
