// `vdisk create -O FMT [-o ...] OUT [SIZE] [-b BACKING [-F FMT]]`: a new
// image through the format's writer. An empty image is the writer fed an
// all-zero guest of SIZE (every range declared zero, nothing written); a
// child is the writer fed its backing image's content with the backing named
// in the format's own way, so that it stores nothing of its own and reads as
// its parent.
#include <cstdio>

#include "cli/cli.h"
#include "converters/convert.h"
#include "formats/core/error.h"
#include "formats/core/file.h"

namespace vdisk::cli {

namespace {

// The -o options a child of `f` over `backing` needs, for the formats
// whose writer records a backing image; empty when `f` makes no children.
// The backing name is recorded as typed (qemu-img does the same), so a
// relative name stays relative to the child's folder.
std::string child_options(const FormatDescriptor& f, const std::string& backing,
                          const std::string& backing_format) {
  for (const OptionSpec& o : f.create_options) {
    if (o.name != "backing_file") continue;
    std::string text = "backing_file=" + backing;
    if (!backing_format.empty()) text += ",backing_fmt=" + backing_format;
    return text;
  }
  return "";
}

}  // namespace

int cmd_create(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_output_format_options(desc, "raw");
  desc.add_options()("backing,b", po::value<std::string>()->value_name("BACKING"),
                     "make a child (differencing image) over this existing image")(
      "backing-format,F", po::value<std::string>()->value_name("FMT"),
      "format of BACKING (default: probe the bytes)")("force", "replace an existing OUT")(
      "allow-resize", "let the format round SIZE up when it cannot keep it");
  const std::vector<Positional> pos = {
      {"out", "OUT", "output image", "the image to make (must not exist unless --force)"},
      {"size", "SIZE", "size",
       "virtual size: bytes, or with K, M, G, T (64G, 1T); optional with -b (the backing's)",
       /*req=*/false},
  };
  po::variables_map vm;
  if (!parse_args("create",
                  "-O FMT [-o key=value,...|help] [-b BACKING [-F FMT]] [--allow-resize] "
                  "[--force] OUT [SIZE]",
                  desc, pos, args, vm, answer_options_help)) {
    return kExitOk;
  }
  Options options;
  std::string opt_text;
  const FormatDescriptor* fmt = &output_format_from(vm, options, opt_text);
  const std::string out = vm["out"].as<std::string>();
  if (out == "-") throw UsageError("create writes a file, not standard output");
  const bool child = vm.count("backing") != 0;
  if (!child && vm.count("backing-format")) throw UsageError("-F needs -b BACKING");
  if (!child && !vm.count("size")) throw UsageError("missing size: vdisk create -O FMT OUT SIZE");

  // The image and every file its writer makes go through `guard`: none may
  // be the backing image or a file of its chain (issue #16), which the
  // writer would replace while the child still names it.
  GuardedEnv guard(Env::posix());
  guard.claim_output("the new image", out, GuardedEnv::Maker::kEnv);
  OpenOptions open;
  open.env = &guard;

  BlockDevicePtr backing;
  if (child) {
    const std::string bpath = vm["backing"].as<std::string>();
    const std::string bfmt =
        vm.count("backing-format") ? vm["backing-format"].as<std::string>() : "";
    const std::string extra = child_options(*fmt, bpath, bfmt);
    if (extra.empty()) {
      throw UsageError("format " + fmt->name +
                       " cannot make a child image yet (qcow2 can: -O qcow2 -b BACKING)");
    }
    if (options.is_set("backing_file")) throw UsageError("give the backing image once: -b or -o");
    opt_text += (opt_text.empty() ? "" : ",") + extra;
    options = parse_options(opt_text, fmt->create_options, fmt->name);
    // The name is recorded relative to the child's folder, as the reader
    // resolves it; opened here the same way to check it and read it.
    const std::string resolved = bpath.front() == '/' ? bpath : path_join(path_dirname(out), bpath);
    backing = open_image(resolved, bfmt, open);
  }
  uint64_t size = 0;
  if (vm.count("size")) {
    size = parse_size_arg(vm["size"].as<std::string>(), "SIZE");
  } else {
    size = backing->size();
  }
  if (backing && size != backing->size()) {
    throw UsageError("a child has its backing image's size (" + std::to_string(backing->size()) +
                     " bytes), not " + std::to_string(size));
  }

  CreateRequest req;
  req.path = out;
  req.virtual_size = size;
  req.options = options;
  req.overwrite = vm.count("force") != 0;
  req.allow_resize = vm.count("allow-resize") != 0;
  req.env = &guard;
  req.source = backing.get();
  req.open_image = [&open](const std::string& p, const std::string& f) {
    return open_image(p, f, open);
  };
  std::unique_ptr<ImageWriter> writer = fmt->create(req);
  try {
    if (backing) {
      // The writer stores only what differs from the backing image: fed the
      // backing's own content, the child holds nothing and reads as it.
      CopyOptions copts;
      copts.cancel = &cancel_flag();
      copts.phase = "creating";
      copy_device(*backing, writer.get(), copts);
    } else if (size > 0) {
      writer->write_zeroes(0, size);
    }
    writer->finish();
  } catch (...) {
    writer->abort();
    throw;
  }
  for (const std::string& note : writer->notes())
    std::fprintf(stderr, "vdisk: note: %s\n", note.c_str());
  std::printf("created %s (%s%s%s): %s virtual%s%s\n", out.c_str(), fmt->name.c_str(),
              opt_text.empty() ? "" : ", ", opt_text.c_str(),
              human_size(writer->virtual_size()).c_str(), child ? ", child of " : "",
              child ? vm["backing"].as<std::string>().c_str() : "");
  return kExitOk;
}

}  // namespace vdisk::cli
