#include <sys/stat.h>

#include <cstdio>

#include "cli/cli.h"
#include "cli/source.h"
#include "converters/convert.h"
#include "formats/core/error.h"
#include "formats/core/json.h"

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

}  // namespace

int cmd_convert(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_open_options(desc);
  add_progress_option(desc);
  add_mapfile_option(desc);
  add_stdin_size_option(desc);
  add_read_error_options(desc);
  add_output_format_options(desc, "raw");
  desc.add_options()("hash", po::value<std::string>()->default_value("sha256"),
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
  Options options;
  std::string opt_text;
  const FormatDescriptor& out_fmt = output_format_from(vm, options, opt_text);
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
  const uint64_t src_allocated = source.is_stream ? dev.size() : count_allocated_bytes(dev);

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

  // With the image on standard output, every message goes to stderr.
  FILE* out = to_stdout ? stderr : stdout;
  for (const std::string& note : writer->notes())
    std::fprintf(stderr, "vdisk: note: %s\n", note.c_str());
  if (resized) {
    std::fprintf(stderr, "vdisk: note: virtual size changed from %llu to %llu bytes as requested\n",
                 static_cast<unsigned long long>(dev.size()),
                 static_cast<unsigned long long>(writer->virtual_size()));
  }
  Json summary = Json::object();
  if (json) {
    summary = convert_summary_json(src_path, src_info.format, dst_path, out_fmt.name, r,
                                   writer->output_files(), writer->notes());
  } else {
    std::fprintf(
        out, "converted %s (%s) -> %s (%s): %s virtual, %s written, %s left unallocated, %.2f s\n",
        src_path.c_str(), src_info.format.c_str(), dst_path.c_str(), out_fmt.name.c_str(),
        human_size(r.virtual_size).c_str(), human_size(r.bytes_written).c_str(),
        human_size(r.virtual_size - r.bytes_written).c_str(), r.seconds);
    for (auto& hv : r.hashes) {
      std::fprintf(out, "%s (guest content) = %s\n", upper_case(hash_algo_name(hv.algo)).c_str(),
                   hv.hex.c_str());
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
  const int read_status = finish_read_errors(src, r, "left unallocated (reads as zeros)");

  if (!report_path.empty()) {
    Report rep =
        report_of_copy("convert", start_time,
                       {src_path, src_info.format, src_info.subformat, dev.size(), src_allocated},
                       r, src.rescued.get(), source.on_read_error);
    rep.destination = ReportDestination{
        dst_path,        out_fmt.name,           opt_text,       writer->virtual_size(),
        r.bytes_written, writer->output_files(), r.output_hashes};
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
