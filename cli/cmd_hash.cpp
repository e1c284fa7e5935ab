#include <cstdio>

#include "cli/cli.h"
#include "cli/source.h"
#include "converters/convert.h"

namespace vdisk::cli {

int cmd_hash(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_open_options(desc);
  add_progress_option(desc);
  add_mapfile_option(desc);
  add_stdin_size_option(desc);
  add_read_error_options(desc);
  desc.add_options()("algo", po::value<std::string>()->default_value("sha256"),
                     "md5,sha1,sha256 (any, comma-separated)")(
      "output", po::value<std::string>()->default_value("human"), "human or json")(
      "hash-file", po::value<std::string>(),
      "write a JSON report (path, format, sizes, hashes, times)")(
      "force", "replace an existing --hash-file report");
  const std::vector<Positional> pos = {
      {"image", "IMAGE", "image", "the image ('-': raw from standard input, needs --size)"},
  };
  po::variables_map vm;
  if (!parse_args(
          "hash",
          "[-f FMT] [--algo md5,sha1,sha256] [--mapfile RESCUE.map] [--hash-file REPORT.json] "
          "[--on-read-error stop|continue [--error-map OUT.map]] [-p|--progress json] [--size "
          "SIZE] "
          "IMAGE [--output human|json]",
          desc, pos, args, vm)) {
    return kExitOk;
  }
  const std::string start_time = utc_now_iso8601();
  bool json = want_json(vm);
  const std::vector<HashAlgo> algos = hash_algos_from(vm["algo"].as<std::string>(), "--algo");
  if (algos.empty()) throw UsageError("--algo needs at least one of md5, sha1, sha256");
  const std::string report_path = vm.count("hash-file") ? vm["hash-file"].as<std::string>() : "";
  const bool force = vm.count("force") != 0;
  const SourceOptions source = source_options_from(vm, "image", /*stdin_ok=*/true);
  GuardedEnv guard(Env::posix());
  claim_outputs(guard, vm, source, "", report_path);
  if (!report_path.empty()) check_report_path(report_path, force);
  auto progress = progress_from(vm);
  const std::string& image = source.path;

  const CopySource src = open_copy_source(vm, source, open_options_from(vm, &guard));
  const BlockDevice& dev = *src.device;
  ImageInfo info = dev.info();
  // Before the copy, like convert: metadata only, and a source that shrinks
  // during the copy cannot fail the report afterwards.
  const uint64_t allocated = report_path.empty() ? 0
                             : source.is_stream  ? dev.size()
                                                 : count_allocated_bytes(dev);
  CopyResult r = copy_device(dev, nullptr, copy_options(src, algos, progress.get(), "hashing"));

  const std::string zf_scope = zero_filled_scope(r);
  if (json) {
    Json j = Json::object();
    j.set("image", image);
    j.set("format", info.format);
    j.set("virtual_size", r.virtual_size);
    // Without the source as stored (read errors) "hashes" is empty.
    j.set("hashes", hashes_json(r.hashes));
    if (!r.hashes_zero_filled.empty()) {
      j.set("hashes_zero_filled", hashes_json(r.hashes_zero_filled));
      j.set("hashes_zero_filled_scope", "the source with its " + zf_scope);
    }
    if (src.rescued)
      j.set("mapfile", mapfile_json({src.rescued->mapfile_path(), src.rescued->bad_areas()}));
    if (source.on_read_error == OnReadError::kContinue) {
      j.set("read_errors", read_errors_json(r.read_errors));
      j.set("read_error_bytes", r.read_error_bytes);
    }
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    for (auto& hv : r.hashes) {
      std::printf("%s (%s) = %s\n", upper_case(hash_algo_name(hv.algo)).c_str(), image.c_str(),
                  hv.hex.c_str());
    }
    for (auto& hv : r.hashes_zero_filled) {
      std::printf("%s (%s, %s) = %s\n", upper_case(hash_algo_name(hv.algo)).c_str(), image.c_str(),
                  zf_scope.c_str(), hv.hex.c_str());
    }
  }
  const int status = finish_read_errors(src, r, "hashed as zeros");

  if (!report_path.empty()) {
    write_report(report_path,
                 report_of_copy("hash", start_time,
                                {image, info.format, info.subformat, r.virtual_size, allocated}, r,
                                src.rescued.get(), source.on_read_error),
                 force);
  }
  return status;
}

}  // namespace vdisk::cli
