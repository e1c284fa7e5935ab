#include <sys/stat.h>

#include <cstdio>

#include "cli/cli.h"
#include "converters/convert.h"
#include "formats/core/error.h"

namespace vdisk::cli {

namespace {

std::vector<ByteRange> unreadable_of(const ddrescue::RescuedDevice* rescued) {
  std::vector<ByteRange> out;
  if (rescued) {
    for (const auto& a : rescued->bad_areas()) out.push_back({a.start, a.length});
  }
  return out;
}

}  // namespace

int cmd_convert(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_open_options(desc);
  add_progress_option(desc);
  add_mapfile_option(desc);
  add_stdin_size_option(desc);
  add_read_error_options(desc);
  desc.add_options()("output-format,O", po::value<std::string>()->default_value("raw"),
                     "output format (see 'vdisk formats')")(
      "options,o", po::value<std::vector<std::string>>()->composing(),
      "output format options key=value[,key=value...] (may repeat)")(
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
      "src", po::value<std::string>()->required(),
      "source image ('-': raw from standard input, needs --size)")(
      "dst", po::value<std::string>()->required(), "destination ('-' for standard output)");
  po::positional_options_description pos;
  pos.add("src", 1).add("dst", 1);
  po::variables_map vm;
  if (!parse_args("convert",
                  "[-f FMT] -O FMT [-o key=value,...] [-t writeback|unsafe] [-p|--progress json] "
                  "[--hash ALGOS] "
                  "[--hash-file REPORT.json] "
                  "[--mapfile RESCUE.map] [--on-read-error stop|continue [--error-map OUT.map]] "
                  "[--size N] [--verify] [--force] SRC DST",
                  desc, pos, args, vm)) {
    return kExitOk;
  }
  const std::string start_time = utc_now_iso8601();
  const std::string src_path = vm["src"].as<std::string>();
  const std::string dst_path = vm["dst"].as<std::string>();
  const bool to_stdout = dst_path == "-";
  const bool force = vm.count("force") != 0;
  const std::string report_path = vm.count("hash-file") ? vm["hash-file"].as<std::string>() : "";

  // Everything the user typed is validated before any file is opened or made.
  const FormatDescriptor& out_fmt = require_format(vm["output-format"].as<std::string>());
  if (!out_fmt.create) throw UsageError("format " + out_fmt.name + " cannot be written");
  std::string opt_text;
  if (vm.count("options")) {
    for (auto& o : vm["options"].as<std::vector<std::string>>())
      opt_text += (opt_text.empty() ? "" : ",") + o;
  }
  Options options = parse_options(opt_text, out_fmt.create_options, out_fmt.name);
  std::vector<HashAlgo> algos = parse_hash_algos(vm["hash"].as<std::string>());
  if (to_stdout && !out_fmt.can_stream) {
    throw UsageError("format " + out_fmt.name + " cannot be written to standard output");
  }
  if (src_path == "-" && vm.count("mapfile"))
    throw UsageError("--mapfile needs a source file, not standard input");
  auto progress = progress_from(vm);
  if (!report_path.empty()) check_report_path(report_path, force);
  const OnReadError on_read_error = read_error_policy_from(vm, src_path == "-", force);
  const std::string cache = vm["cache"].as<std::string>();
  if (cache != "writeback" && cache != "unsafe") {
    throw UsageError("unknown cache mode '" + cache + "' (writeback or unsafe)");
  }

  if (!to_stdout) {
    struct stat ss, ds;
    if (::stat(dst_path.c_str(), &ds) == 0) {
      if (::stat(src_path.c_str(), &ss) == 0 && ss.st_dev == ds.st_dev && ss.st_ino == ds.st_ino) {
        throw Error(ErrorKind::kInvalidArgument, dst_path, std::nullopt,
                    "destination is the source image; refusing to overwrite it");
      }
      if (S_ISDIR(ds.st_mode)) {
        throw Error(ErrorKind::kInvalidArgument, dst_path, std::nullopt,
                    "destination is a directory");
      }
      if (!force) {
        throw Error(ErrorKind::kInvalidArgument, dst_path, std::nullopt,
                    "destination exists (pass --force to replace it)");
      }
    }
  }

  bool is_stream = false;
  BlockDevicePtr src = open_source(vm, "src", &is_stream);
  auto rescued = rescued_from(vm, src, src_path);
  ImageInfo src_info = src->info();
  // Allocation is metadata only (block status), cheap even for a 2 TiB disk;
  // a pipe is all data.
  const uint64_t src_allocated = is_stream ? src->size() : count_allocated_bytes(*src);

  CreateRequest req;
  req.path = dst_path;
  req.virtual_size = src->size();
  req.options = options;
  req.overwrite = force;
  req.allow_resize = vm.count("allow-resize") != 0;
  req.env = &Env::posix(cache == "unsafe" ? Durability::kUnsafe : Durability::kFlushed);
  req.source_info = &src_info;
  req.sector_size = src->sector_size();
  if (!is_stream) req.source = src.get();
  req.open_image = [](const std::string& p, const std::string& f) {
    return open_image(p, f, OpenOptions{});
  };
  std::unique_ptr<ImageWriter> writer = out_fmt.create(req);

  CopyOptions copts;
  copts.algos = algos;
  copts.progress = progress.get();
  copts.cancel = &cancel_flag();
  copts.unreadable = unreadable_of(rescued.get());
  copts.on_read_error = on_read_error;
  copts.read_error_hint = read_error_hint(on_read_error, src_path == "-");
  if (is_stream) copts.readers = 1;
  CopyResult r;
  try {
    r = copy_device(*src, writer.get(), copts);
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
  const bool resized = writer->virtual_size() != src->size();
  if (resized) {
    std::fprintf(stderr, "vdisk: note: virtual size changed from %llu to %llu bytes as requested\n",
                 static_cast<unsigned long long>(src->size()),
                 static_cast<unsigned long long>(writer->virtual_size()));
  }
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
  const int read_status = finish_read_errors(vm, src_path, r, "left unallocated (reads as zeros)",
                                             rescued.get(), force);

  if (!report_path.empty()) {
    Json d = Json::object();
    d.set("path", dst_path);
    d.set("format", out_fmt.name);
    if (!opt_text.empty()) d.set("options", opt_text);
    d.set("virtual_size", writer->virtual_size());
    d.set("allocated_bytes", r.bytes_written);
    Json files = Json::array();
    for (auto& f : writer->output_files()) files.push(f);
    d.set("files", std::move(files));
    if (!r.output_hashes.empty()) d.set("hashes", hashes_json(r.output_hashes));
    Json extra = Json::object();
    extra.set("destination", std::move(d));
    if (resized) {
      Json c = Json::object();
      c.set("old", src->size());
      c.set("new", writer->virtual_size());
      extra.set("size_changed", std::move(c));
    }
    write_report(
        report_path,
        make_report("convert", start_time, {src_path, &src_info, src->size(), src_allocated}, r,
                    rescued.get(), on_read_error, std::move(extra)),
        force);
  }

  if (vm.count("verify")) {
    if (to_stdout) throw UsageError("--verify cannot re-read standard output");
    if (is_stream && algos.empty())
      throw UsageError("--verify of a stream needs a hash taken during the copy");
    std::vector<HashAlgo> valgos = algos.empty() ? std::vector<HashAlgo>{HashAlgo::kSha256} : algos;
    std::vector<HashValue> expect = r.output_hashes;
    if (algos.empty()) {
      // No hash was taken during the copy: hash the source now (with the
      // unrescued areas as zeros, as the output holds them), then the output.
      CopyOptions o;
      o.algos = valgos;
      o.cancel = &cancel_flag();
      o.phase = "hashing source";
      o.progress = progress.get();
      o.unreadable = copts.unreadable;
      o.on_read_error = on_read_error;
      CopyResult s = copy_device(*src, nullptr, o);
      expect = s.hashes_zero_filled.empty() ? s.hashes : s.hashes_zero_filled;
      if (writer->virtual_size() > src->size()) {
        throw UsageError("--verify with --hash none cannot check a resized output; pass --hash");
      }
    }
    BlockDevicePtr written = open_image(dst_path, out_fmt.name, OpenOptions{});
    CopyOptions o;
    o.algos = valgos;
    o.cancel = &cancel_flag();
    o.phase = "verifying";
    o.progress = progress.get();
    CopyResult got = copy_device(*written, nullptr, o);
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
      return kExitDifferent;
    }
    std::fprintf(out, "verify: OK (%s of the output matches)\n", hash_algo_name(valgos.back()));
  }
  return read_status;
}

}  // namespace vdisk::cli
