#include "formats/core/single_file_writer.h"

#include "formats/core/error.h"

namespace vdisk {

uint64_t round_up_virtual_size(uint64_t requested, uint64_t unit, bool allow_resize,
                               const std::string& path, const std::string& reason,
                               std::vector<std::string>& notes) {
  const uint64_t rounded = div_round_up(requested, unit) * unit;
  if (rounded == requested) return requested;
  if (!allow_resize) {
    throw Error(ErrorKind::kInvalidArgument, path, std::nullopt,
                reason + ": a " + std::to_string(requested) + "-byte disk would have to become " +
                    std::to_string(rounded) + " bytes (pass --allow-resize to allow it)");
  }
  notes.push_back("virtual size rounded up from " + std::to_string(requested) + " to " +
                  std::to_string(rounded) + " bytes (" + reason + ")");
  return rounded;
}

SingleFileWriter::~SingleFileWriter() {
  abort();
}

void SingleFileWriter::finish() {
  const uint64_t length = finish_image();
  out_->set_size(length);
  out_->commit();
  finished_ = true;
}

void SingleFileWriter::abort() {
  if (!finished_ && out_) out_->discard();
}

std::vector<std::string> SingleFileWriter::notes() const {
  return notes_;
}

std::vector<std::string> SingleFileWriter::output_files() const {
  return {out_->path()};
}

void SingleFileWriter::open_output(const CreateRequest& req) {
  out_ = req.environment().create_output(req.path, req.overwrite);
}

void SingleFileWriter::check_write_range(uint64_t offset, uint64_t len) const {
  const uint64_t size = virtual_size();
  if (offset > size || len > size - offset) {
    throw Error(ErrorKind::kInvalidArgument, out_->path(), offset,
                "write past the end of the disk");
  }
}

void SingleFileWriter::add_note(std::string note) {
  notes_.push_back(std::move(note));
}

uint64_t SingleFileWriter::round_size(const CreateRequest& req, uint64_t unit,
                                      const std::string& reason) {
  return round_up_virtual_size(req.virtual_size, unit, req.allow_resize, req.path, reason, notes_);
}

}  // namespace vdisk
