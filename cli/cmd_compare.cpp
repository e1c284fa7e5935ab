#include <cstdio>

#include "cli/cli.h"
#include "cli/progress.h"
#include "converters/convert.h"
#include "formats/core/json.h"

namespace vdisk::cli {

int cmd_compare(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_open_options(desc, "format-a,f");
  desc.add_options()("format-b,F", po::value<std::string>()->default_value(""),
                     "format of the second image (default: probe)")("progress,p",
                                                                    "show progress on stderr")(
      "output", po::value<std::string>()->default_value("human"), "human or json");
  const std::vector<Positional> pos = {
      {"a", "A", "first image", "first image"},
      {"b", "B", "second image", "second image"},
  };
  po::variables_map vm;
  if (!parse_args("compare", "[-f FMT] [-F FMT] A B [--output json]", desc, pos, args, vm))
    return kExitOk;
  const bool json = want_json(vm);
  BlockDevicePtr a = open_from_args(vm, "a", "format-a");
  BlockDevicePtr b = open_from_args(vm, "b", "format-b");
  auto progress = make_progress(vm.count("progress") != 0, false);
  CompareResult r = compare_devices(*a, *b, progress.get(), &cancel_flag());
  if (json) {
    Json j = Json::object();
    j.set("identical", r.identical);
    j.set("size_a", r.size_a);
    j.set("size_b", r.size_b);
    j.set("size_differs", r.size_differs);
    j.set("first_difference", r.first_difference ? Json(*r.first_difference) : Json());
    std::printf("%s\n", j.dump(2).c_str());
    return r.identical ? kExitOk : kExitDifferent;
  }
  if (r.first_difference) {
    std::printf("Content mismatch at offset %llu (%s)!\n",
                static_cast<unsigned long long>(*r.first_difference),
                hex_offset(*r.first_difference).c_str());
  }
  if (r.size_differs) {
    std::printf("Image sizes differ: %s is %llu bytes, %s is %llu bytes\n",
                vm["a"].as<std::string>().c_str(), static_cast<unsigned long long>(r.size_a),
                vm["b"].as<std::string>().c_str(), static_cast<unsigned long long>(r.size_b));
  }
  if (r.identical) {
    std::printf("Images are identical.\n");
    return kExitOk;
  }
  return kExitDifferent;
}

}  // namespace vdisk::cli
