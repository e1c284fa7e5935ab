// `vdisk measure -O FMT [-o ...] (SRC | --size SIZE) [--output json]`: the
// size the output of a conversion of SRC (or a new empty image of SIZE)
// would have, and its size fully allocated, from the writer itself
// (converters/measure.h).
#include <cstdio>

#include "cli/cli.h"
#include "converters/measure.h"
#include "formats/core/json.h"

namespace vdisk::cli {

int cmd_measure(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_output_format_options(desc, "raw");
  add_open_options(desc);
  desc.add_options()("size", po::value<std::string>()->value_name("SIZE"),
                     "measure a new empty image of this size (bytes, or 64M, 1G, 2T) instead of "
                     "a conversion of SRC")("allow-resize",
                                            "let the format round the size up, as convert does")(
      "output", po::value<std::string>()->default_value("human"), "human or json")(
      "as", po::value<std::string>()->value_name("DST"),
      "the destination's name (default disk.EXT): a VMDK descriptor records its extents' "
      "names, so its length depends on it; a qcow2 backing file resolves from its folder");
  const std::vector<Positional> pos = {
      {"src", "SRC", "source", "the image whose conversion to measure", /*req=*/false},
  };
  po::variables_map vm;
  if (!parse_args("measure",
                  "-O FMT [-o key=value,...|help] [-f FMT] (SRC | --size SIZE) [--as DST] "
                  "[--output json]",
                  desc, pos, args, vm, answer_options_help)) {
    return kExitOk;
  }
  Options options;
  std::string opt_text;
  const FormatDescriptor& fmt = output_format_from(vm, options, opt_text);
  const bool json = want_json(vm);
  const bool has_src = vm.count("src") != 0;
  if (has_src == (vm.count("size") != 0))
    throw UsageError("give either SRC or --size SIZE: vdisk measure -O FMT (SRC | --size SIZE)");

  BlockDevicePtr src;
  CreateRequest req;
  req.path = vm.count("as")
                 ? vm["as"].as<std::string>()
                 : "disk." + (fmt.extensions.empty() ? fmt.name : fmt.extensions.front());
  if (req.path == "-") req.path = "disk." + fmt.name;
  if (has_src) {
    src = open_from_args(vm, "src");
    req.virtual_size = src->size();
    req.sector_size = src->sector_size();
  } else {
    req.virtual_size = parse_size_arg(vm["size"].as<std::string>(), "--size");
  }
  ImageInfo src_info;
  if (src) {
    src_info = src->info();
    req.source_info = &src_info;
  }
  req.options = options;
  req.allow_resize = vm.count("allow-resize") != 0;
  req.open_image = [](const std::string& p, const std::string& f) {
    return open_image(p, f, OpenOptions{});
  };
  const Measurement m = measure_output(fmt, req, src.get(), &cancel_flag());

  if (json) {
    Json j = Json::object();
    j.set("format", fmt.name);
    j.set("options", opt_text);
    j.set("virtual_size", m.virtual_size);
    j.set("required", m.required);
    j.set("fully_allocated", m.fully_allocated);
    std::printf("%s\n", j.dump(2).c_str());
    return kExitOk;
  }
  std::printf("required size: %llu\nfully allocated size: %llu\n",
              static_cast<unsigned long long>(m.required),
              static_cast<unsigned long long>(m.fully_allocated));
  return kExitOk;
}

}  // namespace vdisk::cli
