#include "converters/report.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "formats/core/error.h"
#include "views/ddrescue/rescued_device.h"

namespace vdisk {

namespace {

// Json prints doubles with 6 significant digits: a value kept that way
// reads back equal.
double as_written(double seconds) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", seconds);
  return std::strtod(buf, nullptr);
}

// Reads the fields of one report, naming the report and the key in errors.
class Reader {
 public:
  explicit Reader(std::string path) : path_(std::move(path)) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(ErrorKind::kInvalidArgument, path_, std::nullopt, "not a vdisk report: " + what);
  }

  const Json& need(const Json& obj, const std::string& key, const std::string& where) const {
    const Json* v = obj.find(key);
    if (!v) fail("no \"" + where + key + "\"");
    return *v;
  }
  std::string string(const Json& obj, const std::string& key, const std::string& where) const {
    const Json& v = need(obj, key, where);
    if (!v.is_string()) fail("\"" + where + key + "\" is not a string");
    return v.as_string();
  }
  std::string opt_string(const Json& obj, const std::string& key, const std::string& where) const {
    return obj.find(key) ? string(obj, key, where) : std::string();
  }
  uint64_t number(const Json& obj, const std::string& key, const std::string& where) const {
    const Json& v = need(obj, key, where);
    if (!v.is_number()) fail("\"" + where + key + "\" is not a number");
    return v.as_u64();
  }
  const Json& object(const Json& obj, const std::string& key, const std::string& where) const {
    const Json& v = need(obj, key, where);
    if (!v.is_object()) fail("\"" + where + key + "\" is not an object");
    return v;
  }
  const Json::Array& array(const Json& obj, const std::string& key,
                           const std::string& where) const {
    const Json& v = need(obj, key, where);
    if (!v.is_array()) fail("\"" + where + key + "\" is not an array");
    return v.as_array();
  }
  std::vector<HashValue> hashes(const Json& obj, const std::string& key,
                                const std::string& where) const {
    std::vector<HashValue> out;
    if (!obj.find(key)) return out;
    for (const auto& [algo, hex] : object(obj, key, where).as_object()) {
      if (!hex.is_string()) fail("\"" + where + key + "." + algo + "\" is not a string");
      try {
        out.push_back(parse_hash_value(algo, hex.as_string()));
      } catch (const Error& e) {
        fail("\"" + where + key + "\": " + e.message());
      }
    }
    return out;
  }

 private:
  std::string path_;
};

}  // namespace

bool ReportMapfile::operator==(const ReportMapfile& o) const {
  if (path != o.path || bad_areas.size() != o.bad_areas.size()) return false;
  for (size_t i = 0; i < bad_areas.size(); ++i) {
    const ddrescue::BadArea &a = bad_areas[i], &b = o.bad_areas[i];
    if (a.start != b.start || a.length != b.length || a.status != b.status) return false;
  }
  return true;
}

bool ReportReadErrors::operator==(const ReportReadErrors& o) const {
  if (bytes != o.bytes || ranges.size() != o.ranges.size()) return false;
  for (size_t i = 0; i < ranges.size(); ++i) {
    if (ranges[i].start != o.ranges[i].start || ranges[i].length != o.ranges[i].length)
      return false;
  }
  return true;
}

bool Report::operator==(const Report& o) const {
  return vdisk_version == o.vdisk_version && command == o.command && start_time == o.start_time &&
         end_time == o.end_time && source == o.source && destination == o.destination &&
         size_changed == o.size_changed && virtual_size == o.virtual_size &&
         hash_scope == o.hash_scope && hashes == o.hashes &&
         hashes_zero_filled == o.hashes_zero_filled &&
         hashes_zero_filled_scope == o.hashes_zero_filled_scope && mapfile == o.mapfile &&
         read_errors == o.read_errors && seconds == o.seconds;
}

Json hashes_json(const std::vector<HashValue>& hashes) {
  Json j = Json::object();
  for (const HashValue& h : hashes) j.set(hash_algo_name(h.algo), h.hex);
  return j;
}

Json mapfile_json(const ReportMapfile& m) {
  Json j = Json::object();
  j.set("path", m.path);
  j.set("bad_area_count", static_cast<uint64_t>(m.bad_areas.size()));
  j.set("bad_bytes", ddrescue::bad_bytes(m.bad_areas));
  Json list = Json::array();
  for (const auto& a : m.bad_areas) {
    Json e = Json::object();
    e.set("start", a.start);
    e.set("length", a.length);
    e.set("end", a.start + a.length);
    e.set("status", std::string(1, a.status));
    e.set("status_name", ddrescue::status_name(a.status));
    list.push(std::move(e));
  }
  j.set("bad_areas", std::move(list));
  return j;
}

Json read_errors_json(const std::vector<ByteRange>& ranges) {
  Json list = Json::array();
  for (const ByteRange& b : ranges) {
    Json e = Json::object();
    e.set("offset", b.start);
    e.set("length", b.length);
    list.push(std::move(e));
  }
  return list;
}

std::string zero_filled_scope(const CopyResult& r) {
  if (r.unreadable_bytes && !r.read_errors.empty())
    return "unrescued areas and read errors as zeros";
  return r.read_errors.empty() ? "unrescued areas as zeros" : "read errors as zeros";
}

std::string utc_now_iso8601() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Json Report::to_json() const {
  Json rep = Json::object();
  rep.set("vdisk_version", vdisk_version);
  rep.set("command", command);
  rep.set("start_time", start_time);
  rep.set("end_time", end_time);
  Json s = Json::object();
  s.set("path", source.path);
  s.set("format", source.format);
  if (!source.subformat.empty()) s.set("subformat", source.subformat);
  s.set("virtual_size", source.virtual_size);
  s.set("allocated_bytes", source.allocated_bytes);
  rep.set("source", std::move(s));
  if (destination) {
    const ReportDestination& dst = *destination;
    Json d = Json::object();
    d.set("path", dst.path);
    d.set("format", dst.format);
    if (!dst.options.empty()) d.set("options", dst.options);
    d.set("virtual_size", dst.virtual_size);
    d.set("allocated_bytes", dst.allocated_bytes);
    Json files = Json::array();
    for (const std::string& f : dst.files) files.push(f);
    d.set("files", std::move(files));
    if (!dst.hashes.empty()) d.set("hashes", hashes_json(dst.hashes));
    rep.set("destination", std::move(d));
  }
  if (size_changed) {
    Json c = Json::object();
    c.set("old", size_changed->old_size);
    c.set("new", size_changed->new_size);
    rep.set("size_changed", std::move(c));
  }
  rep.set("virtual_size", virtual_size);
  rep.set("hash_scope", hash_scope);
  if (!read_errors || read_errors->ranges.empty()) rep.set("hashes", hashes_json(hashes));
  if (!hashes_zero_filled.empty()) {
    rep.set("hashes_zero_filled", hashes_json(hashes_zero_filled));
    rep.set("hashes_zero_filled_scope", hashes_zero_filled_scope);
  }
  if (mapfile) rep.set("mapfile", mapfile_json(*mapfile));
  if (read_errors) {
    rep.set("on_read_error", "continue");
    rep.set("read_errors", read_errors_json(read_errors->ranges));
    rep.set("read_error_count", static_cast<uint64_t>(read_errors->ranges.size()));
    rep.set("read_error_bytes", read_errors->bytes);
  }
  rep.set("seconds", seconds);
  return rep;
}

Report Report::parse(const std::string& text, const std::string& path) {
  Reader in(path);
  Json j;
  try {
    j = Json::parse(text);
  } catch (const Error& e) {
    in.fail(e.message());
  }
  if (!j.is_object()) in.fail("not a JSON object");
  Report r;
  r.vdisk_version = in.string(j, "vdisk_version", "");
  r.command = in.string(j, "command", "");
  r.start_time = in.string(j, "start_time", "");
  r.end_time = in.string(j, "end_time", "");
  const Json& s = in.object(j, "source", "");
  r.source.path = in.string(s, "path", "source.");
  r.source.format = in.string(s, "format", "source.");
  r.source.subformat = in.opt_string(s, "subformat", "source.");
  r.source.virtual_size = in.number(s, "virtual_size", "source.");
  r.source.allocated_bytes = in.number(s, "allocated_bytes", "source.");
  if (j.find("destination")) {
    const Json& d = in.object(j, "destination", "");
    ReportDestination dst;
    dst.path = in.string(d, "path", "destination.");
    dst.format = in.string(d, "format", "destination.");
    dst.options = in.opt_string(d, "options", "destination.");
    dst.virtual_size = in.number(d, "virtual_size", "destination.");
    dst.allocated_bytes = in.number(d, "allocated_bytes", "destination.");
    for (const Json& f : in.array(d, "files", "destination.")) {
      if (!f.is_string()) in.fail("\"destination.files\" holds a non-string");
      dst.files.push_back(f.as_string());
    }
    dst.hashes = in.hashes(d, "hashes", "destination.");
    r.destination = std::move(dst);
  }
  if (j.find("size_changed")) {
    const Json& c = in.object(j, "size_changed", "");
    r.size_changed = ReportSizeChange{in.number(c, "old", "size_changed."),
                                      in.number(c, "new", "size_changed.")};
  }
  r.virtual_size = in.number(j, "virtual_size", "");
  r.hash_scope = in.string(j, "hash_scope", "");
  r.hashes = in.hashes(j, "hashes", "");
  r.hashes_zero_filled = in.hashes(j, "hashes_zero_filled", "");
  if (!r.hashes_zero_filled.empty())
    r.hashes_zero_filled_scope = in.string(j, "hashes_zero_filled_scope", "");
  if (j.find("mapfile")) {
    const Json& m = in.object(j, "mapfile", "");
    ReportMapfile map;
    map.path = in.string(m, "path", "mapfile.");
    for (const Json& a : in.array(m, "bad_areas", "mapfile.")) {
      if (!a.is_object()) in.fail("\"mapfile.bad_areas\" holds a non-object");
      const std::string status = in.string(a, "status", "mapfile.bad_areas[].");
      if (status.size() != 1) in.fail("\"mapfile.bad_areas[].status\" is not one character");
      map.bad_areas.push_back({in.number(a, "start", "mapfile.bad_areas[]."),
                               in.number(a, "length", "mapfile.bad_areas[]."), status[0]});
    }
    r.mapfile = std::move(map);
  }
  if (j.find("on_read_error")) {
    if (in.string(j, "on_read_error", "") != "continue")
      in.fail("\"on_read_error\" is not \"continue\"");
    ReportReadErrors errs;
    for (const Json& e : in.array(j, "read_errors", "")) {
      if (!e.is_object()) in.fail("\"read_errors\" holds a non-object");
      errs.ranges.push_back(
          {in.number(e, "offset", "read_errors[]."), in.number(e, "length", "read_errors[].")});
    }
    errs.bytes = in.number(j, "read_error_bytes", "");
    r.read_errors = std::move(errs);
  }
  const Json& secs = in.need(j, "seconds", "");
  if (!secs.is_number()) in.fail("\"seconds\" is not a number");
  r.seconds = secs.as_double();
  return r;
}

Report report_of_copy(const std::string& command, const std::string& start_time,
                      const ReportSource& source, const CopyResult& r,
                      const ddrescue::RescuedDevice* rescued, OnReadError policy) {
  Report rep;
  rep.command = command;
  rep.start_time = start_time;
  rep.end_time = utc_now_iso8601();
  rep.source = source;
  rep.virtual_size = source.virtual_size;
  if (r.read_errors.empty()) {
    rep.hash_scope = "guest content of the source, as stored";
    rep.hashes = r.hashes;
  } else {
    // The bytes stored in the read errors are unknown: no hash of the source
    // as stored exists, only of the source with zeros there (what the output
    // of a conversion holds).
    rep.hash_scope = "no hash of the source as stored: " + human_size(r.read_error_bytes) +
                     " could not be read (read_errors); hashes_zero_filled covers the source "
                     "with zeros there";
  }
  if (!r.hashes_zero_filled.empty()) {
    rep.hashes_zero_filled = r.hashes_zero_filled;
    rep.hashes_zero_filled_scope = "the source with its " + zero_filled_scope(r);
  }
  if (rescued) rep.mapfile = ReportMapfile{rescued->mapfile_path(), rescued->bad_areas()};
  if (policy == OnReadError::kContinue) {
    rep.read_errors = ReportReadErrors{r.read_errors, r.read_error_bytes};
  }
  rep.seconds = as_written(r.seconds);
  return rep;
}

}  // namespace vdisk
