#include <cstdio>

#include "cli/cli.h"
#include "converters/convert.h"

namespace vdisk::cli {

int cmd_hash(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_open_options(desc);
  desc.add_options()("algo", po::value<std::string>()->default_value("sha256"),
                     "md5,sha1,sha256 (any, comma-separated)")(
      "output", po::value<std::string>()->default_value("human"), "human or json")(
      "progress,p", "show progress on stderr")("image", po::value<std::string>()->required(), "the image");
  po::positional_options_description pos;
  pos.add("image", 1);
  po::variables_map vm;
  if (!parse_args("hash", "[-f FMT] [--algo md5,sha1,sha256] IMAGE [--output human|json]", desc, pos,
                  args, vm)) {
    return kExitOk;
  }
  bool json = want_json(vm);
  std::vector<HashAlgo> algos = parse_hash_algos(vm["algo"].as<std::string>());
  if (algos.empty()) throw UsageError("--algo needs at least one of md5, sha1, sha256");
  std::string image = vm["image"].as<std::string>();
  BlockDevicePtr dev = open_from_args(vm, "image");

  auto progress = make_progress(vm.count("progress") != 0, false);
  CopyOptions opts;
  opts.algos = algos;
  opts.progress = progress.get();
  opts.cancel = &cancel_flag();
  opts.phase = "hashing";
  CopyResult r = copy_device(*dev, nullptr, opts);

  if (json) {
    Json j = Json::object();
    j.set("image", image);
    j.set("format", dev->info().format);
    j.set("virtual_size", r.virtual_size);
    Json h = Json::object();
    for (auto& hv : r.hashes) h.set(hash_algo_name(hv.algo), hv.hex);
    j.set("hashes", std::move(h));
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    for (auto& hv : r.hashes) {
      std::string tag = hash_algo_name(hv.algo);
      for (auto& c : tag) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      std::printf("%s (%s) = %s\n", tag.c_str(), image.c_str(), hv.hex.c_str());
    }
  }
  return kExitOk;
}

}  // namespace vdisk::cli
