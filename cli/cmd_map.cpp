#include <cstdio>

#include "cli/cli.h"
#include "formats/core/hex.h"

namespace vdisk::cli {

namespace {

struct MapRow {
  uint64_t start = 0;
  uint64_t length = 0;
  ExtentType type = ExtentType::kData;
  uint32_t depth = 0;  // the layer that holds it (0: the image itself)
  char rescue = 0;     // ddrescue status with --mapfile ('+' rescued), else 0
};

// Every extent, adjacent ones of one type, depth (and rescue status) merged.
std::vector<MapRow> map_rows(const BlockDevice& dev, const ddrescue::RescuedDevice* rescued) {
  std::vector<MapRow> rows;
  const uint64_t size = dev.size();
  uint64_t off = 0;
  while (off < size) {
    Extent e = dev.block_status(off, size - off);
    const uint64_t len = e.length;
    char rescue = 0;
    if (rescued) {
      const ddrescue::BadArea* a = rescued->bad_area_at(off);
      rescue = a ? a->status : '+';
    }
    if (!rows.empty() && rows.back().type == e.type && rows.back().depth == e.depth &&
        rows.back().rescue == rescue) {
      rows.back().length += len;
    } else {
      rows.push_back({off, len, e.type, e.depth, rescue});
    }
    off += len;
  }
  return rows;
}

}  // namespace

int cmd_map(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_open_options(desc);
  add_mapfile_option(desc);
  desc.add_options()("output", po::value<std::string>()->default_value("human"), "human or json");
  const std::vector<Positional> pos = {{"image", "IMAGE", "image", "the image"}};
  po::variables_map vm;
  if (!parse_args("map", "[-f FMT] [--mapfile RESCUE.map] IMAGE [--output human|json]", desc, pos,
                  args, vm)) {
    return kExitOk;
  }
  bool json = want_json(vm);
  BlockDevicePtr dev = open_from_args(vm, "image");
  auto rescued = rescued_from(vm, dev, vm["image"].as<std::string>());
  std::vector<MapRow> rows = map_rows(rescued ? *rescued : *dev, rescued.get());
  if (json) {
    Json list = Json::array();
    for (auto& e : rows) {
      Json j = Json::object();
      j.set("start", e.start);
      j.set("length", e.length);
      j.set("type", extent_type_name(e.type));
      j.set("depth", e.depth);
      if (rescued) {
        j.set("rescued", e.rescue == '+');
        j.set("ddrescue_status", std::string(1, e.rescue));
      }
      list.push(std::move(j));
    }
    std::printf("%s\n", list.dump(2).c_str());
    return kExitOk;
  }
  if (!rescued) {
    // A chain gets a column naming the layer each extent comes from.
    const std::vector<const BlockDevice*> layers = dev->layers();
    if (layers.size() > 1) {
      std::printf("%-20s %-20s %-12s %s\n", "Offset", "Length", "Type", "Layer");
      for (auto& e : rows) {
        std::string layer = std::to_string(e.depth);
        if (e.type != ExtentType::kUnallocated && e.depth < layers.size())
          layer += " " + layers[e.depth]->label();
        std::printf("%-20s %-20s %-12s %s\n", hex(e.start).c_str(), hex(e.length).c_str(),
                    extent_type_name(e.type), layer.c_str());
      }
      return kExitOk;
    }
    std::printf("%-20s %-20s %s\n", "Offset", "Length", "Type");
    for (auto& e : rows) {
      std::printf("%-20s %-20s %s\n", hex(e.start).c_str(), hex(e.length).c_str(),
                  extent_type_name(e.type));
    }
    return kExitOk;
  }
  std::printf("%-20s %-20s %-12s %s\n", "Offset", "Length", "Type", "Rescue");
  for (auto& e : rows) {
    std::printf("%-20s %-20s %-12s %s\n", hex(e.start).c_str(), hex(e.length).c_str(),
                extent_type_name(e.type), ddrescue::status_name(e.rescue));
  }
  return kExitOk;
}

}  // namespace vdisk::cli
