// Reading qcow2 images (versions 2 and 3): L1/L2 lookup with an L2 cache of
// fixed size, the zero flag, compressed clusters (deflate, zstd), extended L2
// entries (32 subclusters), internal snapshots, external data files. One
// layer: a cluster that is not allocated is kUnallocated, and
// Qcow2Device::parent_spec() names the backing file for the registry.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "formats/core/block_device.h"
#include "formats/core/file.h"
#include "formats/core/format.h"
#include "formats/core/lru_cache.h"
#include "formats/qcow2/qcow2_layout.h"

namespace vdisk::qcow2 {

struct Snapshot {
  uint64_t entry_offset = 0;  // of its table entry, for messages
  std::string id, name;
  uint64_t l1_table_offset = 0;
  uint32_t l1_size = 0;
  uint32_t date_sec = 0, date_nsec = 0;
  uint64_t vm_clock_nsec = 0;
  uint64_t vm_state_size = 0;
  uint64_t disk_size = 0;  // the image's size when taken (extra data, else the header's)
};

// Everything open learns from the header, its extensions and the tables it
// names.
struct ImageMeta {
  Header header;
  std::string backing_file;    // empty: none
  std::string backing_format;  // from the backing format extension
  std::string data_file;       // external data file name, as stored
  std::string data_file_path;  // as resolved and opened
  uint32_t bitmaps = 0;        // from the bitmaps extension (not read further)
  std::vector<Snapshot> snapshots;
  // The snapshot being read (--snapshot), or -1 for the active image.
  int snapshot = -1;
  uint64_t virtual_size = 0;
  uint64_t l1_table_offset = 0;  // of the L1 table in use
  uint32_t l1_size = 0;
};

// A byte range of the image file that holds metadata; sorted, disjoint.
struct MetaRange {
  uint64_t start = 0, end = 0;
  std::string what;
};

// An opened qcow2 image. Immutable after construction except for the L2 and
// decompressed-cluster caches, each guarded by its mutex; every method is
// thread-safe.
class Qcow2Device final : public BlockDevice {
 public:
  Qcow2Device(std::shared_ptr<const File> file, std::shared_ptr<const File> data, ImageMeta meta,
              std::vector<uint64_t> l1, std::vector<MetaRange> metadata);

  uint64_t size() const override { return meta_.virtual_size; }
  ImageInfo info() const override;
  std::string label() const override { return file_->path(); }
  // The backing file, when there is one: its name relative to the image's
  // folder, opened as the backing format extension says (probed otherwise).
  // qcow2 records no identity of its backing file, so none is checked.
  std::shared_ptr<const ParentSpec> parent_spec() const override;

  const ImageMeta& meta() const { return meta_; }

  // L2 tables loaded from the file so far (all devices of this process), for
  // tests that check the cache keeps a sequential reader from loading a
  // table twice.
  static uint64_t l2_loads();

 protected:
  void do_read(uint64_t offset, void* buf, size_t len) const override;
  Extent do_block_status(uint64_t offset, uint64_t len) const override;

 private:
  using Table = std::shared_ptr<const std::vector<uint64_t>>;
  // The L2 table of L1 entry `index` (validated on load), or null when the
  // L1 entry is empty.
  Table l2_table(uint64_t index) const;
  Table load_l2(uint64_t index) const;
  // Status of the guest bytes [offset, offset + len) inside one cluster,
  // as the longest prefix of one type.
  Extent cluster_status(const Table& t, uint64_t offset, uint64_t len) const;
  std::shared_ptr<const std::vector<uint8_t>> compressed_cluster(uint64_t guest_cluster,
                                                                 uint64_t entry) const;
  // Checks that a host range of the image file holds no metadata.
  void check_not_metadata(uint64_t start, uint64_t len, uint64_t entry_at,
                          const std::string& what) const;

  std::shared_ptr<const File> file_;
  std::shared_ptr<const File> data_;  // file_, or the external data file
  ImageMeta meta_;
  std::vector<uint64_t> l1_;
  std::vector<MetaRange> metadata_;
  uint64_t cluster_size_;
  uint32_t cluster_bits_;
  uint64_t l2_entries_;
  uint32_t entry_words_;  // 1, or 2 with extended L2 entries
  uint64_t clusters_;     // guest clusters

  mutable LruCache<uint64_t, std::vector<uint64_t>> l2_cache_;
  mutable LruCache<uint64_t, std::vector<uint8_t>> cluster_cache_;
};

// Opens and validates a qcow2 image: every header field and every offset is
// checked against the file before anything is allocated, and the tables the
// header names (L1, refcount table and blocks, snapshot table, L2 tables)
// may not overlap each other or the header. Throws Error(kNotThisFormat)
// without the magic, kCorrupt for broken structures (and images QEMU marked
// corrupt), kUnsupported for encryption and unknown incompatible features,
// kNotFound for a missing external data file or --snapshot name.
BlockDevicePtr open_qcow2(std::shared_ptr<const File> file, const OpenOptions& opts);
// FormatDescriptor::resize (qcow2_resize.cpp): `layer` is the Qcow2Device
// opened from `file`. Grows the L1 table into new clusters when needed;
// refuses dirty, corrupt, external-data-file and bitmap images.
void resize_qcow2(const ResizeRequest& req);

// Probe: the magic "QFI\xfb" and version 2 or later (open refuses the
// versions it does not read, by name).
int probe_qcow2(const ProbeInput& in);

}  // namespace vdisk::qcow2
