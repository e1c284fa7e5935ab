#include "cli/cli.h"

#include <strings.h>
#include <sys/stat.h>

#include <cstdio>

#include "cli/progress.h"
#include "formats/core/error.h"
#include "formats/core/file.h"
#include "formats/core/hex.h"
#include "formats/foreign.h"

namespace vdisk::cli {

std::atomic<bool>& cancel_flag() {
  static std::atomic<bool> flag{false};
  return flag;
}

void add_open_options(po::options_description& desc, const char* format_flag) {
  desc.add_options()(format_flag, po::value<std::string>()->default_value(""),
                     "input format (default: probe the bytes)")(
      "parent", po::value<std::string>()->default_value(""),
      "parent image of a differencing disk (overrides the search)")(
      "allow-outside-paths",
      "let extent and parent names point outside the image's folder (absolute, '..', symlinks)")(
      "snapshot", po::value<std::string>()->default_value(""),
      "read the image as it was at this internal snapshot (qcow2: ID or name)")(
      "index", po::value<std::string>()->value_name("FILE"),
      "compressed raw images (gzip, bzip2, zstd): keep the access-point index in FILE (read "
      "when it exists, else written after the first pass)");
}

OpenOptions open_options_from(const po::variables_map& vm, Env* env) {
  OpenOptions o;
  o.env = env;
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
                                                            ddrescue::BadAreaMode mode, Env& env) {
  // An image that records the sectors its acquisition could not read (an
  // E01's error2) is seen like a rescued image: those ranges are painted
  // over the mapfile's areas, or make the map on their own.
  const std::vector<ByteRange> own = dev->unreadable_ranges();
  if (!vm.count("mapfile") && own.empty()) return nullptr;
  ddrescue::Mapfile map;
  if (vm.count("mapfile")) map = ddrescue::load_mapfile(env, vm["mapfile"].as<std::string>());
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
  std::fprintf(stderr, "vdisk: %s: %s in %s, %s\n", image.c_str(),
               count_of(areas.size(), "unrescued area", "unrescued areas").c_str(),
               map.path.c_str(), human_size(total).c_str());
  const size_t kShown = 20;
  for (size_t i = 0; i < areas.size() && i < kShown; ++i) {
    std::fprintf(stderr, "  %s-%s  %llu bytes  %s\n", hex(areas[i].start).c_str(),
                 hex(areas[i].start + areas[i].length).c_str(),
                 static_cast<unsigned long long>(areas[i].length),
                 ddrescue::status_name(areas[i].status));
  }
  if (areas.size() > kShown) {
    std::fprintf(stderr, "  ... and %zu more (--hash-file lists them all)\n",
                 areas.size() - kShown);
  }
  return rescued;
}

void add_output_format_options(po::options_description& desc, const char* default_format) {
  desc.add_options()("output-format,O", po::value<std::string>()->default_value(default_format),
                     "output format (see 'vdisk formats')")(
      "options,o", po::value<std::vector<std::string>>()->composing(),
      "output format options key=value[,key=value...] (may repeat; -o help lists them)");
}

const FormatDescriptor& require_writable_format(const std::string& name) {
  // A container vdisk only recognises (formats/foreign.h, listed by `vdisk
  // formats`) is named as such.
  for (const ForeignFormat& f : foreign_formats()) {
    if (!find_format(name) && strcasecmp(f.name.c_str(), name.c_str()) == 0) {
      throw UsageError("format " + f.name + " cannot be written: vdisk only recognises " +
                       f.article + " to refuse it");
    }
  }
  const FormatDescriptor& f = require_format(name);
  if (!f.create) throw UsageError("format " + f.name + " cannot be written");
  return f;
}

bool answer_options_help(const po::variables_map& vm) {
  if (!vm.count("options")) return false;
  bool asked = false;
  for (const std::string& group : vm["options"].as<std::vector<std::string>>()) {
    size_t start = 0;
    while (start <= group.size()) {
      const size_t comma = group.find(',', start);
      const std::string item =
          group.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      asked |= item == "help" || item == "?";
      start = comma == std::string::npos ? group.size() + 1 : comma + 1;
    }
  }
  if (!asked) return false;
  if (!vm.count("output-format"))
    throw UsageError("-o help needs -O FMT: the options of which format?");
  const FormatDescriptor& f = require_writable_format(vm["output-format"].as<std::string>());
  if (f.create_options.empty()) {
    std::printf("format %s takes no -o options\n", f.name.c_str());
  } else {
    std::printf("-o options of format %s (-o key=value[,key=value...]):\n%s", f.name.c_str(),
                describe_create_options(f, terminal_width()).c_str());
  }
  return true;
}

const FormatDescriptor& output_format_from(const po::variables_map& vm, Options& options,
                                           std::string& text) {
  const FormatDescriptor& f = require_writable_format(vm["output-format"].as<std::string>());
  text.clear();
  if (vm.count("options")) {
    for (auto& o : vm["options"].as<std::vector<std::string>>())
      text += (text.empty() ? "" : ",") + o;
  }
  options = parse_options(text, f.create_options, f.name);
  return f;
}

bool want_json(const po::variables_map& vm) {
  if (!vm.count("output")) return false;
  std::string o = vm["output"].as<std::string>();
  if (o == "json") return true;
  if (o == "human") return false;
  throw UsageError("--output must be human or json, not '" + o + "'");
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

void write_report(const std::string& path, const Report& report, bool overwrite) {
  write_text_output(path, report.to_json().dump(2) + "\n", overwrite);
}

}  // namespace vdisk::cli
