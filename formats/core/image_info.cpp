#include "formats/core/image_info.h"

#include "formats/core/block_device.h"
#include "formats/core/error.h"

namespace vdisk {

void ImageInfo::set_parent(ImageInfo p, const std::string& parent_path) {
  this->parent = parent_path.empty() ? p.path : parent_path;
  std::vector<ImageInfo> rest = std::move(p.chain);
  p.chain.clear();
  chain.push_back(std::move(p));
  for (ImageInfo& layer : rest) chain.push_back(std::move(layer));
}

namespace {

void fill_allocated(ImageInfo& info, const BlockDevice& layer) {
  try {
    info.allocated_bytes = count_allocated_bytes(layer);
  } catch (const Error& e) {
    // Only a missing parent (OpenOptions::missing_parents) gets here.
    if (e.kind() != ErrorKind::kNotFound) throw;
    info.details.set("allocated_bytes_unknown", e.what());
  }
}

}  // namespace

uint64_t allocated_bytes(const BlockDevice& dev) {
  return count_allocated_bytes(*dev.layers().at(0));
}

ImageInfo full_info(const BlockDevice& dev) {
  ImageInfo info = dev.info();
  const std::vector<const BlockDevice*> layers = dev.layers();
  fill_allocated(info, *layers.at(0));
  for (size_t i = 0; i < info.chain.size() && i + 1 < layers.size(); ++i)
    fill_allocated(info.chain[i], *layers[i + 1]);
  return info;
}

Json info_to_json(const ImageInfo& info) {
  Json j = Json::object();
  j.set("filename", info.path);
  j.set("format", info.format);
  j.set("subformat", info.subformat);
  j.set("virtual_size", info.virtual_size);
  j.set("actual_size", info.actual_size);
  j.set("allocated_bytes", info.allocated_bytes);
  j.set("parent", info.parent ? Json(*info.parent) : Json());
  j.set("details", info.details);
  if (!info.chain.empty()) {
    Json chain = Json::array();
    for (const ImageInfo& layer : info.chain) chain.push(info_to_json(layer));
    j.set("chain", std::move(chain));
  }
  if (!info.partition_table.is_null()) j.set("partition_table", info.partition_table);
  return j;
}

}  // namespace vdisk
