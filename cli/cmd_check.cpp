// `vdisk check [-f FMT] IMAGE [--output json] [--repair OUT]`: a read-only
// consistency check of an image's container. Formats with tables to
// cross-check run their own check (FormatDescriptor::check); every image is
// then opened with its parent chain (identities, locators); formats without
// a check of their own are read end to end, so the checksums they store
// (E01 chunks, compressed streams) are verified. Never writes the image:
// --repair converts it into a new file of the same format.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <mutex>

#include "cli/cli.h"
#include "converters/convert.h"
#include "formats/core/error.h"
#include "formats/core/file.h"
#include "formats/core/hex.h"
#include "formats/core/json.h"

namespace vdisk::cli {

int cmd_convert(const std::vector<std::string>& args);

namespace {

const char* kind_name(CheckFinding::Kind k) {
  return k == CheckFinding::Kind::kLeak ? "leak" : "error";
}

Json report_json(const std::string& image, const std::string& format, const std::string& checked,
                 const CheckReport& r) {
  Json j = Json::object();
  j.set("image", image);
  j.set("format", format);
  j.set("checked", checked);
  j.set("clean", r.clean());
  j.set("errors", r.errors());
  j.set("leaks", r.leaks());
  j.set("leaked_bytes", r.leaked_bytes());
  Json list = Json::array();
  for (const CheckFinding& f : r.findings()) {
    Json fj = Json::object();
    fj.set("kind", kind_name(f.kind));
    fj.set("file", f.file);
    fj.set("offset", f.offset);
    fj.set("structure", f.structure);
    fj.set("what", f.what);
    list.push(std::move(fj));
  }
  j.set("findings", std::move(list));
  Json notes = Json::array();
  for (const std::string& n : r.notes()) notes.push(n);
  j.set("notes", std::move(notes));
  return j;
}

// Reads the whole guest content of `dev`, turning damaged pieces and a
// corrupt read into findings.
void check_content(const po::variables_map& vm, const std::string& image, CheckReport& report) {
  std::mutex mu;
  std::vector<DamagedData> damaged;
  OpenOptions o = open_options_from(vm);
  o.on_damaged_data = [&](const DamagedData& d) {
    std::lock_guard<std::mutex> lock(mu);
    damaged.push_back(d);
  };
  BlockDevicePtr dev = open_image(image, vm["format"].as<std::string>(), o);
  CopyOptions copts;
  copts.cancel = &cancel_flag();
  copts.phase = "checking";
  try {
    copy_device(*dev, nullptr, copts);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::kCorrupt) throw;
    report.error(e.file().empty() ? image : e.file(), e.offset().value_or(0), "content",
                 e.message());
  }
  std::sort(damaged.begin(), damaged.end(),
            [](const DamagedData& a, const DamagedData& b) { return a.offset < b.offset; });
  for (const DamagedData& d : damaged)
    report.error(image, d.offset, "content (" + std::to_string(d.length) + " bytes)", d.message);
}

void print_report(const std::string& image, const std::string& format, const std::string& checked,
                  const CheckReport& report) {
  for (const CheckFinding& f : report.findings()) {
    std::printf("%s: %s: %s at offset %llu (%s): %s\n", kind_name(f.kind), f.file.c_str(),
                f.structure.c_str(), static_cast<unsigned long long>(f.offset),
                hex(f.offset).c_str(), f.what.c_str());
  }
  const uint64_t total = report.errors() + report.leaks();
  if (report.findings().size() < total) {
    std::printf("... and %llu more findings\n",
                static_cast<unsigned long long>(total - report.findings().size()));
  }
  for (const std::string& n : report.notes()) std::printf("note: %s\n", n.c_str());
  if (report.clean()) {
    std::printf("%s (%s): no errors found (%s checked)\n", image.c_str(), format.c_str(),
                checked.c_str());
  } else {
    std::printf("%s (%s): %s, %s (%s leaked)\n", image.c_str(), format.c_str(),
                count_of(report.errors(), "error", "errors").c_str(),
                count_of(report.leaks(), "leak", "leaks").c_str(),
                human_size(report.leaked_bytes()).c_str());
  }
}

// Refuses --repair OUT before any work when the copy could not be made
// there: the image or a file of its chain (the chain is opened through
// `guard` to learn its files, and returned; a chain that does not open is
// the check's to report: null), a symlink or anything but a regular file,
// an existing file without --force, a missing folder. The last ones are
// asked of the Env itself: an output is made and discarded, so the rules
// are those convert's writer meets, and nothing appears.
BlockDevicePtr claim_repair_output(const po::variables_map& vm, const std::string& image,
                                   const OpenOptions& opts, GuardedEnv& guard) {
  BlockDevicePtr chain;
  try {
    chain = open_image(image, vm["format"].as<std::string>(), opts);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::kInterrupted) throw;
  }
  const std::string out = vm["repair"].as<std::string>();
  guard.claim_output("the --repair copy", out, GuardedEnv::Maker::kEnv);
  guard.create_output(out, vm.count("force") != 0)->discard();
  return chain;
}

}  // namespace

int cmd_check(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_open_options(desc);
  desc.add_options()("output", po::value<std::string>()->default_value("human"), "human or json")(
      "repair", po::value<std::string>()->value_name("OUT"),
      "write a consistent copy of the image to OUT (same format, through convert); the image "
      "itself is never changed")("force", "with --repair: replace an existing OUT");
  const std::vector<Positional> pos = {{"image", "IMAGE", "image", "the image to check"}};
  po::variables_map vm;
  if (!parse_args("check", "[-f FMT] IMAGE [--output json] [--repair OUT [--force]]", desc, pos,
                  args, vm))
    return kExitOk;
  const bool json = want_json(vm);
  const std::string image = vm["image"].as<std::string>();
  const bool force = vm.count("force") != 0;
  if (force && !vm.count("repair")) throw UsageError("--force needs --repair OUT");
  if (vm.count("repair") && vm["repair"].as<std::string>() == "-")
    throw UsageError("--repair writes a file, not standard output");
  // Everything the check reads goes through `guard`, so that --repair OUT is
  // never the image nor a file of its chain (issue #16).
  GuardedEnv guard(Env::posix());
  const OpenOptions opts = open_options_from(vm, &guard);

  // The format: as given, else probed (opening is not the way to learn it:
  // a damaged image may not open, and saying why is the check's job).
  std::shared_ptr<const File> file = guard.open_read(image);
  BlockDevicePtr chain;  // with --repair: opened first, to learn its files
  if (vm.count("repair")) chain = claim_repair_output(vm, image, opts, guard);
  const std::string fmt_name = vm["format"].as<std::string>();
  const FormatDescriptor* fmt = nullptr;
  if (!fmt_name.empty()) {
    fmt = &require_format(fmt_name);
  } else {
    const ProbeResult pr = probe_file(*file);
    if (pr.best && pr.score > kProbeFallback) fmt = pr.best;
  }

  CheckReport report;
  std::string checked;
  if (fmt && fmt->check) {
    checked = "container";
    fmt->check(file, opts, report);
    // The chain: parents found, identities agreeing. An image the check
    // found broken may not open; that is already said.
    try {
      if (!chain) open_image(image, fmt->name, opts);
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::kInterrupted) throw;
      if (report.errors() == 0)
        report.error(e.file().empty() ? image : e.file(), e.offset().value_or(0), "image",
                     e.message());
    }
  } else {
    // Opening validates everything the format stores; the content read
    // verifies the checksums it keeps. An image that does not open is
    // unreadable (exit 2).
    checked = "content";
    if (!chain) open_image(image, fmt ? fmt->name : fmt_name, opts);
    check_content(vm, image, report);
    if (!fmt || fmt->name == "raw")
      report.note("a raw image has no container structure: nothing to check beyond reading it");
  }
  const std::string shown = fmt ? fmt->name : "raw";

  if (!json) print_report(image, shown, checked, report);
  if (vm.count("repair")) {
    std::vector<std::string> conv = {"-f", shown, "-O", shown, "--hash", "none"};
    if (vm.count("allow-outside-paths")) conv.push_back("--allow-outside-paths");
    if (!vm["parent"].as<std::string>().empty()) {
      conv.push_back("--parent");
      conv.push_back(vm["parent"].as<std::string>());
    }
    if (force) conv.push_back("--force");
    conv.push_back(image);
    conv.push_back(vm["repair"].as<std::string>());
    // With JSON on standard output, convert's summary goes to stderr.
    std::fflush(stdout);
    const int saved = json ? ::dup(1) : -1;
    if (saved >= 0) ::dup2(2, 1);
    int rc = kExitError;
    try {
      rc = cmd_convert(conv);
    } catch (...) {
      std::fflush(stdout);
      if (saved >= 0) ::dup2(saved, 1), ::close(saved);
      throw;
    }
    std::fflush(stdout);
    if (saved >= 0) ::dup2(saved, 1), ::close(saved);
    if (rc != kExitOk) return rc;
  }
  if (json) std::printf("%s\n", report_json(image, shown, checked, report).dump(2).c_str());
  return report.clean() ? kExitOk : kExitDifferent;
}

}  // namespace vdisk::cli
