#include <cstdio>

#include "cli/cli.h"

namespace vdisk::cli {

int cmd_map(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_open_options(desc);
  desc.add_options()("output", po::value<std::string>()->default_value("human"), "human or json")(
      "image", po::value<std::string>()->required(), "the image");
  po::positional_options_description pos;
  pos.add("image", 1);
  po::variables_map vm;
  if (!parse_args("map", "[-f FMT] IMAGE [--output human|json]", desc, pos, args, vm)) return kExitOk;
  bool json = want_json(vm);
  BlockDevicePtr dev = open_from_args(vm, "image");
  std::vector<MappedExtent> extents = map_extents(*dev);
  if (json) {
    Json list = Json::array();
    for (auto& e : extents) {
      Json j = Json::object();
      j.set("start", e.start);
      j.set("length", e.length);
      j.set("type", extent_type_name(e.type));
      list.push(std::move(j));
    }
    std::printf("%s\n", list.dump(2).c_str());
    return kExitOk;
  }
  std::printf("%-20s %-20s %s\n", "Offset", "Length", "Type");
  for (auto& e : extents) {
    std::printf("%-20s %-20s %s\n", hex_offset(e.start).c_str(), hex_offset(e.length).c_str(),
                extent_type_name(e.type));
  }
  return kExitOk;
}

}  // namespace vdisk::cli
