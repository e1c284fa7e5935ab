// Parent chains, decided once for every format. A differencing layer (VMDK
// snapshot, differencing VHD/VHDX/VDI, qcow2 with a backing file) answers for
// its own bytes only and describes its parent with a ParentSpec: where the
// parent may be (candidate names from hints and locators, or a search of the
// folder) and how to recognise it (CID, unique ID, DataWriteGuid, UUID).
// locate_parent() applies the folder confinement, --parent and one error
// format to every format; LayeredDevice composes child over parent.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "formats/core/block_device.h"
#include "formats/core/format.h"

namespace vdisk {

// One place the parent may be.
struct ParentCandidate {
  // Where the name came from, for messages: "parentFileNameHint 'base.vmdk'".
  std::string source;
  // The file name to try, relative to the child's folder (an absolute name is
  // tried only with OpenOptions::allow_outside_paths). Empty when the
  // locator held nothing usable; `refusal` then says why.
  std::string name;
  std::string refusal;
};

enum class ParentVerdict {
  kMatch,         // this is the parent
  kMismatch,      // a file of the right format, but not this child's parent
  kUnverifiable,  // another format: its identity cannot be compared
};

struct ParentCheck {
  ParentVerdict verdict = ParentVerdict::kMatch;
  // kMismatch / kUnverifiable: why, as a clause ("unique ID X is not the
  // expected Y", "is raw, not VHD").
  std::string why;
  // kMatch with a caveat the user should see ("was modified after this
  // snapshot was taken").
  std::string warning;
};

struct ParentSpec {
  // The child as the "not found" message names it: "differencing VHD (unique
  // ID …)" → "parent of this differencing VHD (unique ID …) not found".
  std::string child;
  // Where in the child the reference is stored, for messages.
  std::optional<uint64_t> offset;
  // Names to try, in order; the same path reached from several candidates is
  // tried once.
  std::vector<ParentCandidate> candidates;
  // After the candidates, every file of the child's folder whose extension
  // is one of these (lower case) is examined (VirtualBox links a VDI to its
  // parent by UUID only).
  std::vector<std::string> search_extensions;
  // Format to open candidates as; empty: probe.
  std::string format;
  // Judges a candidate opened as one layer (never the composed chain).
  std::function<ParentCheck(const BlockDevice& candidate)> check;
  // A candidate found by the search whose identity does not match is still
  // used, with a warning (VMDK: VMware changes a parent's CID when it is
  // written; the snapshot's parentCID then records an older one). Otherwise
  // it is passed over.
  bool mismatch_is_warning = false;
};

// One layer of an image, opened by the registry: its parents not attached.
struct OpenedLayer {
  BlockDevicePtr device;
  std::pair<uint64_t, uint64_t> identity{0, 0};  // File::identity() of its file
};
// Opens one layer (the registry's open_layer): refuses a file whose identity
// is among opts.ancestors. Throws like open_image().
using LayerOpener = std::function<OpenedLayer(const std::string& path, const std::string& format,
                                              const OpenOptions& opts)>;

struct LocatedParent {
  OpenedLayer layer;  // the parent's own layer (its parents not attached)
  std::string path;
};

// Finds the parent of `child` (opened from `child_path`) as `spec` says,
// opening candidates with `open_layer` under `opts` (depth + 1, no
// parent_path). With opts.parent_path the user's file is taken: a kMismatch
// is an Error(kMismatch) (a warning under mismatch_is_warning), kUnverifiable
// a warning. Throws Error(kNotFound)
// "parent of this CHILD not found; tried: …" naming every candidate and what
// became of it.
LocatedParent locate_parent(const std::string& child_path, const ParentSpec& spec,
                            const OpenOptions& opts, const LayerOpener& open_layer);

// Gives `layer` (opened from `path`, whose file has `identity`) its parents,
// recursively, when it has a parent_spec(): returns a LayeredDevice, or the
// layer itself when it has none. Under opts.missing_parents a parent that is
// not found becomes a make_missing_parent() placeholder. Refuses chains
// deeper than 64 and chains that loop.
BlockDevicePtr attach_parents(OpenedLayer layer, const std::string& path, const OpenOptions& opts,
                              const LayerOpener& open_layer);

// A child layer over its parent. Reads and block status fall through to the
// parent where the child says kUnallocated. Sizes, the same rule for every
// format: the device is the child's size; a parent smaller than the child
// reads as zeros past its end (status kUnallocated, depth 0), and a parent
// larger than the child is cut at the child's size. Thread-safe when both
// layers are.
class LayeredDevice final : public BlockDevice {
 public:
  LayeredDevice(BlockDevicePtr layer, BlockDevicePtr parent, std::string parent_path);

  uint64_t size() const override { return layer_->size(); }
  uint32_t sector_size() const override { return layer_->sector_size(); }
  // The child's info with the parent chain recorded (ImageInfo::set_parent).
  ImageInfo info() const override;
  std::string label() const override { return layer_->label(); }
  std::vector<const BlockDevice*> layers() const override;

  const BlockDevice& layer() const { return *layer_; }
  const BlockDevicePtr& parent() const { return parent_; }

 protected:
  void do_read(uint64_t offset, void* buf, size_t len) const override;
  Extent do_block_status(uint64_t offset, uint64_t len) const override;

 private:
  void read_parent(uint64_t offset, uint8_t* buf, size_t len) const;

  BlockDevicePtr layer_;
  BlockDevicePtr parent_;
  std::string parent_path_;
};

// The stand-in parent used under OpenOptions::missing_parents: `size`
// bytes whose read() and block_status() throw `why` again, and whose info()
// says the parent is missing and why.
BlockDevicePtr make_missing_parent(uint64_t size, const Error& why);

}  // namespace vdisk
