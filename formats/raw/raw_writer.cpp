#include "formats/raw/raw_writer.h"

#include "formats/core/file.h"
#include "formats/core/single_file_writer.h"

namespace vdisk::raw {

namespace {

class RawWriter final : public SingleFileWriter {
 public:
  explicit RawWriter(const CreateRequest& req) : size_(req.virtual_size) {
    open_output(req);
    out_->reserve(size_);  // a block device too small for the image refuses now
  }

  uint64_t virtual_size() const override { return size_; }

  void write(uint64_t offset, const void* buf, size_t len) override {
    check_write_range(offset, len);
    out_->write_at(offset, buf, len);
  }

 private:
  uint64_t finish_image() override { return size_; }

  uint64_t size_;
};

}  // namespace

std::unique_ptr<ImageWriter> create_raw(const CreateRequest& req) {
  return std::make_unique<RawWriter>(req);
}

}  // namespace vdisk::raw
