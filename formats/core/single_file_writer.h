// A base for writers whose image is exactly one OutputFile (raw, VDI, VHD,
// VHDX): it owns the output and implements the parts of the ImageWriter
// contract (writer.h) that are the same for all of them: the finish sequence,
// abort, notes and output_files.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "formats/core/file.h"
#include "formats/core/writer.h"

namespace vdisk {

// The --allow-resize rule of CreateRequest for a format that holds only whole
// `unit`s (a power of two or any non-zero value): returns `requested` rounded
// up to a multiple of `unit`. When that changes the size it throws
// Error(kInvalidArgument) naming `path`, both sizes and --allow-resize unless
// `allow_resize`; with it, it appends a note giving both sizes to `notes`.
// `reason` says what the format holds, e.g. "VHD holds whole 512-byte sectors".
uint64_t round_up_virtual_size(uint64_t requested, uint64_t unit, bool allow_resize,
                               const std::string& path, const std::string& reason,
                               std::vector<std::string>& notes);

class SingleFileWriter : public ImageWriter {
 public:
  // Discards the output unless finish() succeeded (writer.h: destruction
  // without finish() behaves like abort()).
  ~SingleFileWriter() override;

  // Calls finish_image(), sets the file to the length it returns, commits the
  // output (fsync + rename into place) and only then counts as finished. When
  // any step throws, the writer is not finished and abort() (or destruction)
  // removes the partial file.
  void finish() final;
  // Discards the partial output unless finished. Safe to call more than once
  // and before open_output().
  void abort() final;
  // The notes added with add_note() / round_size(), in order.
  std::vector<std::string> notes() const final;
  // {the output's final path}.
  std::vector<std::string> output_files() const final;

 protected:
  SingleFileWriter() = default;

  // Creates the output (Env::create_output). Subclasses call it once, at the
  // end of their constructor, after every check of the request passed, so a
  // refused request never creates a file.
  void open_output(const CreateRequest& req);

  // Writes what the format keeps after the guest data (headers, tables,
  // footers) once the last write() has come, and returns the final length of
  // the file; the base then sets that length (extending leaves a hole) and
  // commits. Called at most once per successful finish().
  virtual uint64_t finish_image() = 0;

  // Throws Error(kInvalidArgument) naming the output and `offset` unless
  // [offset, offset + len) lies inside [0, virtual_size()).
  void check_write_range(uint64_t offset, uint64_t len) const;

  void add_note(std::string note);
  // round_up_virtual_size() for req.virtual_size, recording the note here.
  uint64_t round_size(const CreateRequest& req, uint64_t unit, const std::string& reason);

  // The output, null until open_output(). Protected rather than behind an
  // accessor so that the subclasses' data paths write through it directly.
  std::unique_ptr<OutputFile> out_;

 private:
  std::vector<std::string> notes_;
  bool finished_ = false;
};

}  // namespace vdisk
