// The write side of a format: an ImageWriter receives the guest content of a
// new image in increasing offset order and makes the image appear under its
// final name only in finish().
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "formats/core/block_device.h"
#include "formats/core/options.h"

namespace vdisk {

class Env;

using WarningSink = std::function<void(const std::string&)>;
// Writes "vdisk: warning: MESSAGE" to stderr.
void default_warning(const std::string& message);

struct CreateRequest {
  std::string path;           // final destination, or "-" for standard output
  uint64_t virtual_size = 0;  // exact guest size requested
  Options options;            // parsed against the format's create_options
  bool overwrite = false;     // replace an existing destination
  // The user allowed the writer to round the virtual size up when the format
  // cannot hold `virtual_size` exactly (--allow-resize). Without it such a
  // writer must refuse with an error that names the size it would need; with
  // it, it rounds and reports old and new size through notes().
  bool allow_resize = false;
  Env* env = nullptr;  // null: Env::posix()
  WarningSink warn = default_warning;
  // Information about the source, for writers that record it (may be null).
  const ImageInfo* source_info = nullptr;
  // Source's logical sector size.
  uint32_t sector_size = 512;
  // The device whose content the writes will carry, for a writer that must
  // plan its whole layout before the first write (qcow2 to standard output
  // reads it once ahead of the copy). Null when it cannot be read twice
  // (standard input).
  const BlockDevice* source = nullptr;
  // Opens an existing image with its parents (the registry's open_image:
  // formats cannot include the registry), for a writer that refers to one
  // (a qcow2 child over its backing file). Null: such options are refused.
  std::function<BlockDevicePtr(const std::string& path, const std::string& format)> open_image;

  // *env, or Env::posix(); writers take files, the clock and random bytes
  // from it.
  Env& environment() const;
};

class ImageWriter {
 public:
  // Destruction without finish() behaves like abort().
  virtual ~ImageWriter() = default;

  // The guest size the image will have; differs from the request only when the
  // user allowed rounding (see notes()).
  virtual uint64_t virtual_size() const = 0;

  // Writes guest bytes [offset, offset + len). Contract: calls (write and
  // write_zeroes together) come in strictly increasing, non-overlapping offset
  // order from one thread; offset and len are multiples of 512 except for a
  // final piece that ends at virtual_size(). Ranges never written read as zero.
  virtual void write(uint64_t offset, const void* buf, size_t len) = 0;

  // Declares [offset, offset + len) zero. Writers leave it unallocated (or mark
  // it zero where the format can say so). Same ordering contract as write().
  virtual void write_zeroes(uint64_t offset, uint64_t len) {}

  // Declares [offset, offset + len) unreadable in the source (a read error
  // under --on-read-error continue, an unrescued area of a ddrescue
  // mapfile): the image reads as zeros there, and a format that records such
  // ranges (E01's error2 section) records it. Same ordering contract as
  // write(). The default writes nothing (the range reads as zero).
  virtual void mark_unreadable(uint64_t offset, uint64_t len) {}

  // Flushes, fsyncs and renames every output file into place. After it, the
  // image is complete under its final name(s).
  virtual void finish() = 0;

  // Removes every partial output. Safe after a failed write or finish().
  virtual void abort() = 0;

  // Human notes the writer wants the user to see (padding applied, etc.).
  virtual std::vector<std::string> notes() const { return {}; }

  // The files the writer produces (final names), for reporting.
  virtual std::vector<std::string> output_files() const = 0;
};

}  // namespace vdisk
