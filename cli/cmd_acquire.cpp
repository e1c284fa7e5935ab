// `vdisk acquire`: image a failing disk with GNU ddrescue's passes and
// mapfile (converters/acquire.h), into raw in place or, for any other
// format, into a working raw that the same run converts at the end.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <optional>
#include <thread>

#include "cli/acquire_io.h"
#include "cli/cli.h"
#include "cli/exit_deferral.h"
#include "cli/progress.h"
#include "cli/source.h"
#include "converters/acquire.h"
#include "converters/convert.h"
#include "formats/core/error.h"

namespace vdisk::cli {

namespace {

bool path_exists(const std::string& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0;
}

// "64K" or "64K,1G" (-K INITIAL[,MAX]).
void parse_skip_size(const std::string& text, AcquireOptions& o) {
  const size_t comma = text.find(',');
  const std::string a = text.substr(0, comma);
  const std::string b = comma == std::string::npos ? "" : text.substr(comma + 1);
  if (a.empty() && b.empty()) throw UsageError("--skip-size needs INITIAL, ,MAX or both");
  if (!a.empty()) o.skip_initial = parse_size_arg(a, "--skip-size");
  if (!b.empty()) o.skip_max = parse_size_arg(b, "--skip-size");
  if (o.skip_initial == 0) throw UsageError("--skip-size: INITIAL must be positive");
  if (o.skip_max && o.skip_max < o.skip_initial)
    throw UsageError("--skip-size: MAX is smaller than INITIAL");
}

// "1,3" or "1-3" or "0" (--cpass, passes 1 to 3).
void parse_cpass(const std::string& text, AcquireOptions& o) {
  for (bool& p : o.copy_pass) p = false;
  if (text == "0") return;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? comma : comma - start);
    const size_t dash = item.find('-');
    const uint64_t lo = parse_count_arg(item.substr(0, dash), "--cpass", 3);
    const uint64_t hi =
        dash == std::string::npos ? lo : parse_count_arg(item.substr(dash + 1), "--cpass", 3);
    if (lo == 0 || hi < lo) throw UsageError("--cpass: '" + item + "' is not a pass range of 1-3");
    for (uint64_t p = lo; p <= hi; ++p) o.copy_pass[p - 1] = true;
    start = comma == std::string::npos ? text.size() + 1 : comma + 1;
  }
}

// "90", "1.5", "2m", "1h" (-T, ddrescue's INTERVAL).
double parse_interval(const std::string& text, const std::string& option) {
  double mult = 1;
  std::string num = text;
  if (!num.empty() && std::string("smhd").find(num.back()) != std::string::npos) {
    mult = num.back() == 's' ? 1 : num.back() == 'm' ? 60 : num.back() == 'h' ? 3600 : 86400;
    num.pop_back();
  }
  char* end = nullptr;
  const double v = std::strtod(num.c_str(), &end);
  if (num.empty() || *end != '\0' || !(v >= 0))
    throw UsageError(option + ": '" + text + "' is not a time (90, 1.5, 2m, 1h, 1d)");
  return v * mult;
}

}  // namespace

int cmd_acquire(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_progress_option(desc);
  desc.add_options()("mapfile,m", po::value<std::string>()->required(),
                     "GNU ddrescue mapfile of the run: created, or resumed when it exists")(
      "output-format,O", po::value<std::string>()->default_value("raw"),
      "raw: DEST is the rescue file, written in place (ddrescue's outfile); any other format "
      "(vmdk, vhdx, qcow2, e01...): the run fills DEST.vdisk-work and converts it into DEST at "
      "the end")("options,o", po::value<std::vector<std::string>>()->composing(),
                 "output format options key=value[,key=value...] (see 'vdisk formats')")(
      "hash", po::value<std::string>()->default_value("sha256"),
      "media hashes: md5,sha1,sha256 or none")("hash-file", po::value<std::string>(),
                                               "write a JSON report (as convert --hash-file)")(
      "force", "replace an existing DEST (not raw) and --hash-file report")(
      "cache,t", po::value<std::string>()->default_value("writeback"),
      "writeback: fdatasync the rescue file before each mapfile save, and fsync DEST (the "
      "mapfile never claims bytes a power loss could take); unsafe: skip those syncs, as "
      "ddrescue does by default (faster)")(
      "sector-size,b", po::value<std::string>(),
      "sector size of the source (trimming, scraping, retries read one sector): default the "
      "device's logical sector size, 512 for a file")(
      "cluster-size,c", po::value<std::string>(),
      "sectors read at a time while copying (default 64 KiB worth)")(
      "skip-size,K", po::value<std::string>(),
      "INITIAL[,MAX]: skip after a read error or slow read in copying passes 1-2, doubling up to "
      "MAX (default 64K, MAX 1% of the source up to 1G)")(
      "cpass", po::value<std::string>(), "copying passes to run: 1-3, a list (1,3) or 0 for none")(
      "no-trim,N", "skip the trimming phase")("no-scrape,n", "skip the scraping phase")(
      "retry-passes,r", po::value<std::string>()->default_value("0"),
      "retry bad sectors N times (-1: until read or stopped)")(
      "reverse,R", "run every pass in the opposite direction")(
      "timeout,T", po::value<std::string>(),
      "give up after this long without a successful read (90, 2m, 1h)")(
      "min-read-rate,a", po::value<std::string>(),
      "in copying passes 1-2, skip ahead of areas read slower than this (bytes/s: 1M)")(
      "mapfile-interval", po::value<std::string>()->default_value("30"),
      "seconds between mapfile saves (also saved at every pass end and on interruption)");
  const std::vector<Positional> pos = {
      {"src", "SOURCE", "source", "block device (/dev/sdX) or regular file to read; never written"},
      {"dst", "DEST", "destination", "the image to make"},
  };
  po::variables_map vm;
  if (!parse_args("acquire",
                  "--mapfile RESCUE.map [-O FMT] [-o key=value,...] [-b BYTES] [-c SECTORS] "
                  "[-K INITIAL[,MAX]] [--cpass PASSES] [-N] [-n] [-r N] [-R] [-T TIME] "
                  "[-a RATE] [-t writeback|unsafe] [--hash ALGOS] [--hash-file REPORT.json] "
                  "[-p|--progress json] "
                  "[--force] SOURCE DEST",
                  desc, pos, args, vm)) {
    return kExitOk;
  }
  const std::string start_time = utc_now_iso8601();
  const std::string src_path = vm["src"].as<std::string>();
  const std::string dst_path = vm["dst"].as<std::string>();
  const std::string map_path = vm["mapfile"].as<std::string>();
  const bool force = vm.count("force") != 0;
  const std::string report_path = vm.count("hash-file") ? vm["hash-file"].as<std::string>() : "";

  // Everything typed is checked before the source is opened.
  const FormatDescriptor& out_fmt = require_format(vm["output-format"].as<std::string>());
  if (!out_fmt.create) throw UsageError("format " + out_fmt.name + " cannot be written");
  const bool raw = out_fmt.name == "raw";
  std::string opt_text;
  if (vm.count("options")) {
    for (auto& o : vm["options"].as<std::vector<std::string>>())
      opt_text += (opt_text.empty() ? "" : ",") + o;
  }
  if (raw && !opt_text.empty())
    throw UsageError("-o: the raw rescue file takes no options (it is written in place)");
  const Options options = parse_options(opt_text, out_fmt.create_options, out_fmt.name);
  const std::vector<HashAlgo> algos = hash_algos_from(vm["hash"].as<std::string>(), "--hash");
  AcquireOptions ao;
  if (vm.count("skip-size")) parse_skip_size(vm["skip-size"].as<std::string>(), ao);
  if (vm.count("cpass")) parse_cpass(vm["cpass"].as<std::string>(), ao);
  ao.trim = !vm.count("no-trim");
  ao.scrape = !vm.count("no-scrape");
  ao.reverse = vm.count("reverse") != 0;
  {
    const std::string r = vm["retry-passes"].as<std::string>();
    ao.retry_passes =
        r == "-1" ? -1 : static_cast<int>(parse_count_arg(r, "--retry-passes", 1u << 20));
  }
  if (vm.count("timeout"))
    ao.timeout = parse_interval(vm["timeout"].as<std::string>(), "--timeout");
  if (vm.count("min-read-rate"))
    ao.min_read_rate = static_cast<double>(
        parse_size_arg(vm["min-read-rate"].as<std::string>(), "--min-read-rate"));
  ao.save_interval = parse_interval(vm["mapfile-interval"].as<std::string>(), "--mapfile-interval");
  const bool json_progress = vm.count("progress") && vm["progress"].as<std::string>() == "json";
  auto progress = progress_from(vm);
  ao.status = make_acquire_status(progress != nullptr, json_progress);
  if (json_progress) ao.status_interval = 1;
  ao.cancel = &cancel_flag();
  const std::string cache = vm["cache"].as<std::string>();
  if (cache != "writeback" && cache != "unsafe") {
    throw UsageError("unknown cache mode '" + cache + "' (writeback or unsafe)");
  }
  const bool durable = cache == "writeback";

  // The rescue file: DEST itself for raw, else a working raw beside DEST.
  const std::string work = raw ? dst_path : dst_path + ".vdisk-work";
  // No output may be the source or another output (as convert, issue #16),
  // checked before anything is read or written.
  GuardedEnv guard(Env::posix(durable ? Durability::kFlushed : Durability::kUnsafe));
  {
    using Maker = GuardedEnv::Maker;
    guard.claim_output(raw ? "the destination (the rescue file)" : "the destination", dst_path,
                       raw ? Maker::kCommand : Maker::kEnv);
    if (!raw) guard.claim_output("the working raw", work, Maker::kCommand);
    guard.claim_output("the --mapfile", map_path, Maker::kCommand);
    if (!report_path.empty())
      guard.claim_output("the --hash-file report", report_path, Maker::kCommand);
    guard.add_input(src_path);
  }
  if (!report_path.empty()) check_report_path(report_path, force);
  const bool resume = path_exists(map_path);
  if (!raw && path_exists(dst_path) && !force) {
    throw Error(ErrorKind::kInvalidArgument, dst_path, std::nullopt,
                "destination exists (pass --force to replace it)");
  }
  if (resume && !path_exists(work)) {
    throw Error(ErrorKind::kInvalidArgument, work, std::nullopt,
                "the mapfile " + map_path +
                    " exists but its rescue file does not: resuming needs "
                    "both (or remove the mapfile to start over)");
  }
  if (!resume && path_exists(work)) {
    throw Error(ErrorKind::kInvalidArgument, work, std::nullopt,
                "the rescue file exists but its mapfile " + map_path +
                    " does not: nothing says what it holds (name the run's mapfile, or remove "
                    "the file to start over)");
  }

  BlockDevicePtr source = open_acquire_source(src_path);
  const uint64_t size = source->size();
  ao.sector_size = source->sector_size();
  if (vm.count("sector-size")) {
    const uint64_t b = parse_size_arg(vm["sector-size"].as<std::string>(), "--sector-size");
    if (b == 0 || b > (1u << 20)) throw UsageError("--sector-size must be 1 byte to 1 MiB");
    ao.sector_size = static_cast<uint32_t>(b);
  }
  ao.cluster_size =
      std::max<uint64_t>(ao.sector_size, (64 << 10) / ao.sector_size * ao.sector_size);
  if (vm.count("cluster-size")) {
    const uint64_t c = parse_count_arg(vm["cluster-size"].as<std::string>(), "--cluster-size",
                                       (64ull << 20) / ao.sector_size);
    if (c == 0) throw UsageError("--cluster-size must be at least 1 sector");
    ao.cluster_size = c * ao.sector_size;
  }
  ao.skip_initial = (ao.skip_initial + ao.sector_size - 1) / ao.sector_size * ao.sector_size;

  Env& env = Env::posix();
  ddrescue::RescueMap map(size);
  if (resume) {
    map = ddrescue::RescueMap::from_mapfile(ddrescue::load_mapfile(env, map_path), size);
  }
  const std::vector<std::string> comments = {
      "Mapfile. Written by vdisk " VDISK_VERSION " acquire (GNU ddrescue's format)",
      "Command line: vdisk acquire " + src_path + " " + dst_path + " --mapfile " + map_path,
  };
  ao.save = [&](const ddrescue::RescueMap& m) {
    ddrescue::save_mapfile(env, map_path,
                           ddrescue::format_mapfile(m.to_mapfile(map_path), comments));
  };
  // A signal's watchdog (cli/main.cpp) waits for a save in progress, from
  // the rescue file's sync to the mapfile's rename: an interrupted run
  // leaves the map of everything it read.
  ao.save_scope = [] { return std::make_shared<ExitDeferral>(); };
  // The mapfile exists before the rescue file does: a run killed at any
  // moment leaves either nothing, or a mapfile (all non-tried at first) that
  // says what the rescue file holds.
  if (!resume) {
    ExitDeferral hold;
    ao.save(map);
  }
  std::unique_ptr<RescueSink> sink = open_rescue_file(work, size, !resume, durable);

  ImageInfo src_info = source->info();
  // DEST of a format other than raw, made through `guard`; `from` is what
  // the writer may read ahead (null for the stream, which reads in order).
  auto make_writer = [&](const BlockDevice* from) {
    CreateRequest req;
    req.path = dst_path;
    req.virtual_size = size;
    req.options = options;
    req.overwrite = force;
    req.env = &guard;
    req.source_info = &src_info;
    req.sector_size = ao.sector_size;
    req.source = from;
    req.open_image = [](const std::string& p, const std::string& f) {
      return open_image(p, f, OpenOptions{});
    };
    return out_fmt.create(req);
  };

  // One pass on a healthy source (converters/acquire.h): pass 1's reads go
  // to the writer and the hashers on their threads as they are read.
  std::optional<AcquireStream> stream;
  std::unique_ptr<ImageWriter> writer;
  std::thread streamer;
  CopyResult r;
  std::exception_ptr stream_error;
  const bool fresh = map.bytes('?') == size;
  if (fresh && size > 0 && ao.copy_pass[0] && !ao.reverse && (!raw || !algos.empty())) {
    stream.emplace(size, ao.sector_size, src_path, &cancel_flag());
    if (!raw) writer = make_writer(nullptr);
    CopyOptions copts = copy_options(algos, nullptr, "acquiring");
    copts.readers = 1;  // the stream is read once, in order
    ao.stream = &*stream;
    streamer = std::thread([&, copts = std::move(copts)] {
      try {
        r = copy_device(*stream, writer.get(), copts);
      } catch (...) {
        stream_error = std::current_exception();
        stream->drop();
      }
    });
  }
  // Ends the stream (the engine has dropped it, or it is complete) and
  // waits for its consumer; true when DEST and the hashes came from it.
  auto end_stream = [&]() -> bool {
    if (!stream) return false;
    stream->drop();
    streamer.join();
    const bool whole = stream->complete() && !stream_error;
    if (!whole && writer) {
      writer->abort();
      writer.reset();
    }
    // A failure of the writer itself (a full disk) is the run's error; a
    // stream ended by a read error is the fallback below.
    if (stream->complete() && stream_error) std::rethrow_exception(stream_error);
    return whole;
  };
  if (!raw) {
    std::fprintf(stderr, "vdisk: acquiring into the working raw %s (with %s); %s is %s\n",
                 work.c_str(), map_path.c_str(), dst_path.c_str(),
                 stream ? ("written as pass 1 reads (" + out_fmt.name +
                           "), or converted when the passes end if a read fails")
                              .c_str()
                        : ("converted when the passes end (" + out_fmt.name + ")").c_str());
  }
  if (resume) {
    std::fprintf(stderr, "vdisk: resuming %s: %s rescued, %s to go\n", map_path.c_str(),
                 human_size(map.bytes('+')).c_str(), human_size(size - map.bytes('+')).c_str());
  }
  AcquireResult ar;
  try {
    ar = acquire(*source, *sink, map, ao);
  } catch (...) {
    if (stream) {
      stream->drop();
      streamer.join();
      if (writer) writer->abort();
    }
    throw;
  }
  sink.reset();
  const bool streamed = end_stream();
  if (ar.end == AcquireEnd::kInterrupted) {
    std::fprintf(stderr,
                 "vdisk: interrupted; %s saved (%s rescued): run the same command to resume\n",
                 map_path.c_str(), human_size(map.bytes('+')).c_str());
    return kExitInterrupted;
  }
  if (ar.end == AcquireEnd::kTimedOut) {
    std::fprintf(stderr, "vdisk: %s: no successful read for %s s (--timeout): giving up\n",
                 src_path.c_str(), vm["timeout"].as<std::string>().c_str());
  }
  const uint64_t unrescued = size - map.bytes('+');
  std::printf(
      "acquired %s -> %s: %s of %s rescued, %s unrescued (%zu bad areas), %llu read "
      "errors, %.2f s\n",
      src_path.c_str(), work.c_str(), human_size(map.bytes('+')).c_str(), human_size(size).c_str(),
      human_size(unrescued).c_str(), map.areas('-'),
      static_cast<unsigned long long>(ar.status.read_errors), ar.status.run_time);

  // Without the stream: hash (raw) or convert (other formats) the rescue
  // file through the mapfile: unrescued areas are left out of the output
  // and hashed both as stored and as zeros, as `convert --mapfile` does.
  CopySource src;
  src.options.path = work;
  src.device = open_image(work, "raw", OpenOptions{});
  if (unrescued) {
    src.rescued = std::make_shared<const ddrescue::RescuedDevice>(
        src.device, map.to_mapfile(map_path), ddrescue::BadAreaMode::kZeros);
  }
  const BlockDevice& dev = src.rescued ? *src.rescued : *src.device;
  if (!streamed && !raw) writer = make_writer(&dev);
  if (!streamed && (writer || !algos.empty())) {
    try {
      r = copy_device(dev, writer.get(),
                      copy_options(src, algos, progress.get(), writer ? "converting" : "hashing"));
    } catch (...) {
      if (writer) writer->abort();
      throw;
    }
  }
  if (writer) {
    try {
      writer->finish();
    } catch (...) {
      writer->abort();
      throw;
    }
  }
  if (writer) {
    for (const std::string& note : writer->notes())
      std::fprintf(stderr, "vdisk: note: %s\n", note.c_str());
    std::printf("%s %s -> %s (%s): %s written\n", streamed ? "streamed" : "converted",
                streamed ? src_path.c_str() : work.c_str(), dst_path.c_str(), out_fmt.name.c_str(),
                human_size(r.bytes_written).c_str());
    // The working raw goes once DEST holds everything; with unrescued areas
    // it stays, so a later run (-r N) can go on from the mapfile.
    if (unrescued == 0) {
      ::unlink(work.c_str());
    } else {
      std::fprintf(stderr,
                   "vdisk: %s and %s kept: run again (with -r N to retry bad sectors, --force to "
                   "replace %s) to go on\n",
                   work.c_str(), map_path.c_str(), dst_path.c_str());
    }
  }
  for (auto& hv : r.hashes)
    std::printf("%s (media) = %s\n", upper_case(hash_algo_name(hv.algo)).c_str(), hv.hex.c_str());
  for (auto& hv : r.hashes_zero_filled) {
    std::printf("%s (media, unrescued areas as zeros) = %s\n",
                upper_case(hash_algo_name(hv.algo)).c_str(), hv.hex.c_str());
  }
  if (!report_path.empty()) {
    Report rep = report_of_copy("acquire", start_time, {src_path, src_info.format, "", size, size},
                                r, src.rescued.get(), OnReadError::kStop);
    if (writer) {
      rep.destination = ReportDestination{
          dst_path,        out_fmt.name,           opt_text,       writer->virtual_size(),
          r.bytes_written, writer->output_files(), r.output_hashes};
    } else {
      // The rescue file holds zeros (or what a device held) where nothing
      // was rescued: its content is the zero-filled hash when there is one.
      rep.destination =
          ReportDestination{dst_path,
                            "raw",
                            "",
                            size,
                            map.bytes('+'),
                            {dst_path},
                            r.hashes_zero_filled.empty() ? r.hashes : r.hashes_zero_filled};
    }
    write_report(report_path, rep, force);
  }
  if (unrescued) {
    std::fprintf(stderr, "vdisk: %s: %s not rescued (%s lists them)\n", src_path.c_str(),
                 human_size(unrescued).c_str(), map_path.c_str());
    return kExitDataLost;
  }
  return kExitOk;
}

}  // namespace vdisk::cli
