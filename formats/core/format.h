// What a format folder provides: a FormatDescriptor (name, probe, open,
// create, options) and the inputs those functions receive. The registry
// (formats/registry.h) lists the built-in descriptors and drives them; a
// format includes only formats/core.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "formats/core/block_device.h"
#include "formats/core/check.h"
#include "formats/core/error.h"
#include "formats/core/file.h"
#include "formats/core/image_updater.h"
#include "formats/core/options.h"
#include "formats/core/writer.h"

namespace vdisk {

inline constexpr size_t kProbeHeadBytes = 64 * 1024;
inline constexpr size_t kProbeTailBytes = 64 * 1024;

// Probe scores: a format's own signature (magic at a fixed place, checksummed
// footer) scores kProbeSignature; content that other containers may wrap (ISO
// 9660 inside a fixed VHD) scores kProbeContent; raw always kProbeFallback.
inline constexpr int kProbeSignature = 100;
inline constexpr int kProbeContent = 50;
inline constexpr int kProbeFallback = 1;

struct ProbeInput {
  std::string path;
  uint64_t file_size = 0;
  std::span<const uint8_t> head;  // bytes [0, min(size, 64 KiB))
  std::span<const uint8_t> tail;  // the last min(size, 64 KiB) bytes
};

// A piece of a device's content whose stored checksum does not match (an
// E01 chunk with a bad Adler-32 or zlib stream): `offset` and `length` in
// the device, `message` naming the file, its offset and what is wrong.
struct DamagedData {
  uint64_t offset = 0;
  uint64_t length = 0;
  std::string message;
};

struct OpenOptions {
  Env* env = nullptr;  // null: Env::posix()
  // Extent and parent names may resolve outside the referencing file's folder
  // (absolute paths, "..", symlinks out). Off by default: an image must not
  // make vdisk read arbitrary files.
  bool allow_outside_paths = false;
  // An explicit parent image for the differencing image being opened
  // (overrides the search; applies to that image only, not to its ancestors).
  std::string parent_path;
  // --snapshot: read the image as it was when this internal snapshot (ID or
  // name) was taken. Applies to the image being opened, not to its parents;
  // formats without internal snapshots (FormatDescriptor::has_snapshots)
  // refuse it.
  std::string snapshot;
  WarningSink warn = default_warning;
  // Compressed raw images (gzip, bzip2, zstd without sizes) need an index of
  // access points built by one decoding pass. Empty: kept in memory only.
  // Else this sidecar file is read when it exists (and must belong to the
  // image) or written there after the pass; nothing is ever written beside
  // a source unless named here.
  std::string index_path;
  // The most bytes an open may decode to learn the layout (the index pass of
  // gzip, bzip2 and zstd without sizes); past it the open fails with
  // Error(kUnsupported). 0: no limit, what every command uses: a 32 MiB gzip
  // can rightly hold a 34 GB disk, and `gzip -d` itself takes minutes on it.
  // The fuzz targets set it, so such an input costs them seconds, not minutes.
  uint64_t decode_limit = 0;
  // `vdisk info` sets this: a differencing image whose parent cannot be found
  // still opens, with a placeholder parent (make_missing_parent) whose reads
  // fail with the original "not found" error, so info can show the image's own
  // fields and its parent locators; each such error is appended here. Never
  // set for commands that read content.
  std::vector<std::string>* missing_parents = nullptr;
  // `vdisk verify` sets this: a format that checksums its content reports
  // each damaged piece here and delivers what it could decode (zeros where
  // it could not) instead of failing the read with Error(kCorrupt), so one
  // pass finds every damaged piece. Called from the reading threads.
  std::function<void(const DamagedData&)> on_damaged_data;
  // Chain bookkeeping of the registry: how deep in a chain this open is, and
  // File::identity() of the images below which it is opened (loop check).
  int depth = 0;
  std::vector<std::pair<uint64_t, uint64_t>> ancestors;

  Env& environment() const;
};

// Which virtual sizes a writer makes, as data: the registry's round-trip test
// (tests/test_roundtrip.cpp) makes disks of the sizes a writer declares and
// expects every other size to be refused with Error(kInvalidArgument) naming
// it, or rounded up to the unit under CreateRequest::allow_resize.
struct SizeRule {
  // The option values the rule applies to, as `-o` text ("target=azure");
  // empty: every option set.
  std::string when;
  // Virtual sizes are whole multiples of this many bytes.
  uint64_t unit = 1;
  // The smallest virtual size the writer makes; 1 or more when it cannot
  // make an empty disk.
  uint64_t min_size = 0;
  // A size off the unit is padded (with a note) even without allow_resize.
  bool pads = false;
  // Why, for the reader of the descriptor and of a failing test.
  std::string why;
};

// What FormatDescriptor::resize gets, as data.
//
// The caller (vdisk resize) has opened the image as this format: `file` is
// the image's own file (the one named on the command line), open read-write
// and locked against a second updater (Env::open_update); `layer` is its own
// layer opened from `file` with `opts` (so it validated; parents not
// attached). It has checked that new_size differs from the current size,
// that a shrink was asked for (--shrink) and that the part cut off reads as
// zeros in the whole chain, and that a differencing layer does not grow.
//
// The format refuses (Error kUnsupported, naming the limit) what it cannot
// do before it writes anything (formats/core/resize.h has the common
// checks). It writes in an order that survives a crash at any write: new
// tables (and new files) first, synced, then the header or descriptor that
// makes them current, so the image opens at the old or the new size.
// Files other than `file` (a VMDK's extent files, a descriptor replaced
// whole) are resolved with resolve_sibling(opts, file.path(), ...), opened
// or created through opts.environment() (open_update, create_output without
// overwrite for a new file, with overwrite to replace one atomically), and
// random identifiers (GUIDs) come from that Env too.
struct ResizeRequest {
  UpdateFile& file;
  const BlockDevice& layer;
  uint64_t new_size = 0;
  const OpenOptions& opts;
};

struct FormatDescriptor {
  std::string name;                  // "vmdk"
  std::vector<std::string> aliases;  // "vpc" for vhd
  std::string description;
  std::vector<std::string> extensions;  // without dots, lower case
  std::vector<std::string> subformats;  // names accepted by -o subformat=
  // Never throws; 0 means "not this format".
  int (*probe)(const ProbeInput& in) = nullptr;
  // Opens one layer and validates everything before allocating; null when
  // not readable. A differencing layer does not open its parent: its
  // device's parent_spec() says how to find it (see formats/core/parent.h).
  BlockDevicePtr (*open)(std::shared_ptr<const File> file, const OpenOptions& opts) = nullptr;
  // Creates a writer; null when not writable.
  std::unique_ptr<ImageWriter> (*create)(const CreateRequest& req) = nullptr;
  std::vector<OptionSpec> create_options;
  bool can_stream = false;  // create() accepts "-" (standard output)
  // The sizes create() makes (all rules that apply hold together); none:
  // any size from 0 bytes.
  std::vector<SizeRule> size_rules;
  // Option sets (`-o` text) the round-trip test writes besides every value of
  // every kEnum and kBool option: kSize/kInt values that change the layout
  // ("block_size=1M"), and combinations worth their time.
  std::vector<std::string> roundtrip_options;
  bool has_snapshots = false;  // open() honours OpenOptions::snapshot
  // The format whose reader opens what create() writes with `options`, when
  // not this one (raw with compression=gzip writes a gzip image); null: this
  // format always.
  std::string (*read_as)(const Options& options) = nullptr;
  // The container's own consistency check (formats/core/check.h); null: a
  // format with no tables to cross-check, whose open() and reads are the
  // check.
  CheckFunction check = nullptr;
  // Changes the virtual size of the image to req.new_size in place (vdisk
  // resize); null when the format cannot. See ResizeRequest for what the
  // caller has checked and what the format must do.
  void (*resize)(const ResizeRequest& req) = nullptr;
  // Writes into the image's own layer in place (vdisk rebase, commit): an
  // updater over `file`, from which `layer` was opened; null when the format
  // cannot. Refuses (Error kUnsupported) images it cannot change safely.
  std::unique_ptr<ImageUpdater> (*update)(UpdateFile& file, const BlockDevice& layer) = nullptr;
};

// Resolves a file name found inside `referencing_file` (a VMDK extent, a
// parent hint) relative to that file's folder. Unless opts.allow_outside_paths,
// refuses absolute names, ".." components and symlinks that lead outside the
// folder, with an Error(kInvalidArgument) naming `what` and the reason.
std::string resolve_sibling(const OpenOptions& opts, const std::string& referencing_file,
                            const std::string& name, const std::string& what);

// For paths written on Windows ("C:\\VMs\\base.vhd", ".\\base.vhd"): the
// path with backslashes turned into '/' and a drive prefix removed.
std::string windows_path_to_posix(const std::string& path);

}  // namespace vdisk
