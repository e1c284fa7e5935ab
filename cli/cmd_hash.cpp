#include <cstdio>

#include "cli/cli.h"
#include "converters/convert.h"

namespace vdisk::cli {

namespace {
std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}
}  // namespace

int cmd_hash(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_open_options(desc);
  add_progress_option(desc);
  add_mapfile_option(desc);
  add_stdin_size_option(desc);
  desc.add_options()("algo", po::value<std::string>()->default_value("sha256"),
                     "md5,sha1,sha256 (any, comma-separated)")(
      "output", po::value<std::string>()->default_value("human"), "human or json")(
      "hash-file", po::value<std::string>(),
      "write a JSON report (path, format, sizes, hashes, times)")(
      "force", "replace an existing --hash-file report")(
      "image", po::value<std::string>()->required(),
      "the image ('-': raw from standard input, needs --size)");
  po::positional_options_description pos;
  pos.add("image", 1);
  po::variables_map vm;
  if (!parse_args(
          "hash",
          "[-f FMT] [--algo md5,sha1,sha256] [--mapfile RESCUE.map] [--hash-file REPORT.json] "
          "[-p|--progress json] [--size N] IMAGE [--output human|json]",
          desc, pos, args, vm)) {
    return kExitOk;
  }
  const std::string start_time = utc_now_iso8601();
  bool json = want_json(vm);
  std::vector<HashAlgo> algos = parse_hash_algos(vm["algo"].as<std::string>());
  if (algos.empty()) throw UsageError("--algo needs at least one of md5, sha1, sha256");
  std::string image = vm["image"].as<std::string>();
  if (image == "-" && vm.count("mapfile"))
    throw UsageError("--mapfile needs an image file, not standard input");
  const std::string report_path = vm.count("hash-file") ? vm["hash-file"].as<std::string>() : "";
  const bool force = vm.count("force") != 0;
  if (!report_path.empty()) check_report_path(report_path, force);
  auto progress = progress_from(vm);

  bool is_stream = false;
  BlockDevicePtr dev = open_source(vm, "image", &is_stream);
  auto rescued = rescued_from(vm, dev, image);
  ImageInfo info = dev->info();

  CopyOptions opts;
  opts.algos = algos;
  opts.progress = progress.get();
  opts.cancel = &cancel_flag();
  opts.phase = "hashing";
  if (is_stream) opts.readers = 1;
  if (rescued) {
    for (const auto& a : rescued->bad_areas()) opts.unreadable.push_back({a.start, a.length});
  }
  CopyResult r = copy_device(*dev, nullptr, opts);

  if (json) {
    Json j = Json::object();
    j.set("image", image);
    j.set("format", info.format);
    j.set("virtual_size", r.virtual_size);
    j.set("hashes", hashes_json(r.hashes));
    if (rescued) {
      j.set("hashes_zero_filled", hashes_json(r.hashes_zero_filled));
      j.set("mapfile", bad_areas_json(*rescued));
    }
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    for (auto& hv : r.hashes) {
      std::printf("%s (%s) = %s\n", upper(hash_algo_name(hv.algo)).c_str(), image.c_str(),
                  hv.hex.c_str());
    }
    for (auto& hv : r.hashes_zero_filled) {
      std::printf("%s (%s, unrescued areas as zeros) = %s\n",
                  upper(hash_algo_name(hv.algo)).c_str(), image.c_str(), hv.hex.c_str());
    }
  }

  if (!report_path.empty()) {
    Json rep = Json::object();
    rep.set("vdisk_version", VDISK_VERSION);
    rep.set("command", "hash");
    rep.set("start_time", start_time);
    rep.set("end_time", utc_now_iso8601());
    Json s = Json::object();
    s.set("path", image);
    s.set("format", info.format);
    if (!info.subformat.empty()) s.set("subformat", info.subformat);
    s.set("virtual_size", r.virtual_size);
    s.set("allocated_bytes", is_stream ? r.virtual_size : count_allocated_bytes(*dev));
    rep.set("source", std::move(s));
    rep.set("virtual_size", r.virtual_size);
    rep.set("hash_scope", "guest content of the source, as stored");
    rep.set("hashes", hashes_json(r.hashes));
    if (rescued) {
      rep.set("hashes_zero_filled", hashes_json(r.hashes_zero_filled));
      rep.set("mapfile", bad_areas_json(*rescued));
    }
    rep.set("seconds", r.seconds);
    write_report(report_path, rep, force);
  }
  return kExitOk;
}

}  // namespace vdisk::cli
