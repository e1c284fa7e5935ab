#include <cstdio>

#include "cli/cli.h"
#include "formats/core/error.h"
#include "views/partition/partition_table.h"

namespace vdisk::cli {

namespace {

void print_details(const Json& j, int indent) {
  if (!j.is_object()) return;
  for (auto& [key, value] : j.as_object()) {
    std::string pad(static_cast<size_t>(indent), ' ');
    if (value.is_object()) {
      std::printf("%s%s:\n", pad.c_str(), key.c_str());
      print_details(value, indent + 2);
    } else if (value.is_array() && !value.as_array().empty() && value.as_array()[0].is_object()) {
      std::printf("%s%s:\n", pad.c_str(), key.c_str());
      size_t i = 0;
      for (auto& item : value.as_array()) {
        std::printf("%s  [%zu]\n", pad.c_str(), i++);
        print_details(item, indent + 4);
      }
    } else if (value.is_string()) {
      std::printf("%s%s: %s\n", pad.c_str(), key.c_str(), value.as_string().c_str());
    } else {
      std::printf("%s%s: %s\n", pad.c_str(), key.c_str(), value.dump().c_str());
    }
  }
}

std::string str(const Json& j, const char* key) {
  const Json* v = j.find(key);
  return v && v->is_string() ? v->as_string() : "";
}

uint64_t num(const Json& j, const char* key) {
  const Json* v = j.find(key);
  return v && v->is_number() ? v->as_u64() : 0;
}

// The partition table (PartitionTable::to_json), one line per partition
// with what it holds.
void print_partitions(const Json& t) {
  if (t.is_null()) return;
  if (const Json* err = t.find("error")) {
    std::printf("partition table: unreadable: %s\n", err->as_string().c_str());
    return;
  }
  const bool gpt = str(t, "scheme") == "gpt";
  std::printf("partition table: %s, %s %s\n", gpt ? "GPT" : "MBR",
              gpt ? "disk GUID" : "disk signature",
              str(t, gpt ? "disk_guid" : "disk_signature").c_str());
  for (const Json& p : t.find("partitions")->as_array()) {
    const std::string kind = str(p, "kind");
    std::string line = "p" + std::to_string(num(p, "number")) + ": start " +
                       std::to_string(num(p, "start")) + ", size " + human_size(num(p, "size")) +
                       ", type " + str(p, "type_name") + " (" + str(p, "type_code") + ")";
    if (kind != "gpt" && kind != "primary") line += ", " + kind;
    if (const Json* b = p.find("bootable"); b && b->is_bool() && b->as_bool()) line += ", bootable";
    if (gpt) {
      line += ", GUID " + str(p, "guid");
      if (!str(p, "label").empty()) line += ", label \"" + str(p, "label") + "\"";
    }
    if (kind != "extended") {
      const std::string c = str(p, "contents");
      line += ", " + (c.empty() ? std::string("no file system recognised") : "holds " + c);
    }
    std::printf("  %s\n", wrap(line, terminal_width(), 2, 6).c_str());
  }
  for (const Json& w : t.find("warnings")->as_array())
    std::printf("  warning: %s\n", w.as_string().c_str());
}

void print_human(const ImageInfo& info, int indent) {
  std::string pad(static_cast<size_t>(indent), ' ');
  std::printf("%simage: %s\n", pad.c_str(), info.path.c_str());
  std::printf("%sformat: %s\n", pad.c_str(), info.format.c_str());
  if (!info.subformat.empty())
    std::printf("%ssubformat: %s\n", pad.c_str(), info.subformat.c_str());
  std::printf("%svirtual size: %s\n", pad.c_str(), human_size(info.virtual_size).c_str());
  std::printf("%sdisk size: %s\n", pad.c_str(), human_size(info.actual_size).c_str());
  std::printf("%sallocated: %s\n", pad.c_str(), human_size(info.allocated_bytes).c_str());
  if (info.parent) std::printf("%sparent: %s\n", pad.c_str(), info.parent->c_str());
  if (info.details.is_object() && !info.details.as_object().empty()) {
    std::printf("%sdetails:\n", pad.c_str());
    print_details(info.details, indent + 2);
  }
  print_partitions(info.partition_table);
  if (!info.chain.empty()) {
    std::printf("%sbacking chain:\n", pad.c_str());
    for (const ImageInfo& layer : info.chain) {
      print_human(layer, indent + 2);
    }
  }
}

}  // namespace

int cmd_info(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_open_options(desc);
  add_mapfile_option(desc);
  desc.add_options()("output", po::value<std::string>()->default_value("human"), "human or json");
  const std::vector<Positional> pos = {{"image", "IMAGE", "image", "the image"}};
  po::variables_map vm;
  if (!parse_args("info", "[-f FMT] [--mapfile RESCUE.map] IMAGE [--output human|json]", desc, pos,
                  args, vm))
    return kExitOk;
  bool json = want_json(vm);
  // A differencing image whose parent is missing still shows its own fields
  // (parent locators, hints, UUIDs): that is what the user needs to find the
  // parent. The missing parent is then reported as the error it is (exit 2).
  OpenOptions opts = open_options_from(vm);
  std::vector<std::string> missing;
  opts.missing_parents = &missing;
  BlockDevicePtr dev =
      open_image(vm["image"].as<std::string>(), vm["format"].as<std::string>(), opts);
  // Through a mapfile, unrescued areas do not count as allocated and the
  // details name the mapfile and its totals.
  if (auto rescued = rescued_from(vm, dev, vm["image"].as<std::string>())) dev = rescued;
  ImageInfo info = full_info(*dev);
  // The guest disk's partition table, each partition with what it holds. A
  // damaged table is reported in place of the table, not as a failure of
  // info, which must still show the image.
  if (missing.empty()) try {
      const std::string label = vm["image"].as<std::string>();
      partition::PartitionTable table = partition::read_partition_table(*dev, label);
      if (table.scheme != partition::Scheme::kNone) {
        info.partition_table = table.to_json([&](const partition::Partition& p) {
          return describe_contents(partition::open_partition(dev, p, label));
        });
      }
    } catch (const Error& e) {
      Json t = Json::object();
      t.set("error", e.what());
      info.partition_table = std::move(t);
    }
  if (json) {
    std::printf("%s\n", info_to_json(info).dump(2).c_str());
  } else {
    print_human(info, 0);
  }
  if (!missing.empty()) {
    std::fflush(stdout);
    for (const std::string& m : missing) std::fprintf(stderr, "vdisk: %s\n", m.c_str());
    return kExitError;
  }
  return kExitOk;
}

}  // namespace vdisk::cli
