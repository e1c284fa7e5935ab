// vdisk resize of a raw image (the file's length is the disk's size), and
// writes into it in place (vdisk commit into a raw parent).
#include <algorithm>

#include "formats/core/resize.h"
#include "formats/raw/raw_reader.h"

namespace vdisk::raw {

void resize_raw(const ResizeRequest& req) {
  // A split set (.001, .002, ...) reads as one disk bigger than its first
  // file; changing that file alone would move every later segment.
  if (req.layer.size() != req.file.size()) {
    refuse_resize(req, std::nullopt,
                  "is one segment of a split raw set (" + std::to_string(req.layer.size()) +
                      " bytes in all): resizing split sets is not supported");
  }
  // Growing makes a hole (reads as zeros); shrinking drops the tail, which
  // the caller checked holds only zeros.
  req.file.set_size(req.new_size);
  req.file.sync();
}

}  // namespace vdisk::raw

namespace vdisk::raw {

namespace {

// A raw file written in place: guest offset = file offset.
class RawUpdater final : public ImageUpdater {
 public:
  explicit RawUpdater(UpdateFile& file) : file_(file), size_(file.size()) {}
  uint64_t granularity() const override { return 512; }
  void write(uint64_t offset, const void* buf, size_t len) override {
    if (offset >= size_) return;
    file_.write_at(offset, buf, static_cast<size_t>(std::min<uint64_t>(len, size_ - offset)));
  }
  void flush() override { file_.sync(); }
  void set_parent(const std::string&, const std::string&, const BlockDevice*) override {
    throw Error(ErrorKind::kUnsupported, file_.path(), std::nullopt,
                "a raw image has no parent to name");
  }

 private:
  UpdateFile& file_;
  uint64_t size_;
};

}  // namespace

std::unique_ptr<ImageUpdater> update_raw(UpdateFile& file, const BlockDevice& layer) {
  if (layer.size() != file.size()) {
    throw Error(ErrorKind::kUnsupported, file.path(), std::nullopt,
                "is one segment of a split raw set: writing into split sets is not supported");
  }
  return std::make_unique<RawUpdater>(file);
}

}  // namespace vdisk::raw
