// vdisk resize of a qcow2 image, in place ("Header" and "Cluster mapping" of
// docs/interop/qcow2.rst). The virtual size is the header's `size`; the L1
// table must have an entry for every L2 table's worth of it. Growing past
// the L1 table writes a bigger L1 into fresh clusters at the end of the file
// (refcounted, new refcount blocks made as needed), syncs, and only then
// rewrites the header fields that name it (size, l1_size, l1_table_offset:
// bytes 24..47, one sector); the old L1's clusters are freed afterwards. A
// crash before the header write leaves the old image plus leaked clusters
// (what `qemu-img check` calls leaks, harmless); after it, the new one.
// Shrinking only lowers `size`: the caller checked the cut part reads as
// zeros, and the L1 may stay longer than needed (the spec asks for at least).
#include <algorithm>

#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/resize.h"
#include "formats/qcow2/qcow2_inplace.h"

namespace vdisk::qcow2 {

namespace {}  // namespace

void resize_qcow2(const ResizeRequest& req) {
  UpdateFile& file = req.file;
  const uint64_t new_size = req.new_size;
  const ImageMeta& m = resize_layer<Qcow2Device>(req, "qcow2 image").meta();
  const Header& h = m.header;
  auto refuse = [&](const std::string& why) { refuse_resize(req, std::nullopt, why); };
  check_resize_size(req, "qcow2", 512);
  if (h.incompatible & kIncompatDirty)
    refuse("the image is marked dirty (refcounts may be stale): run 'qemu-img check -r all'");
  if (h.incompatible & kIncompatCorrupt) refuse("the image is marked corrupt");
  if (!m.data_file.empty()) refuse("it keeps its data in an external data file");
  if (m.bitmaps || (h.autoclear & kAutoclearBitmaps))
    refuse("it holds persistent dirty bitmaps, which are sized to the disk");
  if (new_size < m.virtual_size && !m.snapshots.empty())
    refuse("shrinking an image with internal snapshots");

  const uint64_t cs = h.cluster_size();
  const uint64_t per_l1 = cs * h.l2_entries();
  const uint64_t need = (new_size + per_l1 - 1) / per_l1;
  if (need * 8 > kMaxL1Bytes)
    refuse("an L1 table of " + std::to_string(need) + " entries passes QEMU's limit of " +
           std::to_string(kMaxL1Bytes) + " bytes");

  uint8_t hdr[24];  // size, crypt_method, l1_size, l1_table_offset
  file.read_at(kHdrSize, hdr, sizeof hdr);
  store_be64(hdr + 0, new_size);
  if (need <= h.l1_size) {
    file.write_at(kHdrSize, hdr, sizeof hdr);
    file.sync();
    return;
  }

  // A new L1: the old entries, then zeros.
  std::vector<uint8_t> l1(align_up(need * 8, cs), 0);
  file.read_at(h.l1_table_offset, l1.data(), uint64_t{h.l1_size} * 8);
  RefcountEditor refs(file, h, align_up(file.size(), cs) / cs);
  const uint64_t l1_offset = refs.allocate(l1.size() / cs);
  file.write_at(l1_offset, l1.data(), l1.size());
  refs.flush();
  if (file.size() < refs.end_of_file()) file.set_size(refs.end_of_file());
  file.sync();

  store_be32(hdr + 12, static_cast<uint32_t>(need));
  store_be64(hdr + 16, l1_offset);
  file.write_at(kHdrSize, hdr, sizeof hdr);
  file.sync();

  // The old table is garbage now; a crash before this leaves a leak only.
  const uint64_t old_clusters = align_up(uint64_t{h.l1_size} * 8, cs) / cs;
  for (uint64_t i = 0; i < old_clusters; ++i) refs.add(h.l1_table_offset / cs + i, -1);
  refs.flush();
  file.sync();
}

}  // namespace vdisk::qcow2
