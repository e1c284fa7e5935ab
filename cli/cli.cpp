#include "cli/cli.h"

#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <iostream>

#include "formats/core/error.h"

namespace vdisk::cli {

std::atomic<bool>& cancel_flag() {
  static std::atomic<bool> flag{false};
  return flag;
}

bool parse_args(const std::string& name, const std::string& usage, po::options_description& desc,
                const po::positional_options_description& positional,
                const std::vector<std::string>& args, po::variables_map& vm) {
  desc.add_options()("help,h", "show this help");
  try {
    po::store(po::command_line_parser(args).options(desc).positional(positional).run(), vm);
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
      "let extent and parent names point outside the image's folder (absolute, '..', symlinks)");
}

OpenOptions open_options_from(const po::variables_map& vm) {
  OpenOptions o;
  o.allow_outside_paths = vm.count("allow-outside-paths") != 0;
  if (vm.count("parent")) o.parent_path = vm["parent"].as<std::string>();
  return o;
}

BlockDevicePtr open_from_args(const po::variables_map& vm, const std::string& image_key,
                              const std::string& format_key) {
  std::string fmt = vm.count(format_key) ? vm[format_key].as<std::string>() : "";
  return open_image(vm[image_key].as<std::string>(), fmt, open_options_from(vm));
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

ImageInfo full_info(const BlockDevice& dev) {
  ImageInfo info = dev.info();
  try {
    info.allocated_bytes = count_allocated_bytes(dev);
  } catch (const Error& e) {
    // Only a missing parent (OpenOptions::missing_parents) gets here.
    if (e.kind() != ErrorKind::kNotFound) throw;
    info.details.set("allocated_bytes_unknown", e.what());
  }
  return info;
}

Json info_to_json(const ImageInfo& info) {
  Json j = Json::object();
  j.set("filename", info.path);
  j.set("format", info.format);
  j.set("subformat", info.subformat);
  j.set("virtual_size", info.virtual_size);
  j.set("actual_size", info.actual_size);
  j.set("allocated_bytes", info.allocated_bytes);
  j.set("parent", info.parent ? Json(*info.parent) : Json());
  j.set("details", info.details);
  if (!info.chain.empty()) {
    Json chain = Json::array();
    for (const ImageInfo& layer : info.chain) chain.push(info_to_json(layer));
    j.set("chain", std::move(chain));
  }
  return j;
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
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%ld:%02ld", t / 60, t % 60);
  return buf;
}

class StderrProgress final : public ProgressSink {
 public:
  StderrProgress(bool tty, bool json) : tty_(tty), json_(json) {}

  void begin(const std::string& phase, uint64_t total) override {
    phase_ = phase;
    total_ = total;
    done_ = 0;
    start_ = last_ = std::chrono::steady_clock::now();
    active_ = true;
    if (tty_ && !json_) draw();
  }

  void update(uint64_t done) override {
    done_ = done;
    auto now = std::chrono::steady_clock::now();
    double since = std::chrono::duration<double>(now - last_).count();
    if (json_ ? since >= 1.0 : (tty_ && since >= 0.1)) {
      last_ = now;
      if (json_) json_line("running");
      else draw();
    }
  }

  void end() override {
    if (!active_) return;
    active_ = false;
    double secs = elapsed();
    if (json_) {
      json_line("done");
      return;
    }
    if (tty_) {
      draw();
      std::fputc('\n', stderr);
    } else {
      std::fprintf(stderr, "vdisk: %s: %s in %.2f s (%s)\n", phase_.c_str(), human_size(done_).c_str(), secs,
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
    j.set("done", done_);
    j.set("total", total_);
    j.set("rate", rate);
    j.set("eta", eta);
    j.set("elapsed", secs);
    std::fprintf(stderr, "%s\n", j.dump().c_str());
    std::fflush(stderr);
  }

  bool tty_, json_;
  bool active_ = false;
  std::string phase_;
  uint64_t total_ = 0, done_ = 0;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace

std::unique_ptr<ProgressSink> make_progress(bool enabled, bool json) {
  if (!enabled && !json) return nullptr;
  return std::make_unique<StderrProgress>(::isatty(2) != 0, json);
}

}  // namespace vdisk::cli
