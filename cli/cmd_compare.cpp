#include <algorithm>
#include <cstdio>

#include "cli/cli.h"
#include "cli/progress.h"
#include "converters/convert.h"
#include "formats/core/hex.h"
#include "formats/core/json.h"

namespace vdisk::cli {

namespace {

void print_mismatch(uint64_t offset) {
  std::printf("Content mismatch at offset %llu (%s)!\n", static_cast<unsigned long long>(offset),
              hex(offset).c_str());
}

}  // namespace

// Strict by default (issue #17 item 4): images of different sizes are
// different (exit 1), and the output says what the difference is: whether
// the common part is identical and whether the larger one's extra part is
// all zeros. --allow-size-mismatch gives qemu-img compare's verdict: the
// common part must match and the extra part must read as zeros.
int cmd_compare(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_open_options(desc, "format-a,f");
  desc.add_options()("format-b,F", po::value<std::string>()->default_value(""),
                     "format of the second image (default: probe)")(
      "allow-size-mismatch",
      "images of different sizes may still be identical: the common part must match and the "
      "larger image's extra part must be all zeros (as qemu-img compare)")(
      "progress,p", "show progress on stderr")(
      "output", po::value<std::string>()->default_value("human"), "human or json");
  const std::vector<Positional> pos = {
      {"a", "A", "first image", "first image"},
      {"b", "B", "second image", "second image"},
  };
  po::variables_map vm;
  if (!parse_args("compare", "[-f FMT] [-F FMT] [--allow-size-mismatch] A B [--output json]", desc,
                  pos, args, vm))
    return kExitOk;
  const bool lenient = vm.count("allow-size-mismatch") != 0;
  const bool json = want_json(vm);
  BlockDevicePtr a = open_from_args(vm, "a", "format-a");
  BlockDevicePtr b = open_from_args(vm, "b", "format-b");
  auto progress = make_progress(vm.count("progress") != 0, false);
  CompareResult r = compare_devices(*a, *b, progress.get(), &cancel_flag());
  if (json) {
    // The same verdict as the human output: with --allow-size-mismatch a
    // zero extra part does not make the images differ.
    const bool same =
        r.identical || (lenient && r.size_differs && !r.first_difference && !r.first_nonzero_extra);
    Json j = Json::object();
    j.set("identical", same);
    j.set("size_a", r.size_a);
    j.set("size_b", r.size_b);
    j.set("size_differs", r.size_differs);
    j.set("first_difference", r.first_difference ? Json(*r.first_difference) : Json());
    j.set("first_nonzero_extra", r.first_nonzero_extra ? Json(*r.first_nonzero_extra) : Json());
    std::printf("%s\n", j.dump(2).c_str());
    return same ? kExitOk : kExitDifferent;
  }
  if (!r.size_differs) {
    if (r.first_difference) {
      print_mismatch(*r.first_difference);
      return kExitDifferent;
    }
    std::printf("Images are identical.\n");
    return kExitOk;
  }
  const std::string& name_a = vm["a"].as<std::string>();
  const std::string& name_b = vm["b"].as<std::string>();
  if (lenient) {
    std::printf("Warning: Image size mismatch!\n");
    if (r.first_difference || r.first_nonzero_extra) {
      print_mismatch(r.first_difference ? *r.first_difference : *r.first_nonzero_extra);
      return kExitDifferent;
    }
    std::printf("Images are identical.\n");
    return kExitOk;
  }
  const uint64_t common = std::min(r.size_a, r.size_b);
  const std::string& larger = r.size_a > r.size_b ? name_a : name_b;
  std::printf("Image sizes differ: %s is %llu bytes, %s is %llu bytes\n", name_a.c_str(),
              static_cast<unsigned long long>(r.size_a), name_b.c_str(),
              static_cast<unsigned long long>(r.size_b));
  if (r.first_difference) {
    std::printf("The common part (the first %llu bytes) differs: ",
                static_cast<unsigned long long>(common));
    print_mismatch(*r.first_difference);
    return kExitDifferent;
  }
  std::printf("The common part (the first %llu bytes) is identical.\n",
              static_cast<unsigned long long>(common));
  const uint64_t extra = std::max(r.size_a, r.size_b) - common;
  if (r.first_nonzero_extra) {
    std::printf("The extra %llu bytes of %s hold data (first non-zero byte at offset %llu, %s).\n",
                static_cast<unsigned long long>(extra), larger.c_str(),
                static_cast<unsigned long long>(*r.first_nonzero_extra),
                hex(*r.first_nonzero_extra).c_str());
  } else {
    std::printf(
        "The extra %llu bytes of %s are all zeros (--allow-size-mismatch calls the images "
        "identical).\n",
        static_cast<unsigned long long>(extra), larger.c_str());
  }
  return kExitDifferent;
}

}  // namespace vdisk::cli
