// The "iso" image format (an ISO is also a disk image: info, hash, convert and
// map read it like raw) and the "iso9660" file system (ls, cat, extract, FUSE
// tree mode).
#include <cstring>

#include "formats/core/error.h"
#include "formats/core/file.h"
#include "formats/core/file_tree.h"
#include "formats/core/format.h"
#include "formats/iso9660/iso_layout.h"
#include "formats/iso9660/iso_tree.h"

namespace vdisk::iso9660 {

namespace {

// ECMA-119 8.1: the first volume descriptor at 0x8000 carries "CD001" at byte
// 1 — also in hybrid images whose system area holds an MBR or GPT, which is
// why the probe looks only there. A container that wraps an ISO (a fixed VHD)
// scores kProbeSignature and wins.
int probe(const ProbeInput& in) {
  if (in.head.size() < kFirstDescriptorOffset + 7) return 0;
  const uint8_t* d = in.head.data() + kFirstDescriptorOffset;
  if (std::memcmp(d + vd::kStdId, kStandardId, 5) != 0) return 0;
  if (d[vd::kVersion] != 1 && d[vd::kVersion] != 2) return 0;
  return kProbeContent;
}

// A FileDevice whose info() carries the volume details.
class IsoDevice final : public BlockDevice {
 public:
  IsoDevice(std::shared_ptr<const File> file)
      : file_(file), base_(std::make_shared<FileDevice>(file, 0, file->size(), "iso")) {
    vds_ = read_volume_descriptors(*base_, file->path());
  }
  uint64_t size() const override { return base_->size(); }
  ImageInfo info() const override {
    ImageInfo i = base_->info();
    i.format = "iso";
    i.details = volume_details(*base_, file_->path(), vds_);
    return i;
  }
  std::string label() const override { return file_->path(); }

 protected:
  void do_read(uint64_t offset, void* buf, size_t len) const override {
    base_->read(offset, buf, len);
  }
  Extent do_block_status(uint64_t offset, uint64_t len) const override {
    return base_->block_status(offset, len);
  }

 private:
  std::shared_ptr<const File> file_;
  std::shared_ptr<FileDevice> base_;
  VolumeDescriptors vds_;
};

BlockDevicePtr open_iso(std::shared_ptr<const File> file, const OpenOptions&) {
  return std::make_shared<IsoDevice>(std::move(file));
}

int probe_fs(const BlockDevice& dev) {
  return looks_like_iso(dev) ? kProbeSignature : 0;
}

std::unique_ptr<FileTree> open_fs(BlockDevicePtr dev, const std::string& label) {
  return open_iso_tree(std::move(dev), label);
}

std::unique_ptr<FileTree> open_fs_with(BlockDevicePtr dev, const std::string& label,
                                       const TreeOptions& opts) {
  return open_iso_tree(std::move(dev), label, opts);
}

}  // namespace

const FormatDescriptor& descriptor() {
  static const FormatDescriptor d{
      .name = "iso",
      .aliases = {"iso9660"},
      .description =
          "ISO 9660 CD/DVD image (Joliet, Rock Ridge, El Torito, hybrid); write with 'vdisk mkiso'",
      .extensions = {"iso"},
      .subformats = {},
      .probe = probe,
      .open = open_iso,
      .create = nullptr,
      .create_options = {},
      .can_stream = false,
      .size_rules = {},
      .roundtrip_options = {},
  };
  return d;
}

const FileSystemDescriptor& filesystem() {
  static const FileSystemDescriptor d{"iso9660", probe_fs, open_fs, open_fs_with};
  return d;
}

}  // namespace vdisk::iso9660
