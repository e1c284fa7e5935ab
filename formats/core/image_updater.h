// Changing an existing image's own layer in place (vdisk rebase, vdisk
// commit): whole units written into the layer, then the parent it names.
// A format that can do it returns one from FormatDescriptor::update. Only the
// commands whose job is to change an image use it, on a file opened with
// Env::open_update.
#pragma once

#include <cstdint>
#include <string>

namespace vdisk {

class BlockDevice;

class ImageUpdater {
 public:
  virtual ~ImageUpdater() = default;
  // The unit of write(): offsets and lengths are multiples of it (the last
  // unit may run past the virtual size; its tail is ignored).
  virtual uint64_t granularity() const = 0;
  // Stores `len` bytes of guest data at guest `offset` in this layer,
  // allocating where needed. New space is written before the tables that
  // point at it; tables are written by flush().
  virtual void write(uint64_t offset, const void* buf, size_t len) = 0;
  // Writes the tables changed by write() and syncs: after it returns, the
  // layer reads the written data.
  virtual void flush() = 0;
  // Makes the layer name `name` (as stored: relative to the image's folder)
  // as its parent, of format `format` (empty: none recorded), writing only
  // the header fields that say so, after a sync. `parent` is the new
  // parent's own layer (null with an empty name), for the formats that
  // record its identity (VMDK CID, VHD unique ID, VDI UUIDs). Throws
  // Error(kUnsupported) when the format cannot (a name too long for the room
  // the header has, a parent of another format where the identity is of
  // the format's own kind, no parent where the format needs one).
  virtual void set_parent(const std::string& name, const std::string& format,
                          const BlockDevice* parent) = 0;
};

}  // namespace vdisk
