#include "cli/cli.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <mutex>
#include <thread>

#include "converters/stream_device.h"
#include "formats/core/error.h"
#include "formats/core/file.h"

namespace vdisk::cli {

std::atomic<bool>& cancel_flag() {
  static std::atomic<bool> flag{false};
  return flag;
}

bool parse_args(const std::string& name, const std::string& usage, po::options_description& desc,
                const po::positional_options_description& positional,
                const std::vector<std::string>& args, po::variables_map& vm) {
  desc.add_options()("help,h", "show this help");
  // -p / --progress / --progress json / --progress=json: Program_options
  // binds an optional value only with '=' and would take the next word as the
  // value of "-p", so the forms are normalised here for commands whose
  // --progress takes a value (add_progress_option).
  std::vector<std::string> joined;
  const po::option_description* prog = desc.find_nothrow("progress", false);
  const bool prog_value = prog && prog->semantic()->max_tokens() > 0;
  for (size_t i = 0; i < args.size(); ++i) {
    if (prog_value && (args[i] == "--progress" || args[i] == "-p")) {
      if (i + 1 < args.size() &&
          (args[i + 1] == "json" || args[i + 1] == "bar" || args[i + 1] == "human")) {
        joined.push_back("--progress=" + args[++i]);
      } else {
        joined.push_back("--progress=bar");
      }
    } else {
      joined.push_back(args[i]);
    }
  }
  try {
    po::store(po::command_line_parser(joined).options(desc).positional(positional).run(), vm);
    if (vm.count("help")) {
      std::cout << "usage: vdisk " << name << " " << usage << "\n\n" << desc << "\n";
      return false;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }
  return true;
}

void add_open_options(po::options_description& desc, const char* format_flag) {
  desc.add_options()(format_flag, po::value<std::string>()->default_value(""),
                     "input format (default: probe the bytes)")(
      "parent", po::value<std::string>()->default_value(""),
      "parent image of a differencing disk (overrides the search)")(
      "allow-outside-paths",
      "let extent and parent names point outside the image's folder (absolute, '..', symlinks)")(
      "snapshot", po::value<std::string>()->default_value(""),
      "read the image as it was at this internal snapshot (qcow2: ID or name)");
      "index", po::value<std::string>()->value_name("FILE"),
      "compressed raw images (gzip, bzip2, zstd): keep the access-point index in FILE (read "
      "when it exists, else written after the first pass)");
}

OpenOptions open_options_from(const po::variables_map& vm) {
  OpenOptions o;
  o.allow_outside_paths = vm.count("allow-outside-paths") != 0;
  if (vm.count("parent")) o.parent_path = vm["parent"].as<std::string>();
  if (vm.count("snapshot")) o.snapshot = vm["snapshot"].as<std::string>();
  if (vm.count("index")) o.index_path = vm["index"].as<std::string>();
  return o;
}

BlockDevicePtr open_from_args(const po::variables_map& vm, const std::string& image_key,
                              const std::string& format_key) {
  std::string fmt = vm.count(format_key) ? vm[format_key].as<std::string>() : "";
  return open_image(vm[image_key].as<std::string>(), fmt, open_options_from(vm));
}

void add_progress_option(po::options_description& desc) {
  desc.add_options()("progress,p", po::value<std::string>()->value_name("[bar|json]"),
                     "show progress on stderr: -p a bar (a summary line when not a terminal), "
                     "--progress json one JSON line a second");
}

std::unique_ptr<ProgressSink> progress_from(const po::variables_map& vm) {
  if (!vm.count("progress")) return nullptr;
  std::string mode = vm["progress"].as<std::string>();
  if (mode == "json") return make_progress(false, true);
  if (mode == "bar" || mode == "human") return make_progress(true, false);
  throw UsageError("--progress must be bar or json, not '" + mode + "'");
}

void add_mapfile_option(po::options_description& desc) {
  desc.add_options()("mapfile", po::value<std::string>(),
                     "GNU ddrescue mapfile of the image: areas not marked '+' are unrescued");
}

std::shared_ptr<const ddrescue::RescuedDevice> rescued_from(const po::variables_map& vm,
                                                            BlockDevicePtr dev,
                                                            const std::string& image,
                                                            ddrescue::BadAreaMode mode) {
  // An image that records the sectors its acquisition could not read (an
  // E01's error2) is seen like a rescued image: those ranges are painted
  // over the mapfile's areas, or make the map on their own.
  const std::vector<ByteRange> own = dev->unreadable_ranges();
  if (!vm.count("mapfile") && own.empty()) return nullptr;
  ddrescue::Mapfile map;
  if (vm.count("mapfile"))
    map = ddrescue::load_mapfile(Env::posix(), vm["mapfile"].as<std::string>());
  if (!own.empty()) {
    if (vm.count("mapfile")) ddrescue::check_covers(map, dev->size());
    map = ddrescue::mapfile_with_bad_ranges(
        vm.count("mapfile") ? &map : nullptr, dev->size(), own, '-',
        vm.count("mapfile") ? map.path + " and " + image + "'s own list of unread sectors"
                            : image + "'s own list of unread sectors");
  }
  auto rescued = std::make_shared<const ddrescue::RescuedDevice>(dev, map, mode);
  const auto& areas = rescued->bad_areas();
  uint64_t total = ddrescue::bad_bytes(areas);
  std::fprintf(stderr, "vdisk: %s: %zu unrescued area%s in %s, %s\n", image.c_str(), areas.size(),
               areas.size() == 1 ? "" : "s", map.path.c_str(), human_size(total).c_str());
  const size_t kShown = 20;
  for (size_t i = 0; i < areas.size() && i < kShown; ++i) {
    std::fprintf(stderr, "  %s-%s  %llu bytes  %s\n", hex_offset(areas[i].start).c_str(),
                 hex_offset(areas[i].start + areas[i].length).c_str(),
                 static_cast<unsigned long long>(areas[i].length),
                 ddrescue::status_name(areas[i].status));
  }
  if (areas.size() > kShown) {
    std::fprintf(stderr, "  ... and %zu more (--hash-file lists them all)\n",
                 areas.size() - kShown);
  }
  return rescued;
}

Json bad_areas_json(const ddrescue::RescuedDevice& dev) {
  Json j = Json::object();
  j.set("path", dev.mapfile_path());
  j.set("bad_area_count", static_cast<uint64_t>(dev.bad_areas().size()));
  j.set("bad_bytes", ddrescue::bad_bytes(dev.bad_areas()));
  Json list = Json::array();
  for (const auto& a : dev.bad_areas()) {
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

void add_read_error_options(po::options_description& desc) {
  desc.add_options()("on-read-error", po::value<std::string>()->default_value("stop"),
                     "stop: a read error in the source stops the command naming the offset; "
                     "continue: isolate the unreadable ranges (64 KiB, then 4 KiB pieces), "
                     "list them, treat them as zeros (never written), exit 3")(
      "error-map", po::value<std::string>(),
      "with --on-read-error continue: write the unreadable ranges as a GNU ddrescue mapfile");
}

OnReadError read_error_policy_from(const po::variables_map& vm, bool source_is_stdin, bool force) {
  const std::string v = vm.count("on-read-error") ? vm["on-read-error"].as<std::string>() : "stop";
  OnReadError policy;
  if (v == "stop") {
    policy = OnReadError::kStop;
  } else if (v == "continue") {
    policy = OnReadError::kContinue;
  } else {
    throw UsageError("--on-read-error must be stop or continue, not '" + v + "'");
  }
  if (policy == OnReadError::kContinue && source_is_stdin) {
    throw UsageError(
        "--on-read-error continue needs a source file: standard input cannot be read again in "
        "pieces");
  }
  if (vm.count("error-map")) {
    if (policy != OnReadError::kContinue)
      throw UsageError("--error-map needs --on-read-error continue");
    check_report_path(vm["error-map"].as<std::string>(), force);
  }
  return policy;
}

std::string read_error_hint(OnReadError policy, bool source_is_stdin) {
  if (policy != OnReadError::kStop || source_is_stdin) return "";
  return " (--on-read-error continue copies around unreadable ranges and lists them)";
}

Json read_errors_json(const CopyResult& r) {
  Json list = Json::array();
  for (const ByteRange& b : r.read_errors) {
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

namespace {

// The read errors outside `rescued`'s unrescued areas, as non-trimmed ('*')
// areas merged with those areas: what --error-map writes.
std::vector<ddrescue::BadArea> error_map_areas(const CopyResult& r,
                                               const ddrescue::RescuedDevice* rescued) {
  std::vector<ddrescue::BadArea> known;
  if (rescued) known = rescued->bad_areas();
  std::vector<ddrescue::BadArea> out;
  size_t k = 0;
  for (const ByteRange& e : r.read_errors) {
    uint64_t pos = e.start;
    const uint64_t end = e.start + e.length;
    while (pos < end) {
      while (k < known.size() && known[k].start + known[k].length <= pos) out.push_back(known[k++]);
      if (k < known.size() && known[k].start <= pos) {
        pos = std::min(end, known[k].start + known[k].length);  // already unrescued
        continue;
      }
      const uint64_t stop = k < known.size() ? std::min(end, known[k].start) : end;
      if (!out.empty() && out.back().status == '*' && out.back().start + out.back().length == pos) {
        out.back().length += stop - pos;
      } else {
        out.push_back({pos, stop - pos, '*'});
      }
      pos = stop;
    }
  }
  while (k < known.size()) out.push_back(known[k++]);
  return out;
}

}  // namespace

int finish_read_errors(const po::variables_map& vm, const std::string& label, const CopyResult& r,
                       const char* what, const ddrescue::RescuedDevice* rescued, bool force) {
  const auto& errs = r.read_errors;
  const size_t kShown = 20;
  for (size_t i = 0; i < errs.size() && i < kShown; ++i) {
    std::fprintf(stderr, "vdisk: %s: read error at offset %s (%llu), %llu bytes %s\n",
                 label.c_str(), hex_offset(errs[i].start).c_str(),
                 static_cast<unsigned long long>(errs[i].start),
                 static_cast<unsigned long long>(errs[i].length), what);
  }
  if (errs.size() > kShown) {
    std::fprintf(stderr, "vdisk: %s: ... and %zu more read errors (--hash-file lists them all)\n",
                 label.c_str(), errs.size() - kShown);
  }
  if (!errs.empty()) {
    std::fprintf(stderr,
                 "vdisk: %s: %zu unreadable range%s, %s lost: they count as zeros; the hashes "
                 "cover the source with zeros there, not the source as stored\n",
                 label.c_str(), errs.size(), errs.size() == 1 ? "" : "s",
                 human_size(r.read_error_bytes).c_str());
  }
  if (vm.count("error-map")) {
    const std::string path = vm["error-map"].as<std::string>();
    std::string text = ddrescue::format_mapfile(
        r.virtual_size, error_map_areas(r, rescued),
        {"Mapfile. Written by vdisk " VDISK_VERSION " (not GNU ddrescue)", "Source: " + label,
         "'*' (non-trimmed): ranges vdisk could not read, in 4 KiB pieces at best"});
    write_text_output(path, text, force);
  }
  return errs.empty() ? kExitOk : kExitDataLost;
}

Json make_report(const std::string& command, const std::string& start_time,
                 const ReportSource& source, const CopyResult& r,
                 const ddrescue::RescuedDevice* rescued, OnReadError policy, Json extra) {
  Json rep = Json::object();
  rep.set("vdisk_version", VDISK_VERSION);
  rep.set("command", command);
  rep.set("start_time", start_time);
  rep.set("end_time", utc_now_iso8601());
  Json s = Json::object();
  s.set("path", source.path);
  s.set("format", source.info->format);
  if (!source.info->subformat.empty()) s.set("subformat", source.info->subformat);
  s.set("virtual_size", source.virtual_size);
  s.set("allocated_bytes", source.allocated_bytes);
  rep.set("source", std::move(s));
  if (extra.is_object()) {
    for (auto& [k, v] : extra.as_object()) rep.set(k, v);
  }
  rep.set("virtual_size", source.virtual_size);
  if (r.read_errors.empty()) {
    rep.set("hash_scope", "guest content of the source, as stored");
    rep.set("hashes", hashes_json(r.hashes));
  } else {
    // The bytes stored in the read errors are unknown: no hash of the source
    // as stored exists, only of the source with zeros there (what the output
    // of a conversion holds).
    rep.set("hash_scope",
            "no hash of the source as stored: " + human_size(r.read_error_bytes) +
                " could not be read (read_errors); hashes_zero_filled covers the source with "
                "zeros there");
  }
  if (!r.hashes_zero_filled.empty()) {
    rep.set("hashes_zero_filled", hashes_json(r.hashes_zero_filled));
    rep.set("hashes_zero_filled_scope", "the source with its " + zero_filled_scope(r));
  }
  if (rescued) rep.set("mapfile", bad_areas_json(*rescued));
  if (policy == OnReadError::kContinue) {
    rep.set("on_read_error", "continue");
    rep.set("read_errors", read_errors_json(r));
    rep.set("read_error_count", static_cast<uint64_t>(r.read_errors.size()));
    rep.set("read_error_bytes", r.read_error_bytes);
  }
  rep.set("seconds", r.seconds);
  return rep;
}

void add_stdin_size_option(po::options_description& desc) {
  desc.add_options()("size", po::value<uint64_t>(),
                     "with SRC '-': the byte count of the raw image read from standard input");
}

BlockDevicePtr open_source(const po::variables_map& vm, const std::string& image_key,
                           bool* is_stream) {
  *is_stream = vm[image_key].as<std::string>() == "-";
  if (!*is_stream) {
    if (vm.count("size"))
      throw UsageError("--size applies only to a source read from standard input ('-')");
    return open_from_args(vm, image_key);
  }
  if (!vm.count("size")) throw UsageError("reading standard input ('-') needs --size BYTES");
  std::string fmt = vm.count("format") ? vm["format"].as<std::string>() : "";
  if (!fmt.empty() && fmt != "raw")
    throw UsageError("standard input is read as raw only, not " + fmt);
  return std::make_shared<const StreamDevice>(0, vm["size"].as<uint64_t>(), "-");
}

std::string utc_now_iso8601() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Json hashes_json(const std::vector<HashValue>& hashes) {
  Json j = Json::object();
  for (const HashValue& h : hashes) j.set(hash_algo_name(h.algo), h.hex);
  return j;
}

void check_report_path(const std::string& path, bool overwrite) {
  if (path == "-") return;
  // Checked before any work: a report that cannot be written at the end
  // would fail a conversion that is otherwise complete.
  struct stat st;
  const std::string dir = path_dirname(path);
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw Error(ErrorKind::kNotFound, path, std::nullopt, "folder " + dir + " does not exist");
  }
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode))
      throw Error(ErrorKind::kInvalidArgument, path, std::nullopt, "is a directory");
    if (!overwrite)
      throw Error(ErrorKind::kInvalidArgument, path, std::nullopt,
                  "file exists (pass --force to replace it)");
  }
}

void write_report(const std::string& path, const Json& report, bool overwrite) {
  write_text_output(path, report.dump(2) + "\n", overwrite);
}

void write_text_output(const std::string& path, const std::string& text, bool overwrite) {
  std::unique_ptr<OutputFile> out = Env::posix().create_output(path, overwrite);
  try {
    out->write_at(0, text.data(), text.size());
    out->commit();
  } catch (...) {
    out->discard();
    throw;
  }
}

bool want_json(const po::variables_map& vm) {
  if (!vm.count("output")) return false;
  std::string o = vm["output"].as<std::string>();
  if (o == "json") return true;
  if (o == "human") return false;
  throw UsageError("--output must be human or json, not '" + o + "'");
}

std::string hex_offset(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%" PRIx64, v);
  return buf;
}

std::string upper_case(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

namespace {

std::string format_rate(double bytes_per_s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB/s", bytes_per_s / 1e6);
  return buf;
}

std::string format_duration(double s) {
  if (s < 0 || s > 1e7) return "--:--";
  auto t = static_cast<long>(s + 0.5);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%ld:%02ld", t / 60, t % 60);
  return buf;
}

class StderrProgress final : public ProgressSink {
 public:
  StderrProgress(bool tty, bool json) : tty_(tty), json_(json) {}
  ~StderrProgress() override { stop_ticker(); }

  void begin(const std::string& phase, uint64_t total) override {
    stop_ticker();
    phase_ = phase;
    total_ = total;
    done_ = 0;
    start_ = last_ = std::chrono::steady_clock::now();
    active_ = true;
    if (json_) {
      json_line("start");
      // One line a second even while the engine waits on a slow stage.
      ticking_ = true;
      ticker_ = std::thread([this] {
        std::unique_lock<std::mutex> lock(tick_mu_);
        while (!tick_cv_.wait_for(lock, std::chrono::seconds(1), [this] { return !ticking_; })) {
          json_line("running");
        }
      });
    } else if (tty_) {
      draw();
    }
  }

  void update(uint64_t done) override {
    done_ = done;
    if (json_ || !tty_) return;
    auto now = std::chrono::steady_clock::now();
    if (std::chrono::duration<double>(now - last_).count() >= 0.1) {
      last_ = now;
      draw();
    }
  }

  void end() override {
    if (!active_) return;
    active_ = false;
    double secs = elapsed();
    if (json_) {
      stop_ticker();
      json_line("done");
      return;
    }
    if (tty_) {
      draw();
      std::fputc('\n', stderr);
    } else {
      std::fprintf(stderr, "vdisk: %s: %s in %.2f s (%s)\n", phase_.c_str(),
                   human_size(done_).c_str(), secs,
                   format_rate(secs > 0 ? static_cast<double>(done_) / secs : 0).c_str());
    }
  }

 private:
  double elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  void draw() {
    double frac = total_ ? static_cast<double>(done_) / static_cast<double>(total_) : 1.0;
    double secs = elapsed();
    double rate = secs > 0 ? static_cast<double>(done_) / secs : 0;
    double eta = rate > 0 ? static_cast<double>(total_ - done_) / rate : -1;
    const int width = 30;
    int filled = static_cast<int>(frac * width);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.append(static_cast<size_t>(width - filled), ' ');
    std::fprintf(stderr, "\r%s [%s] %5.1f%%  %s  ETA %s ", phase_.c_str(), bar.c_str(), frac * 100,
                 format_rate(rate).c_str(), format_duration(eta).c_str());
    std::fflush(stderr);
  }
  void json_line(const char* state) {
    double secs = elapsed();
    double rate = secs > 0 ? static_cast<double>(done_) / secs : 0;
    double eta = rate > 0 ? static_cast<double>(total_ - done_) / rate : -1;
    Json j = Json::object();
    j.set("phase", phase_);
    j.set("state", state);
    j.set("bytes_done", done_.load());
    j.set("bytes_total", total_);
    j.set("rate_bytes_per_s", static_cast<uint64_t>(rate));
    j.set("eta_s",
          eta < 0 ? Json() : Json(static_cast<double>(static_cast<int64_t>(eta * 10)) / 10));
    j.set("elapsed_s", static_cast<double>(static_cast<int64_t>(secs * 1000)) / 1000);
    std::fprintf(stderr, "%s\n", j.dump().c_str());
    std::fflush(stderr);
  }

  void stop_ticker() {
    if (!ticker_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(tick_mu_);
      ticking_ = false;
    }
    tick_cv_.notify_all();
    ticker_.join();
  }

  bool tty_, json_;
  bool active_ = false;
  std::string phase_;
  uint64_t total_ = 0;
  std::atomic<uint64_t> done_{0};
  std::thread ticker_;
  std::mutex tick_mu_;
  std::condition_variable tick_cv_;
  bool ticking_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace

std::unique_ptr<ProgressSink> make_progress(bool enabled, bool json) {
  if (!enabled && !json) return nullptr;
  return std::make_unique<StderrProgress>(::isatty(2) != 0, json);
}

}  // namespace vdisk::cli
