#include <strings.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <optional>

#include "cli/cli.h"
#include "cli/source.h"
#include "converters/convert.h"
#include "formats/core/error.h"
#include "formats/core/json.h"
#include "formats/foreign.h"

namespace vdisk::cli {

namespace {

// convert --output json: the summary's keys (docs/json.md).
Json convert_summary_json(const std::string& src, const std::string& src_format,
                          const std::string& dst, const std::string& dst_format,
                          const CopyResult& r, const std::vector<std::string>& files,
                          const std::vector<std::string>& notes) {
  Json j = Json::object();
  j.set("source", src);
  j.set("source_format", src_format);
  j.set("destination", dst);
  j.set("format", dst_format);
  j.set("virtual_size", r.virtual_size);
  j.set("bytes_written", r.bytes_written);
  j.set("unallocated_bytes", r.virtual_size - r.bytes_written);
  j.set("seconds", r.seconds);
  j.set("hashes", hashes_json(r.hashes));
  j.set("hashes_zero_filled", hashes_json(r.hashes_zero_filled));
  Json f = Json::array();
  for (const std::string& s : files) f.push(s);
  j.set("output_files", std::move(f));
  Json n = Json::array();
  for (const std::string& s : notes) n.push(s);
  j.set("notes", std::move(n));
  j.set("read_errors", read_errors_json(r.read_errors));
  return j;
}

// The output format when -O is not given, from DST's extension (issue #18:
// a file named .vmdk must never receive raw bytes). A writable format's
// extension chooses it; a compressed stream that the raw writer can make
// (.gz, .xz, .zst) chooses raw with that compression. Standard output has no
// name to mislead: raw, as qemu-img. Anything else is refused.
struct InferredFormat {
  const FormatDescriptor* format = nullptr;
  std::string options;  // "compression=gzip", or empty
  std::string why;      // for the first line of output
};

InferredFormat infer_output_format(const std::string& dst) {
  const FormatDescriptor& raw = require_format("raw");
  if (dst == "-") return {&raw, "", "standard output with no -O: writing raw"};
  const std::string ext = path_extension(dst);
  const FormatDescriptor* named = nullptr;
  for (const FormatDescriptor* f : builtin_formats()) {
    if (std::find(f->extensions.begin(), f->extensions.end(), ext) != f->extensions.end()) {
      named = f;
      break;
    }
  }
  if (ext.empty() || !named) {
    throw UsageError("no -O given and the extension of '" + dst +
                     "' names no format vdisk writes: pass -O FMT (see 'vdisk formats')");
  }
  const std::string from = dst + ": no -O given; the extension ." + ext + " chooses ";
  if (named->create) return {named, "", from + "format " + named->name};
  for (const OptionSpec& o : raw.create_options) {
    if (o.name != "compression") continue;
    for (const std::string& c : o.choices) {
      if (c == named->name ||
          std::find(named->aliases.begin(), named->aliases.end(), c) != named->aliases.end()) {
        return {&raw, "compression=" + c, from + "raw with -o compression=" + c};
      }
    }
  }
  throw UsageError("no -O given and the extension ." + ext + " of '" + dst + "' names format " +
                   named->name + ", which vdisk cannot write: pass -O FMT (see 'vdisk formats')");
}

// allocated_bytes (formats/core/image_info.h) of the finished output, read
// back from its metadata; nullopt for standard output or an output that does
// not open (the summary then says what was written instead).
// Why re-open rather than ask the writer: ImageWriter reports no allocation,
// and what it wrote is not what is allocated — a raw output's holes are the
// host file system's (SEEK_DATA), a preallocated output is allocated whole
// whatever was written as data, zero ranges may be stored or not per format.
// The reader's block status is the one definition (the one `vdisk info`
// prints); a second, per-writer count could drift from it. The cost is a
// walk of the output's metadata; no guest data is read.
std::optional<uint64_t> output_allocated(const std::string& path, const FormatDescriptor& f) {
  if (path == "-" || !f.open) return std::nullopt;
  try {
    return allocated_bytes(*open_image(path, f.name, OpenOptions{}));
  } catch (const Error&) {
    return std::nullopt;
  }
}

}  // namespace

int cmd_convert(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_open_options(desc);
  add_progress_option(desc);
  add_mapfile_option(desc);
  add_stdin_size_option(desc);
  add_read_error_options(desc);
  desc.add_options()("output-format,O", po::value<std::string>(),
                     "output format (see 'vdisk formats'; default: from DST's extension)")(
      "options,o", po::value<std::vector<std::string>>()->composing(),
      "output format options key=value[,key=value...] (may repeat; -o help lists them)")(
      "hash", po::value<std::string>()->default_value("sha256"),
      "hashes of the guest content: md5,sha1,sha256 or none")(
      "hash-file", po::value<std::string>(),
      "write a JSON report (paths, formats, sizes, hashes, times)")(
      "verify", "re-read the output and fail (exit 1) unless its hash matches")(
      "force", "replace an existing destination (and --hash-file report)")(
      "cache,t", po::value<std::string>()->default_value("writeback"),
      "writeback: fsync the output before it takes its name (survives a crash); unsafe: skip "
      "the fsync (faster; as qemu-img's default)")(
      "allow-resize",
      "let the output format round the virtual size up when it cannot keep it exactly")(
      "output", po::value<std::string>()->default_value("human"),
      "the summary as human text or json (on stderr when DST is '-')");
  const std::vector<Positional> pos = {
      {"src", "SRC", "source", "source image ('-': raw from standard input, needs --size)"},
      {"dst", "DST", "destination", "destination ('-' for standard output)"},
  };
  po::variables_map vm;
  if (!parse_args("convert",
                  "[-f FMT] -O FMT [-o key=value,...|help] [-t writeback|unsafe] "
                  "[-p|--progress json] [--hash ALGOS] [--hash-file REPORT.json] "
                  "[--mapfile RESCUE.map] [--on-read-error stop|continue [--error-map OUT.map]] "
                  "[--size SIZE] [--verify] [--force] [--output json] SRC DST",
                  desc, pos, args, vm, answer_options_help)) {
    return kExitOk;
  }
  const std::string start_time = utc_now_iso8601();
  const std::string src_path = vm["src"].as<std::string>();
  const std::string dst_path = vm["dst"].as<std::string>();
  const bool to_stdout = dst_path == "-";
  const bool force = vm.count("force") != 0;
  const bool verify = vm.count("verify") != 0;
  const std::string report_path = vm.count("hash-file") ? vm["hash-file"].as<std::string>() : "";
  const bool json = want_json(vm);

  // Everything the user typed is validated before any file is opened or made.
  InferredFormat inferred;
  if (vm.count("output-format")) {
    inferred.format = &require_writable_format(vm["output-format"].as<std::string>());
  } else {
    inferred = infer_output_format(dst_path);
  }
  const FormatDescriptor& out_fmt = *inferred.format;
  if (!out_fmt.create) throw UsageError("format " + out_fmt.name + " cannot be written");
  std::string opt_text;
  if (vm.count("options")) {
    for (auto& o : vm["options"].as<std::vector<std::string>>())
      opt_text += (opt_text.empty() ? "" : ",") + o;
  }
  if (!inferred.options.empty() && opt_text.find("compression=") == std::string::npos)
    opt_text = inferred.options + (opt_text.empty() ? "" : "," + opt_text);
  Options options = parse_options(opt_text, out_fmt.create_options, out_fmt.name);
  const std::vector<HashAlgo> algos = hash_algos_from(vm["hash"].as<std::string>(), "--hash");
  if (to_stdout && !out_fmt.can_stream) {
    throw UsageError("format " + out_fmt.name + " cannot be written to standard output");
  }
  const SourceOptions source = source_options_from(vm, "src", /*stdin_ok=*/true);
  auto progress = progress_from(vm);
  const std::string cache = vm["cache"].as<std::string>();
  if (cache != "writeback" && cache != "unsafe") {
    throw UsageError("unknown cache mode '" + cache + "' (writeback or unsafe)");
  }
  // Every file read and every file written go through `guard`: no output
  // may be the source, one of its extents, parents or segments, the
  // mapfile, or another output (issue #16).
  GuardedEnv guard(Env::posix(cache == "unsafe" ? Durability::kUnsafe : Durability::kFlushed));
  claim_outputs(guard, vm, source, dst_path, report_path);
  if (!report_path.empty()) check_report_path(report_path, force);
  if (verify && to_stdout) throw UsageError("--verify cannot re-read standard output");
  if (verify && source.is_stream && algos.empty())
    throw UsageError("--verify of a stream needs a hash taken during the copy: drop --hash none");

  if (!to_stdout) {
    struct stat ds;
    if (::stat(dst_path.c_str(), &ds) == 0) {
      if (S_ISDIR(ds.st_mode)) {
        throw Error(ErrorKind::kInvalidArgument, dst_path, std::nullopt,
                    "destination is a directory");
      }
      // Restoring onto a disk writes its content, which only raw is; an
      // image file of another format (or its side files) has no place there.
      if (S_ISBLK(ds.st_mode) && out_fmt.name != "raw") {
        throw Error(ErrorKind::kInvalidArgument, dst_path, std::nullopt,
                    "is a block device: only -O raw is written onto a device (a " + out_fmt.name +
                        " image is a file)");
      }
      if (!force) {
        throw Error(ErrorKind::kInvalidArgument, dst_path, std::nullopt,
                    "destination exists (pass --force to replace it)");
      }
    }
  }

  const CopySource src = open_copy_source(vm, source, open_options_from(vm, &guard));
  const BlockDevice& dev = *src.device;
  ImageInfo src_info = dev.info();
  // Allocation is metadata only (block status), cheap even for a 2 TiB disk;
  // a pipe is all data.
  const uint64_t src_allocated = source.is_stream ? dev.size() : allocated_bytes(dev);

  CreateRequest req;
  req.path = dst_path;
  req.virtual_size = dev.size();
  req.options = options;
  req.overwrite = force;
  req.allow_resize = vm.count("allow-resize") != 0;
  req.env = &guard;
  req.source_info = &src_info;
  req.sector_size = dev.sector_size();
  if (!src.options.is_stream) req.source = &dev;
  req.open_image = [&guard](const std::string& p, const std::string& f) {
    OpenOptions o;
    o.env = &guard;
    return open_image(p, f, o);
  };
  std::unique_ptr<ImageWriter> writer = out_fmt.create(req);
  const bool resized = writer->virtual_size() != dev.size();
  // Without a hash taken during the copy, --verify compares the output with
  // a hash of the source taken afterwards, which a padded output cannot
  // match: refused now, before the copy, not after two passes.
  if (verify && algos.empty() && resized) {
    writer->abort();
    throw UsageError("--verify with --hash none cannot check a resized output; pass --hash");
  }

  // With the image on standard output, every message goes to stderr.
  FILE* out = to_stdout ? stderr : stdout;
  // What the user did not choose comes first, before any work: the format
  // taken from the extension, and a size change (one rule, issue #17 item 3:
  // the writers refuse one unless --allow-resize or an option that implies
  // it, target=azure; when it happens the first line says so with both sizes).
  if (!inferred.why.empty()) std::fprintf(out, "vdisk: %s\n", inferred.why.c_str());
  if (resized) {
    std::string why;
    for (const std::string& note : writer->notes()) why += (why.empty() ? "" : "; ") + note;
    std::fprintf(out, "vdisk: RESIZED: the output is %s, the source %s%s\n",
                 human_size(writer->virtual_size()).c_str(), human_size(dev.size()).c_str(),
                 why.empty() ? "" : (": " + why).c_str());
  }
  const CopyOptions copts = copy_options(src, algos, progress.get(), "converting");
  CopyResult r;
  try {
    r = copy_device(dev, writer.get(), copts);
    // The output takes its name only once the hashes are done, so a vdisk
    // killed before it reports them leaves no file behind.
    writer->finish();
  } catch (...) {
    writer->abort();
    throw;
  }

  // The writer's notes, the resize's reason among them, stay on stderr too,
  // with the other diagnostics.
  for (const std::string& note : writer->notes())
    std::fprintf(stderr, "vdisk: note: %s\n", note.c_str());
  const std::string sizes = resized ? "source " + human_size(r.virtual_size) + ", output " +
                                          human_size(writer->virtual_size()) + " virtual (resized)"
                                    : human_size(r.virtual_size) + " virtual";
  // "Allocated" as info counts it, read from the output itself: a
  // preallocated output is allocated whole whatever was written as data.
  const std::optional<uint64_t> dst_allocated = output_allocated(dst_path, out_fmt);
  const std::string allocated =
      dst_allocated ? human_size(*dst_allocated) + " allocated in the output" : "";
  Json summary = Json::object();
  if (json) {
    summary = convert_summary_json(src_path, src_info.format, dst_path, out_fmt.name, r,
                                   writer->output_files(), writer->notes());
    summary.set("output_virtual_size", writer->virtual_size());
    if (dst_allocated) summary.set("output_allocated_bytes", *dst_allocated);
    if (resized) summary.set("output_hashes", hashes_json(r.output_hashes));
  } else {
    std::fprintf(out, "converted %s (%s) -> %s (%s): %s, %s data written%s%s, %.2f s\n",
                 src_path.c_str(), src_info.format.c_str(), dst_path.c_str(), out_fmt.name.c_str(),
                 sizes.c_str(), human_size(r.bytes_written).c_str(), allocated.empty() ? "" : ", ",
                 allocated.c_str(), r.seconds);
    // A resized output holds other content than the source: both hash sets,
    // each labelled, so neither is taken for the other.
    const std::string src_scope =
        resized ? "source content, " + std::to_string(r.virtual_size) + " bytes" : "guest content";
    for (auto& hv : r.hashes) {
      std::fprintf(out, "%s (%s) = %s\n", upper_case(hash_algo_name(hv.algo)).c_str(),
                   src_scope.c_str(), hv.hex.c_str());
    }
    const std::string zf_scope = zero_filled_scope(r);
    for (auto& hv : r.hashes_zero_filled) {
      std::fprintf(out, "%s (%s) = %s\n", upper_case(hash_algo_name(hv.algo)).c_str(),
                   zf_scope.c_str(), hv.hex.c_str());
    }
    if (!r.hashes_zero_filled.empty()) {
      std::fprintf(out,
                   "note: the output leaves the %s of %s unallocated: it reads as the source with "
                   "zeros there (the %s hash)\n",
                   human_size(r.unreadable_bytes + r.read_error_bytes).c_str(),
                   r.read_errors.empty()     ? "unrescued areas"
                   : r.unreadable_bytes == 0 ? "read errors"
                                             : "unrescued areas and read errors",
                   r.hashes.empty() ? "only" : "second");
    }
  }
  if (resized && !json) {
    for (auto& hv : r.output_hashes) {
      std::fprintf(out, "%s (output content, %llu bytes) = %s\n",
                   upper_case(hash_algo_name(hv.algo)).c_str(),
                   static_cast<unsigned long long>(writer->virtual_size()), hv.hex.c_str());
    }
  }
  const int read_status = finish_read_errors(src, r, "left unallocated (reads as zeros)");

  if (!report_path.empty()) {
    Report rep =
        report_of_copy("convert", start_time,
                       {src_path, src_info.format, src_info.subformat, dev.size(), src_allocated},
                       r, src.rescued.get(), source.on_read_error);
    rep.destination = ReportDestination{dst_path,
                                        out_fmt.name,
                                        opt_text,
                                        writer->virtual_size(),
                                        dst_allocated.value_or(r.bytes_written),
                                        writer->output_files(),
                                        r.output_hashes};
    if (resized) rep.size_changed = ReportSizeChange{dev.size(), writer->virtual_size()};
    write_report(report_path, rep, force);
  }

  if (verify) {
    std::vector<HashAlgo> valgos = algos.empty() ? std::vector<HashAlgo>{HashAlgo::kSha256} : algos;
    std::vector<HashValue> expect = r.output_hashes;
    if (algos.empty()) {
      // No hash was taken during the copy: hash the source now (with the
      // unrescued areas as zeros, as the output holds them), then the output.
      CopyResult s =
          copy_device(dev, nullptr, copy_options(src, valgos, progress.get(), "hashing source"));
      expect = s.hashes_zero_filled.empty() ? s.hashes : s.hashes_zero_filled;
    }
    BlockDevicePtr written = open_image(dst_path, out_fmt.name, OpenOptions{});
    CopyResult got =
        copy_device(*written, nullptr, copy_options(valgos, progress.get(), "verifying"));
    bool ok = got.virtual_size == writer->virtual_size();
    for (size_t i = 0; i < valgos.size(); ++i) ok = ok && got.hashes[i].hex == expect[i].hex;
    if (!ok) {
      std::fprintf(stderr,
                   "vdisk: %s: verify FAILED: the output's content differs from the source's\n",
                   dst_path.c_str());
      for (size_t i = 0; i < valgos.size(); ++i) {
        std::fprintf(stderr, "  %s expected %s, output %s\n", hash_algo_name(valgos[i]),
                     expect[i].hex.c_str(), got.hashes[i].hex.c_str());
      }
      if (json) {
        summary.set("verify", "failed");
        std::fprintf(out, "%s\n", summary.dump(2).c_str());
      }
      return kExitDifferent;
    }
    if (json)
      summary.set("verify", "ok");
    else
      std::fprintf(out, "verify: OK (%s of the output matches)\n", hash_algo_name(valgos.back()));
  }
  if (json) std::fprintf(out, "%s\n", summary.dump(2).c_str());
  return read_status;
}

}  // namespace vdisk::cli
