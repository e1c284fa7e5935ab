// Changing a qcow2 image in place (vdisk resize, rebase, commit): refcount
// edits and a writer of whole clusters into the active layer. New clusters
// are taken at the end of the file and counted before anything points at
// them, so a crash leaves at worst leaked clusters ("Host cluster
// management" in docs/interop/qcow2.rst; `qemu-img check -r leaks` reclaims
// them).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "formats/core/file.h"
#include "formats/core/image_updater.h"
#include "formats/qcow2/qcow2_reader.h"

namespace vdisk::qcow2 {

// Refcount updates: the refcount table read once, blocks loaded on demand,
// new blocks appended at the end of the file. Nothing is written until
// flush(). Refuses (kUnsupported) a cluster beyond what the refcount table
// can describe: growing the table is not done.
class RefcountEditor {
 public:
  // `next_cluster`: the first host cluster past the end of the file.
  RefcountEditor(UpdateFile& file, const Header& h, uint64_t next_cluster);
  // Takes `n` fresh clusters at the end of the file (refcount 1); returns
  // the host offset of the first.
  uint64_t allocate(uint64_t n);
  // Adds +1 or -1 to host cluster `c`'s refcount.
  void add(uint64_t c, int delta);
  // The refcount of host cluster `c`.
  uint64_t get(uint64_t c);
  // Writes the changed blocks, then (after a sync) the table entries of new
  // blocks. The caller syncs afterwards.
  void flush();
  // One past the last cluster taken, in bytes.
  uint64_t end_of_file() const { return next_ * h_.cluster_size(); }

 private:
  std::vector<uint8_t>& block(uint64_t bi);
  UpdateFile& file_;
  Header h_;
  uint64_t next_;
  uint64_t per_block_ = 0;
  std::vector<uint64_t> table_;
  std::map<uint64_t, std::vector<uint8_t>> blocks_;
  std::vector<uint64_t> new_entries_;
};

// FormatDescriptor::update: an ImageUpdater over the active layer of the
// Qcow2Device `layer` opened from `file`. Refuses images with internal
// snapshots (shared tables), extended L2 entries, an external data file,
// encryption, or the dirty/corrupt bits.
std::unique_ptr<ImageUpdater> update_qcow2(UpdateFile& file, const BlockDevice& layer);

}  // namespace vdisk::qcow2
