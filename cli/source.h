// The whole-source read shared by convert, hash and verify: the options that
// say how to read the source (standard input and its --size, --mapfile,
// --on-read-error, --error-map), checked before any work; opening it; the
// CopyOptions for copy_device; and what to say about read errors afterwards.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "converters/convert.h"

namespace vdisk::cli {

// Adds --size (the byte count of a raw image read from standard input, '-';
// with a suffix or without: 64M, 1G, 1048576).
void add_stdin_size_option(po::options_description& desc);
// Adds --on-read-error stop|continue and --error-map OUT.map.
void add_read_error_options(po::options_description& desc);

// How to read the source, from the options alone.
struct SourceOptions {
  std::string path;  // as typed; "-" is standard input
  bool is_stream = false;
  uint64_t stream_size = 0;  // --size, for standard input
  OnReadError on_read_error = OnReadError::kStop;
  std::string error_map;  // --error-map, or empty
  bool force = false;     // --force: replace an existing --error-map
};

// Reads and checks the options of the source named by vm[key], before any
// file is opened. Throws UsageError for: '-' without --size (or where
// `stdin_ok` is false), --size without '-', -f other than raw on standard
// input, --mapfile on standard input, an --on-read-error other than stop or
// continue, continue on standard input (a pipe cannot be read again in
// pieces), --error-map without continue; and Error when the --error-map file
// cannot be made (check_report_path).
SourceOptions source_options_from(const po::variables_map& vm, const std::string& key,
                                  bool stdin_ok);

// An opened source.
struct CopySource {
  SourceOptions options;
  BlockDevicePtr device;  // the image, or standard input as a raw stream
  // With --mapfile: `device` seen through it (unrescued areas listed on
  // stderr when opened); null without. copy_device reads `device`, and
  // copy_options hands it the unrescued areas.
  std::shared_ptr<const ddrescue::RescuedDevice> rescued;
};

// Declares to `guard`, before anything is opened, every file the command
// writes: `image_out` (the destination; empty for none), `report`
// (--hash-file; empty for none), the --error-map file, and the --index file
// when it does not exist yet (written after the first pass). Throws
// UsageError when two of them are standard output ('-'), and Error when two
// are one file; the source's files are checked as `guard` opens them.
void claim_outputs(GuardedEnv& guard, const po::variables_map& vm, const SourceOptions& options,
                   const std::string& image_out, const std::string& report);

// Opens the source `options` describe (open_image with `open`, or standard
// input), through --mapfile when given (read through open.environment()).
CopySource open_copy_source(const po::variables_map& vm, const SourceOptions& options,
                            const OpenOptions& open);

// The CopyOptions of a plain read (the output of a conversion, re-read by
// --verify): hashes `algos`, `progress` (may be null) under `phase`, the
// cancel flag, read errors stop.
CopyOptions copy_options(std::vector<HashAlgo> algos, ProgressSink* progress,
                         const std::string& phase);
// The CopyOptions of a read of `src`: the above, and the mapfile's unrescued
// areas, the read-error policy with its hint, one reader for a stream.
CopyOptions copy_options(const CopySource& src, std::vector<HashAlgo> algos, ProgressSink* progress,
                         const std::string& phase);

// After a copy with read errors: one stderr line per merged range
// ("vdisk: PATH: read error at offset X, N bytes WHAT"; at most 20, then
// "... and K more"), a total, and the --error-map file (a GNU ddrescue
// mapfile: '+' where the copy read the source, '*' non-trimmed at each read
// error, and the mapfile's own unrescued areas with their statuses). Returns
// kExitDataLost when there were read errors, kExitOk otherwise.
int finish_read_errors(const CopySource& src, const CopyResult& r, const char* what);

// The hashes of --hash / --algo: parse_hash_algos, its errors naming
// `option`.
std::vector<HashAlgo> hash_algos_from(const std::string& text, const std::string& option);

}  // namespace vdisk::cli
