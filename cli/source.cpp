#include "cli/source.h"

#include <cstdio>

#include "converters/stream_device.h"
#include "formats/core/error.h"

namespace vdisk::cli {

void add_stdin_size_option(po::options_description& desc) {
  desc.add_options()("size", po::value<std::string>()->value_name("SIZE"),
                     "with SRC '-': the size of the raw image read from standard input (bytes, "
                     "or 64M, 1G, 2T)");
}

void add_read_error_options(po::options_description& desc) {
  desc.add_options()("on-read-error", po::value<std::string>()->default_value("stop"),
                     "stop: a read error in the source stops the command naming the offset; "
                     "continue: isolate the unreadable ranges (64 KiB, then 4 KiB pieces), "
                     "list them, treat them as zeros (never written), exit 3")(
      "error-map", po::value<std::string>(),
      "with --on-read-error continue: write the unreadable ranges as a GNU ddrescue mapfile");
}

SourceOptions source_options_from(const po::variables_map& vm, const std::string& key,
                                  bool stdin_ok) {
  SourceOptions o;
  o.path = vm[key].as<std::string>();
  o.is_stream = stdin_ok && o.path == "-";
  o.force = vm.count("force") != 0;
  if (o.is_stream) {
    if (!vm.count("size")) throw UsageError("reading standard input ('-') needs --size BYTES");
    o.stream_size = parse_size_arg(vm["size"].as<std::string>(), "--size");
    const std::string fmt = vm.count("format") ? vm["format"].as<std::string>() : "";
    if (!fmt.empty() && fmt != "raw")
      throw UsageError("standard input is read as raw only, not " + fmt);
    if (vm.count("mapfile")) throw UsageError("--mapfile needs a source file, not standard input");
  } else if (vm.count("size")) {
    throw UsageError("--size applies only to a source read from standard input ('-')");
  }

  const std::string v = vm.count("on-read-error") ? vm["on-read-error"].as<std::string>() : "stop";
  if (v == "stop") {
    o.on_read_error = OnReadError::kStop;
  } else if (v == "continue") {
    o.on_read_error = OnReadError::kContinue;
  } else {
    throw UsageError("--on-read-error must be stop or continue, not '" + v + "'");
  }
  if (o.on_read_error == OnReadError::kContinue && o.is_stream) {
    throw UsageError(
        "--on-read-error continue needs a source file: standard input cannot be read again in "
        "pieces");
  }
  if (vm.count("error-map")) {
    if (o.on_read_error != OnReadError::kContinue)
      throw UsageError("--error-map needs --on-read-error continue");
    o.error_map = vm["error-map"].as<std::string>();
    check_report_path(o.error_map, o.force);
  }
  return o;
}

CopySource open_copy_source(const po::variables_map& vm, const SourceOptions& options) {
  return open_copy_source(vm, options, open_options_from(vm));
}

CopySource open_copy_source(const po::variables_map& vm, const SourceOptions& options,
                            const OpenOptions& open) {
  CopySource s;
  s.options = options;
  if (options.is_stream) {
    s.device = std::make_shared<const StreamDevice>(0, options.stream_size, "-");
  } else {
    s.device =
        open_image(options.path, vm.count("format") ? vm["format"].as<std::string>() : "", open);
    s.rescued = rescued_from(vm, s.device, options.path);
  }
  return s;
}

CopyOptions copy_options(std::vector<HashAlgo> algos, ProgressSink* progress,
                         const std::string& phase) {
  CopyOptions o;
  o.algos = std::move(algos);
  o.progress = progress;
  o.cancel = &cancel_flag();
  o.phase = phase;
  return o;
}

CopyOptions copy_options(const CopySource& src, std::vector<HashAlgo> algos, ProgressSink* progress,
                         const std::string& phase) {
  CopyOptions o = copy_options(std::move(algos), progress, phase);
  if (src.rescued) {
    for (const auto& a : src.rescued->bad_areas()) o.unreadable.push_back({a.start, a.length});
  }
  o.on_read_error = src.options.on_read_error;
  // Under stop, the error names the way to go on; a pipe cannot be re-read.
  if (o.on_read_error == OnReadError::kStop && !src.options.is_stream)
    o.read_error_hint =
        " (--on-read-error continue copies around unreadable ranges and lists them)";
  if (src.options.is_stream) o.readers = 1;
  return o;
}

int finish_read_errors(const CopySource& src, const CopyResult& r, const char* what) {
  const std::string& label = src.options.path;
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
                 "vdisk: %s: %s, %s lost: they count as zeros; the hashes cover the source with "
                 "zeros there, not the source as stored\n",
                 label.c_str(),
                 count_of(errs.size(), "unreadable range", "unreadable ranges").c_str(),
                 human_size(r.read_error_bytes).c_str());
  }
  if (!src.options.error_map.empty()) {
    std::vector<ddrescue::BadArea> found;
    for (const ByteRange& e : errs) found.push_back({e.start, e.length, '*'});
    std::vector<ddrescue::BadArea> known;
    if (src.rescued) known = src.rescued->bad_areas();
    std::string text = ddrescue::format_mapfile(
        r.virtual_size, ddrescue::overlay_areas(known, found),
        {"Mapfile. Written by vdisk " VDISK_VERSION " (not GNU ddrescue)", "Source: " + label,
         "'*' (non-trimmed): ranges vdisk could not read, in 4 KiB pieces at best"});
    write_text_output(src.options.error_map, text, src.options.force);
  }
  return errs.empty() ? kExitOk : kExitDataLost;
}

std::vector<HashAlgo> hash_algos_from(const std::string& text, const std::string& option) {
  try {
    return parse_hash_algos(text);
  } catch (const Error& e) {
    throw UsageError(option + ": " + e.message());
  }
}

}  // namespace vdisk::cli
