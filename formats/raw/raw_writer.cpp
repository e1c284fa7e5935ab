#include "formats/raw/raw_writer.h"

#include "formats/core/error.h"
#include "formats/core/file.h"

namespace vdisk::raw {

namespace {

class RawWriter final : public ImageWriter {
 public:
  explicit RawWriter(const CreateRequest& req)
      : size_(req.virtual_size), out_(req.env->create_output(req.path, req.overwrite)) {}
  ~RawWriter() override { abort(); }

  uint64_t virtual_size() const override { return size_; }

  void write(uint64_t offset, const void* buf, size_t len) override {
    if (offset + len > size_) {
      throw Error(ErrorKind::kInvalidArgument, out_->path(), offset,
                  "write past the end of the disk");
    }
    out_->write_at(offset, buf, len);
  }

  void finish() override {
    out_->set_size(size_);
    out_->commit();
    finished_ = true;
  }

  void abort() override {
    if (!finished_) out_->discard();
  }

  std::vector<std::string> output_files() const override { return {out_->path()}; }

 private:
  uint64_t size_;
  std::unique_ptr<OutputFile> out_;
  bool finished_ = false;
};

}  // namespace

std::unique_ptr<ImageWriter> create_raw(const CreateRequest& req) {
  return std::make_unique<RawWriter>(req);
}

}  // namespace vdisk::raw
