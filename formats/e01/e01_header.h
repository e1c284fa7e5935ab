// The case metadata of an EWF image: the text inside the zlib-compressed
// "header" (ASCII, EWF 3.3) and "header2" (UTF-16, EWF 3.2) sections. Both
// hold categories; the first, "main", is a line of tab-separated identifiers
// followed by a line of the values:
//   1|3            number of categories
//   main
//   c  n  a  e  t  av ov m  u  p  [r]      (header: EnCase 2-7, FTK)
//   a  c  n  e  t  md sn av ov m  u  p  dc (header2: EnCase 5-7, linen 6-7)
//   <values>
// Identifiers: a description, c case number, n evidence number, e examiner,
// t notes, md model, sn serial number, l device label, av acquiring software
// version, ov acquiring OS, m acquisition date, u system date, p password
// hash ("0": none), r compression (b best, f fast, n none), pid process id,
// dc unknown, ext memory extents. Dates are "YYYY M D h m s" (EnCase header,
// local time) or a POSIX timestamp (header2, linen).
#pragma once

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "formats/core/json.h"

namespace vdisk::e01 {

// The main category of one header section, values as UTF-8.
struct CaseMetadata {
  std::string source;                                       // "header2" or "header"
  int categories = 0;                                       // the first line's count
  std::vector<std::pair<std::string, std::string>> values;  // identifier -> value, in order

  const std::string* get(const std::string& id) const;
};

// Header text as stored (after inflating): "header" bytes are ASCII or a
// Windows codepage (taken as Latin-1), "header2" bytes are UTF-16 with a byte
// order mark (little-endian without one). Both come back as UTF-8.
std::string header_text_to_utf8(const std::vector<uint8_t>& bytes);
std::string header2_text_to_utf8(const std::vector<uint8_t>& bytes);

// Parses the main category; nullopt when the text has no "main" category
// with identifier and value lines.
std::optional<CaseMetadata> parse_case_metadata(const std::string& utf8, const std::string& source);

// "2026-12-05T06:37:15Z" for a POSIX timestamp, "2026-12-05T06:37:15" (no
// zone: EnCase writes the acquiring system's local time) for "2026 12 5 6
// 37 15"; the text unchanged when it is neither.
std::string format_header_date(const std::string& value);

// The metadata as `info` shows it: {"case_number", "evidence_number",
// "description", "examiner", "notes", "model", "serial_number",
// "device_label", "acquisition_date", "system_date", "acquisition_os",
// "acquisition_software", "password_set", "header_compression",
// "process_id", other identifiers by their own name}; empty values left out.
Json case_metadata_json(const CaseMetadata& m);

// What the writer records (UTF-8; checked against EnCase's limits by
// check_case_field before any output exists).
struct CaseFields {
  std::string case_number, evidence_number, description, examiner, notes;
  std::string software_version;  // av: at most 11 characters
  std::string os;                // ov: at most 23 characters
  std::time_t acquired = 0;      // m and u
};

// EnCase's limits (EWF "Header2 values": tested with EnCase 7.02): case
// number, evidence number, examiner, notes, model, serial: 3000 - 1
// characters; version 12 - 1; platform 24 - 1. The description has no limit
// of its own; the same 2999 applies here so EnCase stays responsive.
inline constexpr size_t kMaxCaseFieldChars = 2999;
inline constexpr size_t kMaxVersionChars = 11;
inline constexpr size_t kMaxOsChars = 23;
// Throws Error(kInvalidArgument) naming `option` when `value` has more than
// `max_chars` characters (UTF-8 code points) or a tab, CR or LF (the text
// format has no escapes).
void check_case_field(const std::string& option, const std::string& value, size_t max_chars);

// The EnCase 6 forms, as stored before compression: "header2" as UTF-16LE
// with its byte order mark, 3 categories (main, srce, sub), POSIX dates;
// "header" as ASCII with CRLF, one category, local-time dates (characters
// outside ASCII become '?': the header2 copy keeps them).
std::vector<uint8_t> render_header2(const CaseFields& f);
std::vector<uint8_t> render_header(const CaseFields& f);

}  // namespace vdisk::e01
