#include <sys/stat.h>

#include <cstdio>

#include "cli/cli.h"
#include "converters/convert.h"
#include "formats/core/error.h"

namespace vdisk::cli {

namespace {

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

int cmd_convert(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_open_options(desc);
  desc.add_options()("output-format,O", po::value<std::string>()->default_value("raw"),
                     "output format (see 'vdisk formats')")(
      "options,o", po::value<std::vector<std::string>>()->composing(),
      "output format options key=value[,key=value...] (may repeat)")(
      "progress,p", "show progress on stderr")(
      "hash", po::value<std::string>()->default_value("sha256"),
      "hashes of the guest content: md5,sha1,sha256 or none")(
      "verify", "re-read the output and fail (exit 1) unless its hash matches")(
      "force", "replace an existing destination")(
      "allow-resize", "let the output format round the virtual size up when it cannot keep it exactly")("src", po::value<std::string>()->required(), "source image")(
      "dst", po::value<std::string>()->required(), "destination ('-' for standard output)");
  po::positional_options_description pos;
  pos.add("src", 1).add("dst", 1);
  po::variables_map vm;
  if (!parse_args("convert", "[-f FMT] -O FMT [-o key=value,...] [-p] [--hash ALGOS] [--verify] [--force] SRC DST",
                  desc, pos, args, vm)) {
    return kExitOk;
  }
  const std::string src_path = vm["src"].as<std::string>();
  const std::string dst_path = vm["dst"].as<std::string>();
  const bool to_stdout = dst_path == "-";
  const bool force = vm.count("force") != 0;

  // Everything the user typed is validated before any file is opened or made.
  const FormatDescriptor& out_fmt = require_format(vm["output-format"].as<std::string>());
  if (!out_fmt.create) throw UsageError("format " + out_fmt.name + " cannot be written");
  std::string opt_text;
  if (vm.count("options")) {
    for (auto& o : vm["options"].as<std::vector<std::string>>()) opt_text += (opt_text.empty() ? "" : ",") + o;
  }
  Options options = parse_options(opt_text, out_fmt.create_options, out_fmt.name);
  std::vector<HashAlgo> algos = parse_hash_algos(vm["hash"].as<std::string>());
  if (to_stdout && !out_fmt.can_stream) {
    throw UsageError("format " + out_fmt.name + " cannot be written to standard output");
  }

  if (!to_stdout) {
    struct stat ss, ds;
    if (::stat(dst_path.c_str(), &ds) == 0) {
      if (::stat(src_path.c_str(), &ss) == 0 && ss.st_dev == ds.st_dev && ss.st_ino == ds.st_ino) {
        throw Error(ErrorKind::kInvalidArgument, dst_path, std::nullopt,
                    "destination is the source image; refusing to overwrite it");
      }
      if (S_ISDIR(ds.st_mode)) {
        throw Error(ErrorKind::kInvalidArgument, dst_path, std::nullopt, "destination is a directory");
      }
      if (!force) {
        throw Error(ErrorKind::kInvalidArgument, dst_path, std::nullopt,
                    "destination exists (pass --force to replace it)");
      }
    }
  }

  BlockDevicePtr src = open_from_args(vm, "src");
  ImageInfo src_info = src->info();

  CreateRequest req;
  req.path = dst_path;
  req.virtual_size = src->size();
  req.options = options;
  req.overwrite = force;
  req.allow_resize = vm.count("allow-resize") != 0;
  req.env = &Env::posix();
  req.source_info = &src_info;
  req.sector_size = src->sector_size();
  std::unique_ptr<ImageWriter> writer = out_fmt.create(req);

  auto progress = make_progress(vm.count("progress") != 0, false);
  CopyOptions copts;
  copts.algos = algos;
  copts.progress = progress.get();
  copts.cancel = &cancel_flag();
  CopyResult r;
  try {
    r = copy_device(*src, writer.get(), copts);
    writer->finish();
  } catch (...) {
    writer->abort();
    throw;
  }

  // With the image on standard output, every message goes to stderr.
  FILE* out = to_stdout ? stderr : stdout;
  for (const std::string& note : writer->notes()) std::fprintf(stderr, "vdisk: note: %s\n", note.c_str());
  if (writer->virtual_size() != src->size()) {
    std::fprintf(stderr, "vdisk: note: virtual size changed from %llu to %llu bytes as requested\n",
                 static_cast<unsigned long long>(src->size()),
                 static_cast<unsigned long long>(writer->virtual_size()));
  }
  std::fprintf(out, "converted %s (%s) -> %s (%s): %s virtual, %s written, %s left unallocated, %.2f s\n",
               src_path.c_str(), src_info.format.c_str(), dst_path.c_str(), out_fmt.name.c_str(),
               human_size(r.virtual_size).c_str(), human_size(r.bytes_written).c_str(),
               human_size(r.virtual_size - r.bytes_written).c_str(), r.seconds);
  for (auto& hv : r.hashes) {
    std::fprintf(out, "%s (guest content) = %s\n", upper(hash_algo_name(hv.algo)).c_str(), hv.hex.c_str());
  }

  if (vm.count("verify")) {
    if (to_stdout) throw UsageError("--verify cannot re-read standard output");
    std::vector<HashAlgo> valgos = algos.empty() ? std::vector<HashAlgo>{HashAlgo::kSha256} : algos;
    CopyResult expect = r;
    if (algos.empty()) {
      // No hash was taken during the copy: hash the source now, then the output.
      CopyOptions o;
      o.algos = valgos;
      o.cancel = &cancel_flag();
      o.phase = "hashing source";
      o.progress = progress.get();
      expect = copy_device(*src, nullptr, o);
    }
    BlockDevicePtr written = open_image(dst_path, out_fmt.name, OpenOptions{});
    CopyOptions o;
    o.algos = valgos;
    o.cancel = &cancel_flag();
    o.phase = "verifying";
    o.progress = progress.get();
    CopyResult got = copy_device(*written, nullptr, o);
    bool ok = got.virtual_size == expect.virtual_size;
    for (size_t i = 0; i < valgos.size(); ++i) ok = ok && got.hashes[i].hex == expect.hashes[i].hex;
    if (!ok) {
      std::fprintf(stderr, "vdisk: %s: verify FAILED: the output's content differs from the source's\n",
                   dst_path.c_str());
      for (size_t i = 0; i < valgos.size(); ++i) {
        std::fprintf(stderr, "  %s source %s, output %s\n", hash_algo_name(valgos[i]),
                     expect.hashes[i].hex.c_str(), got.hashes[i].hex.c_str());
      }
      return kExitDifferent;
    }
    std::fprintf(out, "verify: OK (%s of the output matches)\n", hash_algo_name(valgos.back()));
  }
  return kExitOk;
}

}  // namespace vdisk::cli
