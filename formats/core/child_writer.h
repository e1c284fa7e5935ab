// Children (differencing images) written through a format's ordinary writer.
// The writer is fed a whole guest stream in offset order, like any other; a
// ChildFilter in front of it passes on only the units whose content differs
// from the backing image, whole, so that every unit the child does not
// store reads as its parent. VHD blocks, VDI blocks and VMDK grains are
// such units: a unit is either the parent's or wholly the child's.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "formats/core/block_device.h"
#include "formats/core/options.h"
#include "formats/core/writer.h"

namespace vdisk {

// Opens the backing image `name` of a child being written to req.path: a
// relative name is taken relative to the output's folder (as the child's
// reader will resolve it), `format` empty probes. Refuses (kInvalidArgument)
// when the request cannot open images, when `name` names the output itself,
// and (kUnsupported) when the backing's top layer is not of format
// `own_format` (the child records the parent's identity in that format's
// terms) or its size is not req.virtual_size (the child has its parent's
// size: `format_label` names the format in the message).
// The `-o` options of a writer that makes children: backing_file (the
// parent, relative to the output's folder; what `vdisk create -b` sets) and
// backing_fmt. `what` says what such a child is ("a differencing VHD").
std::vector<OptionSpec> backing_options(const std::string& what);
// req.options' backing_file; refuses backing_fmt without it (`label` names
// the format in the message).
std::string backing_name(const CreateRequest& req, const std::string& label);

struct Backing {
  BlockDevicePtr device;  // the whole chain
  std::string path;       // as opened: `name` joined to the output's folder
  // The backing's own top layer (a format's device type: VhdDevice...).
  const BlockDevice& layer() const { return *device->layers().front(); }
};
Backing open_backing(const CreateRequest& req, const std::string& name, const std::string& format,
                     const std::string& own_format, const std::string& format_label);

// An ImageWriter in front of `inner` (a writer of a child of `backing`
// whose unwritten units read as the parent): write() and write_zeroes()
// are gathered into units of `unit` bytes (aligned from offset 0; the last
// one ends at the virtual size); a unit is passed to inner->write() whole
// when its content differs from what `backing` reads there (zeros past the
// backing's end), and dropped otherwise. Zero ranges over backing ranges
// that read as zero are skipped without reading.
class ChildFilter final : public ImageWriter {
 public:
  ChildFilter(std::unique_ptr<ImageWriter> inner, BlockDevicePtr backing, uint64_t unit);

  uint64_t virtual_size() const override { return inner_->virtual_size(); }
  void write(uint64_t offset, const void* buf, size_t len) override;
  void write_zeroes(uint64_t offset, uint64_t len) override;
  // An unreadable source range reads as zeros in the image (writer.h): in a
  // child that is stored like any zero range over parent data.
  void mark_unreadable(uint64_t offset, uint64_t len) override { write_zeroes(offset, len); }
  void finish() override;
  void abort() override { inner_->abort(); }
  std::vector<std::string> notes() const override { return inner_->notes(); }
  std::vector<std::string> output_files() const override { return inner_->output_files(); }

 private:
  // Makes unit `u` the gathered one, passing on the previous one first.
  void start_unit(uint64_t u);
  // Passes the gathered unit on if it differs from the backing's.
  void flush_unit();
  // The first offset in [offset, limit) where the backing stores data
  // (past its end it reads as zeros), or `limit`.
  uint64_t backing_zero_until(uint64_t offset, uint64_t limit) const;

  std::unique_ptr<ImageWriter> inner_;
  BlockDevicePtr backing_;
  uint64_t unit_;
  uint64_t current_ = ~uint64_t{0};  // the unit gathered in buf_, or none
  std::vector<uint8_t> buf_, theirs_;
};

}  // namespace vdisk
